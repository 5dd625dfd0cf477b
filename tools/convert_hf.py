"""Convert local Hugging Face snapshots of Salesforce BLIP into a model folder for the service.

    /usr/bin/python3 -m tools.convert_hf \
        --hf-dir snapshots/blip-itm-base-coco \
        --hf-dir snapshots/blip-image-captioning-base \
        --hf-dir snapshots/blip-vqa-base \
        --out models/blip-base --name blip-base

Each --hf-dir is one checkpoint (its config.json names the architecture); all three are needed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tools.blip.export import export_folder
from tools.blip.hf_import import load_checkpoint, load_tokenizer


# ITC candidates ITM re-ranks by default at base size: a search stays near 2 s on a 2-core CPU
# (docs/performance.md); BLIP's own evaluation re-ranks 128-256 on a GPU. SEARCH_CANDIDATES and
# a search's `candidates` override it.
BASE_SEARCH_CANDIDATES = 48


def convert(hf_dirs: list[str], out: str, name: str, text_max_length: int = 35,
            search_candidates: int = BASE_SEARCH_CANDIDATES) -> dict:
    models, config, tokenizer = {}, None, None
    for d in hf_dirs:
        task, model, cfg = load_checkpoint(d)
        if task in models:
            raise SystemExit(f"two snapshots for the {task} task: {d}")
        models[task] = model
        config = config or cfg
        if cfg.to_dict() != config.to_dict() and task != "retrieval":
            # the three base checkpoints share sizes; the text stack must agree for one tokenizer
            if cfg.text.vocab_size != config.text.vocab_size:
                raise SystemExit(f"{d}: vocabulary size differs from the other checkpoints")
        tokenizer = tokenizer or load_tokenizer(d)
    missing = {"retrieval", "caption", "vqa"} - set(models)
    if missing:
        raise SystemExit(f"missing snapshots for: {sorted(missing)} (give one --hf-dir per checkpoint)")
    sources = ", ".join(str(Path(d).name) for d in hf_dirs)
    return export_folder(out, name=name, config=models["retrieval"].config, retrieval=models["retrieval"],
                         caption=models["caption"], vqa=models["vqa"], tokenizer=tokenizer,
                         source=f"converted from Hugging Face snapshots: {sources}", text_max_length=text_max_length,
                         search={"defaultCandidates": search_candidates})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hf-dir", action="append", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="blip-base")
    ap.add_argument("--search-candidates", type=int, default=BASE_SEARCH_CANDIDATES,
                    help="ITC candidates ITM re-ranks when a search names none (written to the manifest)")
    args = ap.parse_args()
    m = convert(args.hf_dir, args.out, args.name, search_candidates=args.search_candidates)
    print(f"wrote {args.out} ({m['modelId']})")


if __name__ == "__main__":
    main()
