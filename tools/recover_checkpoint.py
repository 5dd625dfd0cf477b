"""Rebuild a training checkpoint from an exported model folder, to train on from the bundled model
when tools/checkpoints/ is gone (it is not committed).

    /usr/bin/python3 -m tools.recover_checkpoint --model models/blip-scenes --out tools/checkpoints/from-onnx.pt

The ITC temperature is not exported: give `tools.train --temp` the value training ended with.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from tools.blip.onnx_weights import state_dict_from_folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/blip-scenes")
    ap.add_argument("--out", default="tools/checkpoints/from-onnx.pt")
    args = ap.parse_args()
    tokenizer = json.loads((Path(args.model) / "tokenizer.json").read_text())
    config, state, missing = state_dict_from_folder(args.model, tokenizer)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((Path(args.model) / "manifest.json").read_text())
    torch.save({"model": state, "config": config.to_dict(), "step": 0, "from": manifest["modelId"]}, args.out)
    print(f"{len(state)} tensors from {manifest['modelId']} -> {args.out}; parameters in no graph: {len(missing)}")
    if missing:
        print("not in any graph (initial values kept):", ", ".join(missing))


if __name__ == "__main__":
    main()
