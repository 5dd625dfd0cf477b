"""Held-out evaluation set, drawn with a different seed from training and with held-out
combinations allowed (purple triangles, large orange stars, yellow objects on white):

    /usr/bin/python3 -m tools.make_evalset --out .cache/evalset --seed 20261127

Writes gallery PNGs, and evalset.json: each image's scene, partial-description queries with the
ids of every gallery image that satisfies them, full captions, and questions with answers.
`npm run eval` (scripts/eval-model.ts) runs them through the ONNX graphs.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from tools.blip import scenes


def held_out_query(rng: random.Random) -> dict:
    k = rng.randrange(3)
    if k == 0:
        spec = {"color": "purple", "shape": "triangle"}
        if rng.random() < 0.4:
            spec["size"] = rng.choice(["small", "large"])
        return {"objects": [spec], "counts": []}
    if k == 1:
        return {"objects": [{"size": "large", "color": "orange", "shape": "star"}], "counts": []}
    spec = {"color": "yellow"}
    if rng.random() < 0.6:
        spec["shape"] = rng.choice(scenes.SHAPES)
    else:
        spec["noun"] = "shape"
    return {"objects": [spec], "counts": [], "background": "white"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".cache/evalset")
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument("--gallery", type=int, default=1200)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--held-out-queries", type=int, default=60)
    ap.add_argument("--captioned", type=int, default=400)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    gallery = []
    for i in range(args.gallery):
        s = scenes.sample_scene(rng, train=False)
        img = scenes.render_augmented(s, rng)
        name = f"images/{i:05d}.png"
        img.save(out / name)
        gallery.append({"id": i, "file": name, "scene": s.to_json(), "heldOut": scenes.is_held_out(s),
                        "caption": scenes.caption(s), "_scene": s})
    queries = []
    seen = set()

    def add_query(q: dict, held: bool) -> None:
        text = scenes.query_text(q)
        rel = [g["id"] for g in gallery if scenes.satisfies(g["_scene"], q)]
        if text in seen or not rel:
            return
        seen.add(text)
        queries.append({"text": text, "relevant": rel, "heldOut": held})

    while sum(not q["heldOut"] for q in queries) < args.queries:
        g = rng.choice(gallery)
        q = scenes.sample_query(g["_scene"], rng)
        add_query(q, scenes.mentions_held_out(q))
    tries = 0
    while sum(q["heldOut"] for q in queries) < args.held_out_queries and tries < 5000:
        tries += 1
        add_query(held_out_query(rng), True)
    # captions and questions: every held-out image among the first ones, plus others
    held = [g for g in gallery if g["heldOut"]]
    rest = [g for g in gallery if not g["heldOut"]]
    chosen = held[: args.captioned // 2] + rest[: args.captioned - min(len(held), args.captioned // 2)]
    items = []
    for g in chosen:
        qs = [{"type": t, "question": q, "answer": a} for t, q, a in scenes.questions(g["_scene"], rng)]
        items.append({"id": g["id"], "heldOut": g["heldOut"], "caption": g["caption"], "questions": qs})
    for g in gallery:
        del g["_scene"]
    (out / "evalset.json").write_text(json.dumps({"seed": args.seed, "gallery": gallery, "queries": queries,
                                                   "items": items}, indent=0))
    print(f"gallery {len(gallery)} (held-out images {len(held)}), queries {len(queries)} "
          f"(held-out {sum(q['heldOut'] for q in queries)}), captioned {len(items)}")


if __name__ == "__main__":
    main()
