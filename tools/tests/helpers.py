"""Shared by the toolchain tests: small scenes, a tiny model config, the bundled size's joint batch
and model, and tools.train run as a user runs it."""
from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import torch

from tools.blip import scenes
from tools.blip.bundle import BlipBundle, scenes_config
from tools.blip.model import BlipConfig, TextConfig, VisionConfig

ROOT = Path(__file__).resolve().parents[2]


def obj(shape, color, size="small", cx=0.5, cy=0.5):
    return scenes.Obj(shape, color, size, cx, cy, 0.12, 0, scenes.COLORS[color])


def word_decoder(tok):
    """Token ids -> their words, without [PAD], [CLS] and [SEP] (for reading training texts)."""
    inv = {i: w for w, i in tok.vocab.items()}
    return lambda ids: " ".join(inv[i] for i in ids if i not in (tok.pad, tok.cls, tok.sep) and i in inv)


def tiny_config(vocab=150):
    return BlipConfig(VisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   image_size=16, patch_size=8),
                      TextConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, max_position_embeddings=32, encoder_hidden_size=16), 8)


def bundle_config():
    """The bundled model's config and its tokenizer."""
    from tools.batches import make_tokenizer
    tok, _ = make_tokenizer()
    return scenes_config(len(tok.vocab) + 2, tok.sep, tok.added["[DEC]"]), tok


def joint_batch_and_model(seed: int, n: int, **options):
    """A joint batch of n scenes at the bundle's size (seed `seed`, make_batch's `options`), a randomly
    initialised bundle (torch seed 0, eval: no dropout, so losses compare) and a per-patch head."""
    from tools.batches import AUX_CLASSES, make_batch
    cfg, tok = bundle_config()
    grid = cfg.vision.image_size // cfg.vision.patch_size
    b = make_batch(random.Random(seed), tok, cfg.vision.image_size, n, 35, tok.added["[DEC]"], grid, **options)
    torch.manual_seed(0)
    model = BlipBundle(cfg).eval()
    return b, model, torch.nn.Linear(cfg.vision.hidden_size, sum(AUX_CLASSES))


def random_start(d: Path) -> tuple[Path, dict]:
    """A checkpoint of a randomly initialised bundle in d, as tools.train --resume reads it."""
    cfg, _ = bundle_config()
    torch.manual_seed(0)
    state = BlipBundle(cfg).state_dict()
    torch.save({"model": state, "config": cfg.to_dict(), "step": 0}, d / "start.pt")
    return d / "start.pt", state


def train(*flags: str, resume: Path | None = None, out: Path) -> str:
    """Runs `tools.train FLAGS` (batches of 4 unless FLAGS say otherwise) in a process of its own;
    returns what it printed, or raises CalledProcessError with its stderr."""
    cmd = [sys.executable, "-m", "tools.train", *flags, "--out", str(out)]
    if "--batch" not in flags:
        cmd += ["--batch", "4"]
    if resume is not None:
        cmd += ["--resume", str(resume)]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout


def changed_keys(before: dict, after_path: Path) -> set[str]:
    after = torch.load(after_path)["model"]
    return {k for k in before if not torch.equal(before[k], after[k])}
