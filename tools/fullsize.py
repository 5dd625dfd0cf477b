"""Full-size (base) random-weight round trip: build the three Salesforce architectures at base size
with random weights in the Hugging Face key layout, save them as Hub snapshots (one as
pytorch_model.bin, two as model.safetensors, all with config.json and vocab.txt / tokenizer.json),
convert them with tools.convert_hf exactly as a user would the real ones, and write PyTorch goldens
that the TypeScript parity test (test/ml/fullsize-parity.test.ts) compares with onnxruntime-node.

    /usr/bin/python3 -m tools.fullsize --work .cache/fullsize      (then npm run test:fullsize)

Takes a few minutes and about 3.5 GB of disk.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from tools.blip import scenes
from tools.blip.golden import make_golden_images, make_goldens
from tools.blip.hf_import import config_to_hf, load_checkpoint, write_safetensors
from tools.blip.model import (BlipForConditionalGeneration, BlipForImageTextRetrieval,
                              BlipForQuestionAnswering, base_config, init_weights)
from tools.blip.tokenizer import WordPieceTokenizer, scenes_vocab
from tools.blip.quantize import quantize_folder
from tools.convert_hf import convert


def fake_bert_vocab() -> list[str]:
    """30522 entries with BERT's special positions ([PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102,
    [MASK] 103); real words come from the scene vocabulary, the rest are [unusedN]."""
    words = [w for w in scenes_vocab(scenes.WORDS) if not w.startswith("[")]
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    vocab += [f"[unused{i}]" for i in range(99, 99 + 30522 - len(vocab))]
    assert len(vocab) == 30522
    return vocab


class _Bundle:
    def __init__(self, retrieval, caption, vqa):
        self.retrieval, self.caption, self.vqa = retrieval, caption, vqa


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=".cache/fullsize")
    args = ap.parse_args()
    work = Path(args.work)
    torch.manual_seed(0)
    cfg = base_config()
    vocab = fake_bert_vocab()
    snaps = {}
    for arch, cls, fmt in (("BlipForImageTextRetrieval", BlipForImageTextRetrieval, "bin"),
                           ("BlipForConditionalGeneration", BlipForConditionalGeneration, "safetensors"),
                           ("BlipForQuestionAnswering", BlipForQuestionAnswering, "safetensors")):
        d = work / "snapshots" / arch
        d.mkdir(parents=True, exist_ok=True)
        m = cls(cfg)
        init_weights(m)
        sd = m.state_dict()
        if fmt == "bin":
            torch.save(sd, d / "pytorch_model.bin")
        else:
            write_safetensors(d / "model.safetensors", {k: v for k, v in sd.items()})
        (d / "config.json").write_text(json.dumps(config_to_hf(cfg, arch), indent=2))
        (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
        snaps[arch] = d
        del m, sd
        print("saved", d, flush=True)
    out = work / "blip-base-random"
    manifest = convert([str(p) for p in snaps.values()], str(out), "blip-base-random")
    models = {task: model for task, model, _ in (load_checkpoint(p) for p in snaps.values())}
    bundle = _Bundle(models["retrieval"], models["caption"], models["vqa"])
    tj = json.loads((out / "tokenizer.json").read_text())
    tok = WordPieceTokenizer(tj["model"]["vocab"], {a["content"]: a["id"] for a in tj["added_tokens"]})
    rng = random.Random(3)
    imgs = make_golden_images(work / "images", scenes.render(scenes.sample_scene(rng, False, 3), 128),
                              scenes.render(scenes.sample_scene(rng, False, 2), 128))[:2]
    settings = {"greedy": {"max_length": 8, "min_length": 0, "repetition_penalty": 1.0},
                "beam": {"max_length": 6, "min_length": 0, "repetition_penalty": 1.0}}
    g = make_goldens(bundle, tok, manifest, imgs, ["a red circle", "two blue squares on a white background"],
                     ["what color is the circle?"], settings)
    g["modelDir"] = str(out)
    g["imageDir"] = str(work / "images")
    (work / "goldens.json").write_text(json.dumps(g) + "\n")
    # The int8 copy, as a user makes it: test/ml/fullsize-int8.test.ts compares it with fp32.
    q = quantize_folder(out, work / "blip-base-random-int8")
    print("wrote", out, work / "goldens.json", "and", work / "blip-base-random-int8", f"({q['modelId']})")


if __name__ == "__main__":
    main()
