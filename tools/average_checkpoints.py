"""Average the weights of two training checkpoints of the same config (a two-ingredient "model
soup", Wortsman et al. 2022): stages fine-tuned from one starting point lie in one basin, and their
weighted average often scores at least as well as either of them, more so where each gained on
other queries (docs/models.md, stage 26).

    /usr/bin/python3 -m tools.average_checkpoints A.pt B.pt --weight 0.25 --out C.pt   # 0.75 A + 0.25 B

Integer tensors (none in the bundle today) are taken from A. The training-only heads are dropped:
they read features that the averaged model no longer computes, so a stage resumed from the result
starts them afresh (tools.train --head-warmup), as from a read-back checkpoint.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch


def average(a: dict, b: dict, weight: float) -> dict:
    """A checkpoint whose model is (1 - weight) * a + weight * b, without training-only heads."""
    if a["config"] != b["config"]:
        raise SystemExit("the checkpoints have different configs: their weights do not line up")
    if a["model"].keys() != b["model"].keys():
        raise SystemExit("the checkpoints have different tensors")
    model = {k: torch.lerp(v, b["model"][k].to(v.dtype), weight) if v.is_floating_point() else v
             for k, v in a["model"].items()}
    return {"model": model, "config": a["config"], "step": 0, "aux_head": None, "bag_head": None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--weight", type=float, required=True, help="share of B (0 gives A, 1 gives B)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if not 0.0 <= args.weight <= 1.0:
        raise SystemExit("--weight is a share of B: between 0 and 1")
    soup = average(torch.load(args.a, map_location="cpu"), torch.load(args.b, map_location="cpu"), args.weight)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(soup, args.out)
    print(f"{len(soup['model'])} tensors: {1 - args.weight:g} x {args.a} + {args.weight:g} x {args.b} -> {args.out}")


if __name__ == "__main__":
    main()
