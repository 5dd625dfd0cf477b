"""Copy a model folder with int8 weights (ONNX Runtime's DynamicQuantizeMatMul), for faster CPU
inference of the full-size models:

    /usr/bin/python3 -m tools.quantize --model models/blip-base --out models/blip-base-int8
    MODEL_DIR=models/blip-base-int8 npm start

The copy gets its own modelId, so a service switched to it re-embeds its images (int8 features
differ slightly from fp32 ones). docs/models.md has the measured speed and accuracy. A BLIP-2 folder
(manifest "family": "blip2") gets int8 weights in its language model only.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tools.blip.quantize import quantize_folder
from tools.blip2 import quantize as blip2_quantize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="fp32 model folder (manifest.json and graphs)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default=None, help="model name in the manifest (default: <name>-int8)")
    ap.add_argument("--reduce-range", action="store_true",
                    help="7-bit weights, for CPUs without AVX-512 VNNI / AVX-VNNI (their int8 kernels can saturate)")
    ap.add_argument("--keep-fp32", default="", help="comma-separated graphs to leave in float32 (default: none)")
    args = ap.parse_args()
    keep = {g for g in args.keep_fp32.split(",") if g}
    if json.loads((Path(args.model) / "manifest.json").read_text()).get("family") == "blip2":
        # BLIP-2: the language model only (tools/blip2/quantize.py says why), external data kept.
        m = blip2_quantize.quantize_folder(args.model, args.out, name=args.name, reduce_range=args.reduce_range)
        print(f"wrote {args.out} ({m['modelId']}): {sum(m['quantization']['matmuls'].values())} MatMuls on int8 weights")
        return
    m = quantize_folder(args.model, args.out, name=args.name, reduce_range=args.reduce_range, keep_fp32=keep)
    total = sum(m["quantization"]["matmuls"].values())
    print(f"wrote {args.out} ({m['modelId']}): {total} MatMuls on int8 weights")


if __name__ == "__main__":
    main()
