"""Make test/fixtures/tiny-random (a KB-sized random-weight export) and its goldens.

    /usr/bin/python3 -m tools.tiny_random
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from tools.blip import scenes
from tools.blip.bundle import BlipBundle
from tools.blip.export import export_folder
from tools.blip.golden import make_golden_images, make_goldens
from tools.blip.model import BlipConfig, TextConfig, VisionConfig, init_weights
from tools.blip.tokenizer import WordPieceTokenizer, scenes_vocab, tokenizer_json

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    torch.manual_seed(0)
    vocab = scenes_vocab(scenes.WORDS)
    tj = tokenizer_json(vocab)
    added = {a["content"]: a["id"] for a in tj["added_tokens"]}
    tok = WordPieceTokenizer(tj["model"]["vocab"], added)
    V = len(vocab) + 2
    cfg = BlipConfig(
        vision=VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                            image_size=32, patch_size=8),
        text=TextConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=64, encoder_hidden_size=32,
                        sep_token_id=tok.sep, bos_token_id=added["[DEC]"]),
        image_text_hidden_size=16)
    bundle = BlipBundle(cfg, share_vision=False)  # three vision encoders, like the real family
    init_weights(bundle, std=0.2)  # larger than 0.02 so that random logits are far from ties
    bundle.eval()
    out = ROOT / "test/fixtures/tiny-random"
    manifest = export_folder(out, name="tiny-random", config=cfg, retrieval=bundle.retrieval,
                             caption=bundle.caption, vqa=bundle.vqa, tokenizer=tj,
                             source="random weights (seed 0), for tests", text_max_length=16)
    rng = random.Random(7)
    s = scenes.sample_scene(rng, train=False, n_objects=3)
    img_dir = ROOT / "test/golden/images"
    paths = make_golden_images(img_dir, scenes.render(s, 128), scenes.render(scenes.sample_scene(rng, False, 2), 128))
    settings = {"greedy": {"max_length": 12, "min_length": 0, "repetition_penalty": 1.0},
                "beam": {"max_length": 12, "min_length": 3, "repetition_penalty": 1.0}}
    g = make_goldens(bundle, tok, manifest, paths,
                     ["red circle", "a large blue square and a small yellow star on a black background",
                      "Unknown words: zebra-crossing!", "two circles"],
                     ["what color is the circle?", "how many shapes are there?"], settings)
    g["modelDir"] = "test/fixtures/tiny-random"
    (ROOT / "test/golden/tiny-random.json").write_text(json.dumps(g) + "\n")
    print("wrote", out, "and test/golden/tiny-random.json")


if __name__ == "__main__":
    main()
