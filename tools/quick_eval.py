"""A fast PyTorch-side estimate of the eval metrics, for comparing training runs (recipes, patch
sizes) without exporting each one. The numbers that count are `npm run eval`'s, computed through
the ONNX graphs on the committed eval set; this one draws a smaller set of its own (same grammar,
held-out combinations included) and decodes greedily instead of with beam 3.

    /usr/bin/python3 -m tools.quick_eval tools/checkpoints/blip-scenes.pt [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import random
import re

import numpy as np
import torch

from tools.blip import scenes
from tools.blip.bundle import BlipBundle
from tools.blip.model import BlipConfig
from tools.make_evalset import held_out_query
from tools.batches import make_tokenizer, pad, to_pixels

OBJ = re.compile(r"(small|large) (red|green|blue|yellow|purple|orange) (circle|square|triangle|star)")
BG = re.compile(r"on a (white|gray|black) background")


def caption_key(text: str) -> tuple[str, str | None]:
    objs = sorted(" ".join(m) for m in OBJ.findall(text))
    bg = BG.search(text)
    return "|".join(objs), bg.group(1) if bg else None


@torch.no_grad()
def greedy_batch(decoder, enc, enc_mask, bos: int, eos: int, max_len: int) -> list[list[int]]:
    B = enc.shape[0]
    seqs = torch.full((B, 1), bos, dtype=torch.long, device=enc.device)
    done = torch.zeros(B, dtype=torch.bool, device=enc.device)
    for _ in range(max_len):
        logits = decoder(seqs, torch.ones_like(seqs), enc, enc_mask)[:, -1, :]
        nxt = logits.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
        seqs = torch.cat([seqs, nxt[:, None]], 1)
        done |= nxt == eos
        if bool(done.all()):
            break
    out = []
    for row in seqs[:, 1:].tolist():
        out.append(row[: row.index(eos)] if eos in row else row)
    return out


@torch.no_grad()
def evaluate(model: BlipBundle, cfg: BlipConfig, dev: torch.device, seed: int = 4242, gallery_n: int = 600,
             n_queries: int = 150, n_held: int = 40, n_items: int = 200, rerank: int = 20) -> dict:
    model.eval()
    tok, _ = make_tokenizer()
    inv = {i: w for w, i in tok.vocab.items()}
    dec, eos = tok.added["[DEC]"], tok.sep
    rng = random.Random(seed)
    gal = [scenes.sample_scene(rng, train=False) for _ in range(gallery_n)]
    pix = torch.from_numpy(np.stack([to_pixels(scenes.render_augmented(s, rng), cfg.vision.image_size) for s in gal]))
    r = model.retrieval
    embs = torch.cat([r.vision_model(pix[i:i + 100].to(dev)) for i in range(0, len(gal), 100)])
    feats = r.image_feat(embs)

    queries, seen, tries = [], set(), 0
    while len(queries) < n_queries + n_held and tries < 20000:
        tries += 1
        held = len(queries) >= n_queries
        q = held_out_query(rng) if held else scenes.sample_query(rng.choice(gal), rng)
        text = scenes.query_text(q)
        rel = {i for i, s in enumerate(gal) if scenes.satisfies(s, q)}
        if text in seen or not rel:
            continue
        seen.add(text)
        queries.append((text, rel, held or scenes.mentions_held_out(q)))
    p_itc, p_itm = {True: [], False: []}, {True: [], False: []}
    for text, rel, held in queries:
        ids, mask = pad([tok.encode(text, 35)])
        ids, mask = ids.to(dev), mask.to(dev)
        s = (feats @ r.text_feat(ids, mask)[0]).cpu()
        order = s.argsort(descending=True).tolist()
        cand = order[:rerank]
        itm = r.itm_logits(ids.expand(len(cand), -1), mask.expand(len(cand), -1), embs[cand])[:, 1].cpu()
        re_order = [cand[i] for i in (itm + s[cand]).argsort(descending=True).tolist()]
        denom = min(10, len(rel))
        p_itc[held].append(sum(i in rel for i in order[:10]) / denom)
        p_itm[held].append(sum(i in rel for i in re_order[:10]) / denom)

    items = list(range(min(n_items, gallery_n)))
    cap_ids = greedy_batch(model.caption.text_decoder, embs[items], torch.ones(len(items), embs.shape[1], dtype=torch.long,
                                                                                    device=dev), dec, eos, 40)
    cap_ok = {True: [], False: []}
    bad = []
    for i, ids in zip(items, cap_ids):
        got = " ".join(inv.get(t, "?") for t in ids)
        ok = caption_key(got) == caption_key(scenes.caption(gal[i]))
        cap_ok[scenes.is_held_out(gal[i])].append(ok)
        if not ok and len(bad) < 5:
            bad.append((scenes.caption(gal[i]), got))
    qa = [(i, t, q, a) for i in items for t, q, a in scenes.questions(gal[i], rng)]
    vqa_ok = {True: [], False: []}
    per_type: dict[str, list] = {}
    for k in range(0, len(qa), 256):
        chunk = qa[k:k + 256]
        q_ids, q_mask = pad([tok.encode(q, 35) for _, _, q, _ in chunk])
        q_ids, q_mask = q_ids.to(dev), q_mask.to(dev)
        states = model.vqa.question_states(q_ids, q_mask, embs[[i for i, _, _, _ in chunk]])
        answers = greedy_batch(model.vqa.text_decoder, states, q_mask, dec, eos, 4)
        for (i, t, _, a), got in zip(chunk, answers):
            ok = " ".join(inv.get(x, "?") for x in got) == a
            vqa_ok[scenes.is_held_out(gal[i])].append(ok)
            per_type.setdefault(t, []).append(ok)

    mean = lambda xs: round(float(np.mean(xs)), 4) if xs else None
    both = lambda d: {"overall": mean(d[True] + d[False]), "held_out": mean(d[True])}
    return {"precision_at_10": both(p_itm), "precision_at_10_itc": both(p_itc), "caption_accuracy": both(cap_ok),
            "vqa_accuracy": both(vqa_ok), "vqa_per_type": {t: mean(v) for t, v in sorted(per_type.items())},
            "bad_captions": bad}


def load(path: str, dev: torch.device) -> tuple[BlipBundle, BlipConfig]:
    ck = torch.load(path, map_location="cpu")
    cfg = BlipConfig.from_dict(ck["config"])
    model = BlipBundle(cfg)
    model.load_state_dict({k: v.float() for k, v in ck["model"].items()})
    return model.to(dev), cfg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--gallery", type=int, default=600)
    args = ap.parse_args()
    torch.set_num_threads(2)
    dev = torch.device(args.device)
    model, cfg = load(args.checkpoint, dev)
    print(json.dumps({"checkpoint": args.checkpoint, **evaluate(model, cfg, dev, gallery_n=args.gallery)}, indent=1))


if __name__ == "__main__":
    main()
