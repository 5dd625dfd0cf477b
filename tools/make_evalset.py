"""Held-out evaluation set, drawn with a different seed from training and with held-out
combinations allowed (purple triangles, large orange stars, yellow objects on white):

    /usr/bin/python3 -m tools.make_evalset --out .cache/evalset --seed 20261127

Writes gallery PNGs, and evalset.json: each image's scene, partial-description queries with the
ids of every gallery image that satisfies them (each held-out one naming its combination), full
captions, and questions with answers. Held-out queries: the 25 or so that the first recipe drew
(nine distinct texts of held_out_query, the rest sampled), then --extra-held-out more in the
training queries' forms, as many per combination, so that the held-out figure rests on about 85.
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


COMBINATIONS = ["purple triangle", "large orange star", "yellow on white"]


def other_object(rng: random.Random, background: str | None) -> dict:
    """A second object spec of no held-out combination on that background."""
    while True:
        spec = {"color": rng.choice(list(scenes.COLORS)), "shape": rng.choice(scenes.SHAPES)}
        if not scenes.held_out_combination(spec, background):
            return spec


def held_out_template(rng: random.Random, combination: str) -> dict:
    """A query that names `combination` in the forms the training queries take (scenes.sample_query):
    with or without size, position, a second object, a background, or as a count. held_out_query
    draws from nine texts; these tell the combinations' figures apart (--extra-held-out)."""
    if combination == "yellow on white":
        spec = {"color": "yellow"}
        if rng.random() < 0.7:
            spec["shape"] = rng.choice(scenes.SHAPES)
        else:
            spec["noun"] = rng.choice(["shape", "object"])
        if rng.random() < 0.3:
            spec["size"] = rng.choice(list(scenes.SIZES))
        background = "white"
    else:
        spec = ({"color": "purple", "shape": "triangle"} if combination == "purple triangle"
                else {"size": "large", "color": "orange", "shape": "star"})
        if combination == "purple triangle" and rng.random() < 0.3:
            spec["size"] = rng.choice(list(scenes.SIZES))
        background = rng.choice(list(scenes.BACKGROUNDS)) if rng.random() < 0.3 else None
    q: dict = {"objects": [], "counts": []}
    r = rng.random()
    if r < 0.15:
        q["counts"].append({"n": rng.choice([1, 2]), **spec})
    elif r < 0.45:
        q["objects"] += [spec, other_object(rng, background)]
    else:
        if rng.random() < 0.15:
            spec["hpos"] = rng.choice(["left", "right"])
        elif rng.random() < 0.15:
            spec["vpos"] = rng.choice(["top", "bottom"])
        q["objects"].append(spec)
    if background:
        q["background"] = background
    return q


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".cache/evalset")
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument("--gallery", type=int, default=1200)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--held-out-queries", type=int, default=60)
    ap.add_argument("--extra-held-out", type=int, default=60,
                    help="more held-out queries, as many of each combination, of at least 3 relevant images each "
                         "(drawn last, from their own seed: the rest of the set is what it was without them)")
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

    def add_query(q: dict, held: bool, min_relevant: int = 1) -> bool:
        text = scenes.query_text(q)
        if text in seen:
            return False
        rel = [g["id"] for g in gallery if scenes.satisfies(g["_scene"], q)]
        if len(rel) < min_relevant:
            return False
        seen.add(text)
        queries.append({"text": text, "relevant": rel, "heldOut": held} |
                       ({"combination": scenes.held_out_on(q, q.get("background"))} if held else {}))
        return True

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
    extra = random.Random(f"{args.seed}-held-out")
    for k in range(args.extra_held_out):
        for _ in range(2000):
            if add_query(held_out_template(extra, COMBINATIONS[k % len(COMBINATIONS)]), True, min_relevant=3):
                break
    for g in gallery:
        del g["_scene"]
    (out / "evalset.json").write_text(json.dumps({"seed": args.seed, "gallery": gallery, "queries": queries,
                                                   "items": items}, indent=0))
    print(f"gallery {len(gallery)} (held-out images {len(held)}), queries {len(queries)} "
          f"(held-out {sum(q['heldOut'] for q in queries)}), captioned {len(items)}")


if __name__ == "__main__":
    main()
