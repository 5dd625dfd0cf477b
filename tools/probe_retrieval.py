"""Where retrieval of held-out combinations fails: the ITC image features or the ITM head. Runs a
checkpoint (PyTorch) on an eval set folder written by tools.make_evalset:

    /usr/bin/python3 -m tools.probe_retrieval tools/checkpoints/stage13.pt --set .cache/evalset

Prints, for held-out queries and for the rest:
- the mean ITM match probability of true pairs (the ten best by ITC) and of ITC's ten best
  non-matches: an ITM that learned "this text never matches" scores true held-out pairs low;
- the share of relevant images among ITC's 50 best (what re-ranking can reach);
and, for "a yellow SHAPE" and "a COLOR triangle", the median ITC rank of the relevant images whose
combination is held out (on white / purple) against the others: a text that names no held-out
combination still misses such images when their ITC feature does not encode what they show.
For a checkpoint trained with `tools.train --aux-bag`, also what its attribute-bag head reads from
the ITC features of held-out images against others of the same colour or shape.
`--per-query` also lists each held-out query: its relevant images, the share of them among ITC's 50
best, and precision@10 after re-ranking those 50 as the service does (ITM match logit + cosine;
with 25 held-out queries per set, each one moves the set's figure by up to 0.04).
And the position AUC: whether ITC ranks the images with "a red circle on the left" there above
those whose red circles are elsewhere (0.5: the text feature drops the position).
`--text "a yellow star on a white background"` (repeatable) prints what the attribute-bag head
reads from that text's ITC feature and the gallery's eight best images for it by ITC: whether
the text encoder keeps each word it was given.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from PIL import Image

from tools.batches import BAG, WHERE, make_tokenizer, pad, to_pixels
from tools.blip import scenes
from tools.quick_eval import load
from tools.train import bag_logits


def has(g: dict, color: str | None = None, shape: str | None = None) -> bool:
    return any((color is None or o["color"] == color) and (shape is None or o["shape"] == shape)
               for o in g["scene"]["objects"])


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--set", default=".cache/evalset")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--per-query", action="store_true", help="list each held-out query (re-ranks 50 candidates)")
    ap.add_argument("--text", action="append", default=[],
                    help="print the attribute-bag reading of this text and its best images by ITC")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, cfg = load(args.checkpoint, torch.device("cpu"))
    model.eval()
    ev = json.load(open(f"{args.set}/evalset.json"))
    gallery = ev["gallery"]
    tok, _ = make_tokenizer()
    r = model.retrieval
    pix = torch.from_numpy(np.stack([to_pixels(Image.open(f"{args.set}/{g['file']}"), cfg.vision.image_size)
                                     for g in gallery]))
    embs = torch.cat([r.vision_model(pix[i:i + 100]) for i in range(0, len(pix), 100)])
    feats = r.image_feat(embs)

    def itc(text: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids, mask = pad([tok.encode(text, 35)])
        return feats @ r.text_feat(ids, mask)[0], ids, mask

    stats = {h: {"itm_true": [], "itm_false": [], "recall_50": []} for h in (False, True)}
    for q in ev["queries"]:
        s, ids, mask = itc(q["text"])
        order = s.argsort(descending=True).tolist()
        rel = set(q["relevant"])
        pos = [i for i in order if i in rel][:10]
        neg = [i for i in order if i not in rel][:10]
        p = torch.softmax(r.itm_logits(ids.expand(len(pos + neg), -1), mask.expand(len(pos + neg), -1),
                                       embs[pos + neg]), -1)[:, 1]
        st = stats[q["heldOut"]]
        st["itm_true"].append(float(p[:len(pos)].mean()))
        st["itm_false"].append(float(p[len(pos):].mean()))
        st["recall_50"].append(sum(i in rel for i in order[:50]) / min(len(rel), 50))
        if args.per_query and q["heldOut"]:
            top = order[:50]
            logits = r.itm_logits(ids.expand(len(top), -1), mask.expand(len(top), -1), embs[top])
            fused = (logits[:, 1] + s[top]).argsort(descending=True)[:10].tolist()
            p10 = sum(top[k] in rel for k in fused) / min(10, len(rel))
            print(f"  {q['text'][:64]:64s} relevant {len(rel):3d}  recall_50 {st['recall_50'][-1]:.2f}  p@10 {p10:.1f}")
    for h in (False, True):
        print(f"{'held-out' if h else 'seen':8s} queries {len(stats[h]['itm_true']):3d}: " +
              "  ".join(f"{k} {np.mean(v):.3f}" for k, v in stats[h].items()))

    def ranks(text: str, rel: list[int], held) -> str:
        rank = (-itc(text)[0]).argsort().argsort().numpy()
        a = [rank[i] for i in rel if held(gallery[i])]
        b = [rank[i] for i in rel if not held(gallery[i])]
        return f"'{text}': median rank held-out {np.median(a):.0f} (n={len(a)}), others {np.median(b):.0f} (n={len(b)})"

    # Whether the ITC text feature keeps the third a text names: for "a red circle on the left", the
    # AUC of ITC scores of the images with a red circle in the left third against those whose red
    # circles are all elsewhere (0.5: the position is dropped; stage 26 in docs/models.md).
    auc = {False: [], True: []}
    for color in scenes.COLORS:
        for shape in scenes.SHAPES:
            for key, where in (("hpos", "left"), ("hpos", "right"), ("vpos", "top"), ("vpos", "bottom")):
                there = {i for i, g in enumerate(gallery) if any(o["color"] == color and o["shape"] == shape and
                                                                 o[key] == where for o in g["scene"]["objects"])}
                elsewhere = [i for i, g in enumerate(gallery) if has(g, color, shape) and i not in there]
                if len(there) < 5 or len(elsewhere) < 5:
                    continue
                s = itc(scenes.spec_phrase({"color": color, "shape": shape, key: where}))[0]
                auc[(color, shape) == ("purple", "triangle")].append(
                    float((s[sorted(there)][:, None] > s[elsewhere][None, :]).float().mean()))
    print("position AUC of ITC (the named third against the same colour and shape elsewhere): " +
          "  ".join(f"{'purple triangle' if h else 'seen pairs'} {np.mean(v):.3f} ({len(v)} texts)"
                    for h, v in auc.items() if v))

    white = lambda g: g["scene"]["background"] == "white"
    for shape in scenes.SHAPES:
        print(ranks(f"a yellow {shape}", [i for i, g in enumerate(gallery) if has(g, "yellow", shape)], white))
    print(ranks("a triangle", [i for i, g in enumerate(gallery) if has(g, shape="triangle")],
                lambda g: has(g, "purple", "triangle")))

    bag = torch.load(args.checkpoint, map_location="cpu").get("bag_head")
    head = None
    if bag is not None:  # a checkpoint read back from the ONNX graphs has no training-only heads
        head = torch.nn.Linear(feats.shape[1], bag["weight"].shape[0])  # BAG's columns first (--aux-bag-where)
        head.load_state_dict(bag)
    col = {a: i for i, a in enumerate(BAG)}
    shapes = lambda g: [o["shape"] for o in g["scene"]["objects"]]
    groups = {  # images whose other objects cannot explain the attributes read
        "yellow on white": lambda g: has(g, "yellow") and white(g) and not has(g, "orange"),
        "yellow on gray or black": lambda g: has(g, "yellow") and not white(g) and not has(g, "orange"),
        "one triangle, purple, no star": lambda g: has(g, "purple", "triangle") and shapes(g).count("triangle") == 1
        and "star" not in shapes(g),
        "triangles of other colours, no star": lambda g: has(g, shape="triangle") and not has(g, "purple", "triangle")
        and "star" not in shapes(g),
    }
    for text in args.text:
        s, ids, mask = itc(text)
        if head is None:
            print(f"'{text}': (no attribute-bag head in this checkpoint)")
        else:
            read = torch.sigmoid(bag_logits(head, r.text_feat(ids, mask)))[0]
            print(f"'{text}': " + " ".join(f"{v} {float(read[k]):.2f}" for k, (_, v) in enumerate(BAG) if read[k] > 0.1))
            if len(read) > len(BAG):  # --aux-bag-where: the positional columns
                print("    where: " + " ".join(f"{v}@{p} {float(read[len(BAG) + k]):.2f}"
                                              for k, (_, v, p) in enumerate(WHERE) if read[len(BAG) + k] > 0.1))
        for i in s.argsort(descending=True)[:8].tolist():
            objs = ", ".join(f"{o['size']} {o['color']} {o['shape']}" for o in gallery[i]["scene"]["objects"])
            print(f"    {float(s[i]):.3f}  {gallery[i]['scene']['background']}: {objs}")
    if head is None:
        return
    p = torch.sigmoid(bag_logits(head, feats))
    shown = [("color", "yellow"), ("color", "orange"), ("background", "white"), ("shape", "triangle"), ("shape", "star")]
    print("attribute-bag head, mean probability: " + " ".join(v for _, v in shown))
    for name, keep in groups.items():
        idx = [i for i, g in enumerate(gallery) if keep(g)]
        print(f"  {name:36s} n={len(idx):3d} " + " ".join(f"{float(p[idx, col[a]].mean()):.2f}" for a in shown))


if __name__ == "__main__":
    main()
