"""Export the trained bundled model to models/blip-scenes/, with its goldens and sample images.

    /usr/bin/python3 -m tools.export_scenes --checkpoint tools/checkpoints/blip-scenes.pt
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from tools.blip import scenes
from tools.blip.bundle import BlipBundle
from tools.blip.export import export_folder
from tools.blip.golden import make_goldens
from tools.blip.model import BlipConfig
from tools.batches import make_tokenizer

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="tools/checkpoints/blip-scenes.pt")
    ap.add_argument("--out", default="models/blip-scenes")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--model-only", action="store_true", help="skip goldens and samples (for trying checkpoints)")
    args = ap.parse_args()
    ck = torch.load(args.checkpoint, map_location="cpu")
    cfg = BlipConfig.from_dict(ck["config"])
    bundle = BlipBundle(cfg)
    bundle.load_state_dict(ck["model"])
    bundle.eval()
    tok, tj = make_tokenizer()
    manifest = export_folder(
        ROOT / args.out, name="blip-scenes", config=cfg, retrieval=bundle.retrieval, caption=bundle.caption,
        vqa=bundle.vqa, tokenizer=tj, text_max_length=35,
        source=f"trained on the synthetic scenes of docs/scenes.md by tools/train.py ({ck['step']} steps)",
        generation={"caption": {"maxLength": 30, "minLength": 5, "numBeams": 3, "repetitionPenalty": 1.0, "prompt": ""},
                    "vqa": {"maxLength": 10, "minLength": 1, "numBeams": 1}},
        # Measured (models/blip-scenes/EVAL.md): held-out precision@10 reaches 0.94 at 128
        # candidates and stays under 0.9 at 50; a 128-candidate search costs milliseconds here.
        search={"defaultCandidates": 128})
    if args.model_only:
        print("exported", manifest["modelId"], "to", args.out)
        return
    images = sorted((ROOT / "test/golden/images").iterdir())
    settings = {"greedy": {"max_length": 30, "min_length": 5, "repetition_penalty": 1.0},
                "beam": {"max_length": 30, "min_length": 5, "repetition_penalty": 1.0}}
    g = make_goldens(bundle, tok, manifest, images,
                     ["red circle", "a large blue square and a small yellow star on a black background",
                      "two circles", "a purple star on the left"],
                     ["what color is the circle?", "how many shapes are there?", "what color is the background?"],
                     settings)
    g["modelDir"] = args.out
    (ROOT / "test/golden/blip-scenes.json").write_text(json.dumps(g) + "\n")
    # Sample scenes the server ingests on a first start (drawn with their own seed).
    rng = random.Random(4242)
    sdir = ROOT / "samples"
    sdir.mkdir(exist_ok=True)
    meta = []
    for i in range(args.samples):
        s = scenes.sample_scene(rng, train=False)
        name = f"scene-{i + 1:02d}.png"
        scenes.render(s, 128).save(sdir / name)
        meta.append({"file": name, "caption": scenes.caption(s), "scene": s.to_json()})
    (sdir / "samples.json").write_text(json.dumps(meta, indent=2) + "\n")
    print("exported", manifest["modelId"], "to", args.out)
    for e in g["images"]:
        print(" ", e["file"], "|", e["caption_beam3"], "|", [v["answer"] for v in e["vqa"]])


if __name__ == "__main__":
    main()
