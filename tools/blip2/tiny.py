"""A tiny random BLIP-2 model folder (OPT's vocabulary size and special ids, everything else a few
units wide), exported through the same path as a converted snapshot, for tests of the service
(test/api/blip2-answer.test.ts) that need a real BLIP-2 folder in seconds:

    /usr/bin/python3 -m tools.blip2.tiny --out /tmp/blip2-tiny [--goldens]

--goldens also writes an int8 copy (`<out>-int8`) and PyTorch goldens (`<out>/goldens.json`, the
format of tools/blip2/fullsize.py) for test/ml/blip2-parity.test.ts, which runs them in every
`npm test` (the full-width proof is `npm run test:blip2`).
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from tools.blip import scenes
from tools.blip.golden import make_golden_images

from .export import export_folder
from .fullsize import QUESTIONS, make_goldens, scene_words
from .model import Blip2Config, Blip2ForConditionalGeneration, OptConfig, QFormerConfig, VisionConfig, init_weights
from .quantize import quantize_folder
from .tokenizer import NEWLINE_ID, ByteLevelBpe, random_opt_tokenizer


def tiny_config() -> Blip2Config:
    return Blip2Config(VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                    image_size=32, patch_size=16),
                       QFormerConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                     encoder_hidden_size=32),
                       OptConfig(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=2,
                                 max_position_embeddings=128, word_embed_proj_dim=32), num_query_tokens=8)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="blip2-tiny")
    ap.add_argument("--goldens", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    m = Blip2ForConditionalGeneration(tiny_config())
    init_weights(m, std=0.5, seed=0)
    manifest = export_folder(args.out, name=args.name, model=m, tokenizer=random_opt_tokenizer(scene_words()),
                             newline_id=NEWLINE_ID, source="random weights (tools.blip2.tiny)")
    if args.goldens:
        out = Path(args.out)
        int8 = out.parent / f"{out.name}-int8"
        quantize_folder(out, int8)
        m.eval()
        bpe = ByteLevelBpe(json.loads((out / "tokenizer.json").read_text()))
        rng = random.Random(5)
        imgs = make_golden_images(out / "images", scenes.render(scenes.sample_scene(rng, False, 3), 64),
                                  scenes.render(scenes.sample_scene(rng, False, 2), 64))[:2]
        g = make_goldens(m, bpe, manifest, imgs, QUESTIONS, 8, beams=3)
        g.update({"modelDir": str(out), "int8Dir": str(int8), "imageDir": str(out / "images")})
        (out / "goldens.json").write_text(json.dumps(g) + "\n")
    print(manifest["modelId"])


if __name__ == "__main__":
    main()
