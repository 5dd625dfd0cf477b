"""Full-width random BLIP-2 round trip: Salesforce/blip2-opt-2.7b's widths (ViT-g 1408, Q-Former 768
with 32 queries, OPT 2560 with 32 heads and the 50272-row vocabulary) at reduced depth, saved as the
Hub ships it (sharded safetensors + index + config.json + tokenizer.json), converted with
tools.blip2.convert as a user would the real snapshot, quantized (int8 LLM), and PyTorch goldens
for test/ml/blip2-parity.test.ts.

    /usr/bin/python3 -m tools.blip2.fullsize --work .cache/blip2-fullsize   (npm run test:blip2 runs it)

Also checks the full-depth key layout without allocating weights (tools/blip2/layout.py).
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from tools.blip import scenes
from tools.blip.generate import beam_search_with, greedy_with
from tools.blip.golden import make_golden_images, preprocess

from . import layout
from .convert import convert
from .export import PROMPT
from .hf_import import config_to_hf, load_checkpoint, save_sharded
from .model import Blip2ForConditionalGeneration, init_weights, opt_2_7b_config
from .quantize import quantize_folder
from .tokenizer import NEWLINE_ID, ByteLevelBpe, random_opt_tokenizer

QUESTIONS = ["how many circles are there?", "what color is the square?"]


def scene_words() -> list[str]:
    return sorted(set(scenes.WORDS) | {"Question", "Answer", "how", "many", "what", "color", "is", "the", "are",
                                       "there", "where", "describe", "picture", "?", ":"})


def _r(t: torch.Tensor, nd: int = 7) -> list:
    return [round(float(x), nd) for x in t.reshape(-1).tolist()]


@torch.no_grad()
def make_goldens(model: Blip2ForConditionalGeneration, bpe: ByteLevelBpe, manifest: dict, images: list[Path],
                 questions: list[str], max_new: int, beams: int) -> dict:
    special = manifest["text"]["specialTokens"]
    eos_ids = [special["eos"]] + ([special["newline"]] if "newline" in special else [])
    lm = model.language_model
    out = {"modelId": manifest["modelId"], "maxNewTokens": max_new, "numBeams": beams, "images": []}
    for path in images:
        pix = preprocess(path, manifest["image"]["size"])
        emb = model.vision_model(pix)
        queries = model.query_embeds(emb)

        def last_logits(seqs, queries=queries):
            ids = torch.tensor(seqs, dtype=torch.long)
            embeds = torch.cat([queries.expand(len(seqs), -1, -1), lm.embed(ids)], dim=1)
            return lm(embeds, torch.ones(embeds.shape[:2], dtype=torch.long))[:, -1, :]

        entry = {"file": path.name, "pixels": _r(pix, 6), "image_embeds": _r(emb), "query_embeds": _r(queries), "vqa": []}
        for q in questions:
            prompt = [special["bos"]] + bpe.encode(PROMPT.format(q))
            greedy = greedy_with(last_logits, prompt, eos_ids, max_length=len(prompt) + max_new)
            beam = beam_search_with(last_logits, prompt, eos_ids, num_beams=beams, max_length=len(prompt) + max_new)
            first = last_logits([prompt])[0]
            entry["vqa"].append({"question": q, "prompt_ids": prompt, "greedy_ids": greedy[len(prompt):],
                                 "beam_ids": beam[len(prompt):], "greedy_answer": bpe.decode(greedy[len(prompt):]),
                                 "first_logits_head": _r(first[:64])})
            print(f"  {path.name} {q!r}: greedy {greedy[len(prompt):]} beam {beam[len(prompt):]}", flush=True)
        out["images"].append(entry)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=".cache/blip2-fullsize")
    ap.add_argument("--layers", type=int, default=2, help="depth of every stack (the real model: 39 / 12 / 32)")
    ap.add_argument("--max-new", type=int, default=8)
    args = ap.parse_args()
    work = Path(args.work)
    print("full-depth key layout:", layout.check_full_depth(work / "layout-2.7b"), flush=True)

    torch.manual_seed(0)
    config = opt_2_7b_config(args.layers)
    snap = work / "snapshot"
    m = Blip2ForConditionalGeneration(config)
    init_weights(m, seed=0)
    shards = save_sharded(snap, m, max_shard_bytes=1 << 30)
    (snap / "config.json").write_text(json.dumps(config_to_hf(config), indent=2) + "\n")
    (snap / "tokenizer.json").write_text(json.dumps(random_opt_tokenizer(scene_words()), ensure_ascii=False))
    del m
    print("saved", snap, shards, flush=True)

    out = work / "blip2-random"
    manifest = convert(snap, out, "blip2-opt-random")
    q = quantize_folder(out, work / "blip2-random-int8")
    model, _ = load_checkpoint(snap)
    bpe = ByteLevelBpe(json.loads((out / "tokenizer.json").read_text()))
    rng = random.Random(5)
    imgs = make_golden_images(work / "images", scenes.render(scenes.sample_scene(rng, False, 3), 128),
                              scenes.render(scenes.sample_scene(rng, False, 2), 128))[:2]
    g = make_goldens(model, bpe, manifest, imgs, QUESTIONS, args.max_new, beams=3)
    g.update({"modelDir": str(out), "int8Dir": str(work / "blip2-random-int8"), "imageDir": str(work / "images"),
              "newlineId": NEWLINE_ID})
    (work / "goldens.json").write_text(json.dumps(g) + "\n")
    print("wrote", out, "and", work / "blip2-random-int8", f"({q['modelId']})", work / "goldens.json")


if __name__ == "__main__":
    main()
