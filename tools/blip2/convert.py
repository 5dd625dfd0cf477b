"""Convert a local Hugging Face snapshot of a BLIP-2 OPT checkpoint into a model folder of family
"blip2" (docs/blip2.md):

    /usr/bin/python3 -m tools.blip2.convert --hf-dir snapshots/blip2-opt-2.7b --out models/blip2-opt-2.7b
    /usr/bin/python3 -m tools.quantize --model models/blip2-opt-2.7b --out models/blip2-opt-2.7b-int8

The snapshot holds config.json, the sharded safetensors with model.safetensors.index.json, and the
OPT tokenizer (tokenizer.json, or vocab.json + merges.txt, which are rewritten as a tokenizer.json).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .export import export_folder
from .hf_import import load_checkpoint
from .tokenizer import SPECIALS, bytes_to_unicode


def load_tokenizer(folder: Path) -> dict:
    tj = folder / "tokenizer.json"
    if tj.exists():
        tok = json.loads(tj.read_text())
        if tok.get("model", {}).get("type") != "BPE":
            raise SystemExit(f"{tj}: not a byte-level BPE tokenizer (OPT's is)")
        return tok
    vocab = json.loads((folder / "vocab.json").read_text())
    merges = [m for m in (folder / "merges.txt").read_text().splitlines() if m and not m.startswith("#version")]
    added = [{"id": vocab[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": True,
              "special": True} for s in SPECIALS if s in vocab]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                      "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                      "merges": merges}}


def convert(hf_dir: str | Path, out: str | Path, name: str) -> dict:
    hf_dir = Path(hf_dir)
    model, _ = load_checkpoint(hf_dir)
    tokenizer = load_tokenizer(hf_dir)
    newline = tokenizer["model"]["vocab"].get(bytes_to_unicode()[ord("\n")])
    return export_folder(out, name=name, model=model, tokenizer=tokenizer, newline_id=newline,
                         source=f"converted from the Hugging Face snapshot {hf_dir.name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hf-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="blip2-opt-2.7b")
    args = ap.parse_args()
    m = convert(args.hf_dir, args.out, args.name)
    print(f"wrote {args.out} ({m['modelId']})")


if __name__ == "__main__":
    main()
