"""How a checkpoint's ITC similarities draw ITM negative images: each image's softmax over the
batch's texts (tools.train's default) against each text's own softmax over images
(`--t2i-softmax`, BLIP's weights_t2i). Runs joint batches drawn as the one-hour recipe draws them:

    /usr/bin/python3 -m tools.probe_mining tools/checkpoints/x-base.pt --temp 0.037

Prints, per way of drawing, over every text with at least two drawable images: the chance of
drawing the text's most similar non-matching image, the mean similarity rank of the drawn one
(1 = most similar), and the effective number of choices (exp of the draw's entropy). A checkpoint
keeps no ITC temperature (the log's last `temp=` is the one training ended with).
"""
from __future__ import annotations

import argparse
import random

import torch

from tools.batches import make_batch, make_tokenizer
from tools.quick_eval import load
from tools.train import negative_weights, similarity


def draw_stats(sim: torch.Tensor, match: torch.Tensor, known: torch.Tensor | None, dim: int) -> list[tuple[float, float, float]]:
    """(P(most similar non-match), mean rank drawn, effective choices) per text of one batch's
    [image, text] similarities, drawn as negative_weights(dim) draws them."""
    w = negative_weights(sim, match, known, dim)
    out = []
    for j in range(sim.shape[1]):
        ok = match[:, j] == 0
        if known is not None:
            ok &= known[:, j]
        if int(ok.sum()) < 2:
            continue
        p = w[ok, j] / w[ok, j].sum()
        order = sim[ok, j].argsort(descending=True)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(len(order))
        entropy = -(p * p.clamp_min(1e-12).log()).sum()
        out.append((float(p[order[0]]), float((p * rank.float()).sum()) + 1, float(entropy.exp())))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--temp", type=float, required=True, help="the ITC temperature to read the similarities at")
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    tok, _ = make_tokenizer()
    model, cfg = load(args.checkpoint, torch.device("cpu"))
    r = model.eval().retrieval
    grid = cfg.vision.image_size // cfg.vision.patch_size
    rng = random.Random(args.seed)
    stats: dict[str, list] = {"each image's softmax over texts (default)": [], "each text's softmax over images (--t2i-softmax)": []}
    with torch.no_grad():
        for _ in range(args.batches):
            # the one-hour recipe's joint scenes: 30% relit, confounded pairs left out
            b = make_batch(rng, tok, cfg.vision.image_size, args.batch, 35, tok.added["[DEC]"], grid, 3,
                           relit=0.3, confounded=False)
            sim = similarity(r.image_feat(r.vision_model(b["pixels"])), r.text_feat(*b["text"]), torch.tensor(args.temp))
            for (name, rows), dim in zip(stats.items(), (1, 0)):
                rows += draw_stats(sim, b["match"], b.get("known"), dim)
    for name, rows in stats.items():
        t = torch.tensor(rows).mean(0)
        print(f"{name}: {len(rows)} texts, P(most similar non-match) {t[0]:.3f}, mean rank drawn {t[1]:.2f}, "
              f"effective choices {t[2]:.2f}")


if __name__ == "__main__":
    main()
