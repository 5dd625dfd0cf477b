"""Which object attributes the vision encoder's output already holds: linear probes on its frozen
patch tokens, scored per object (the probe's logits averaged over the patches the object covers),
with the shape confusion matrix by size. Tells a training run whether captions and answers fail
because the image encoder does not see an attribute or because the text side does not read it.

    /usr/bin/python3 -m tools.probe_vision tools/checkpoints/from-onnx.pt

(`tools.recover_checkpoint` reads a checkpoint back out of a model folder.) Probes train on scenes
without held-out combinations and are scored on scenes with them, each from its own seed.
"""
from __future__ import annotations

import argparse
import random

import numpy as np
import torch
import torch.nn.functional as F

from tools.blip import scenes
from tools.quick_eval import load
from tools.batches import AUX_CLASSES, patch_labels, to_pixels

# Columns of batches.patch_labels probed here (rank from the left identifies the object).
PROBED = {"color": 0, "shape": 1, "size": 2, "third": 4, "vthird": 5}
RANK = 3


def per_object(logits: torch.Tensor, labels: torch.Tensor, column: int) -> list[tuple[int, int, int, int]]:
    """(image index, rank from the left, true class, predicted class) of every object: the class
    whose logit, averaged over the object's patches, is highest. logits [B, P, C]; labels [B, P, 6]
    from patch_labels."""
    out = []
    for b in range(logits.shape[0]):
        ranks = labels[b, :, RANK]
        for r in ranks.unique().tolist():
            if r == 0:
                continue
            sel = ranks == r
            out.append((b, r, int(labels[b, sel, column][0]), int(logits[b, sel].mean(0).argmax())))
    return out


@torch.no_grad()
def encode(vision, n: int, seed: int, train: bool, size: int, grid: int):
    rng = random.Random(seed)
    drawn = [scenes.sample_scene(rng, train=train) for _ in range(n)]
    pix = torch.from_numpy(np.stack([to_pixels(scenes.render_augmented(s, rng), size) for s in drawn]))
    labels = torch.from_numpy(np.stack([patch_labels(s, grid) for s in drawn])).long()
    emb = torch.cat([vision(pix[i:i + 256])[:, 1:] for i in range(0, n, 256)])
    return emb, labels, drawn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--train", type=int, default=3000, help="scenes the probes learn from")
    ap.add_argument("--test", type=int, default=1500, help="scenes they are scored on")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, cfg = load(args.checkpoint, torch.device("cpu"))
    model.eval()
    vision = model.retrieval.vision_model
    size, grid = cfg.vision.image_size, cfg.vision.image_size // cfg.vision.patch_size
    e_tr, l_tr, _ = encode(vision, args.train, 1234, True, size, grid)
    e_te, l_te, drawn = encode(vision, args.test, 4321, False, size, grid)
    held = [scenes.is_held_out(s) for s in drawn]
    D = e_tr.shape[-1]
    for name, col in PROBED.items():
        n = AUX_CLASSES[col]
        head = torch.nn.Linear(D, n)
        opt = torch.optim.Adam(head.parameters(), 1e-2)
        x, y = e_tr.reshape(-1, D), l_tr[..., col].reshape(-1)
        with torch.enable_grad():
            for _ in range(300):  # full-batch: a linear probe on a few hundred thousand patches converges
                loss = F.cross_entropy(head(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        logits = head(e_te)
        objs = per_object(logits, l_te, col)
        acc = np.mean([t == p for _, _, t, p in objs])
        acc_held = np.mean([t == p for b, _, t, p in objs if held[b]] or [float("nan")])
        print(f"{name:6s} per-object accuracy {acc:.3f}  (scenes with a held-out combination {acc_held:.3f})")
        # The objects that make the combination, apart: averaged over their scenes, the many other
        # objects there hid that the encoder misreads these (docs/models.md, stages 13-14).
        kinds: dict[str, list[bool]] = {}
        for b, r, t, p in objs:
            o = drawn[b].sorted_objects()[r - 1]
            spec = {"color": o.color, "shape": o.shape, "size": o.size}
            kind = scenes.held_out_combination(spec, drawn[b].background)
            if kind:
                kinds.setdefault(kind, []).append(t == p)
        scores = ", ".join(f"{k} {np.mean(v):.3f} ({len(v)})" for k, v in sorted(kinds.items()))
        print(f"        held-out objects: {scores}")
        if name == "shape":
            sizes = [t for _, _, t, _ in per_object(logits, l_te, PROBED["size"])]  # same object order
            conf = np.zeros((2, n - 1, n - 1), dtype=int)  # objects probed as background are left out
            for (_, _, t, p), s in zip(objs, sizes):
                if p > 0:
                    conf[s - 1, t - 1, p - 1] += 1
            for k, sz in enumerate(scenes.SIZES):
                print(f"  {sz} objects, rows true / columns predicted: {' '.join(scenes.SHAPES)}")
                for i, row in enumerate(conf[k]):
                    print(f"    {scenes.SHAPES[i]:8s} " + " ".join(f"{v:6d}" for v in row))


if __name__ == "__main__":
    main()
