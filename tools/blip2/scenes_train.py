"""The BLIP-2 recipe in miniature, on the synthetic scenes (docs/blip2.md, "The scene BLIP-2"):

    export OPENBLAS_NUM_THREADS=1
    /usr/bin/python3 -m tools.blip2.scenes_train tools/recipes/blip2_scenes.py [--minutes M] [--out DIR]

1. language model: a small OPT (tools/blip2/model.py) with a byte-level BPE vocabulary of the scene
   words (tokenizer.small_bpe_tokenizer), pretrained on scene language alone (captions, and
   `Question: {q} Answer: {a}` texts), then frozen;
2. image encoder: the bundled BLIP's ViT, read back from models/blip-scenes's ONNX graphs
   (tools/blip/onnx_weights.py), frozen. Its features are computed once for a pool of rendered
   training scenes (it never changes, so there is nothing to recompute per step);
3. Q-Former stage 1, representation learning as BLIP-2's first stage: queries and text share the
   self-attention of every layer under three masks: image-text contrastive (ITC: each side alone,
   the best query's similarity), image-text matching (ITM: bidirectional, hard negatives drawn
   by ITC similarity) and image-grounded text generation (ITG: text sees all queries, causally
   itself; queries never see the text). The text side's embeddings, feed-forwards and heads are
   training-only (HF's BLIP-2 OPT checkpoints drop them too);
4. Q-Former stage 2, generative: queries -> language_projection -> prefix of the frozen OPT,
   prompt `Question: {q} Answer:`, loss on the answer and EOS.

Then the model is exported (tools/blip2/export.py) to a family "blip2" folder. Every stage's
length is a number of steps in the recipe; --minutes scales them all to fit a time budget from
the first steps' measured speed (and is how the budget was met on a shared machine).
"""
from __future__ import annotations

import argparse
import json
import math
import random
import runpy
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tools.batches import to_pixels
from tools.blip import scenes

from . import scenes_data
from .export import export_folder, folder_bytes
from .onnx_weights import parameters_from_folder
from .model import (Blip2Config, Blip2ForConditionalGeneration, OptConfig, QFormerConfig, VisionConfig, _heads,
                    _merge, init_weights)
from .tokenizer import ByteLevelBpe, small_bpe_tokenizer

OPTIONS = dict(
    blip_dir="models/blip-scenes", out="models/blip2-scenes", name="blip2-scenes", seed=42, threads=2,
    llm_hidden=128, llm_layers=3, llm_heads=4, llm_ffn=512, max_positions=96,
    sinusoidal_positions=True, fixed_embeddings=True, qformer_hidden=128, qformer_layers=2, qformer_heads=4, qformer_ffn=512, cross_frequency=1,
    pool=6000, window=8, lm_steps=800, lm_batch=64, lm_lr=2e-3,
    stage1_steps=300, stage1_batch=48, stage1_lr=1e-3,
    stage2_steps=2000, stage2_batch=32, stage2_questions=3, stage2_lr=1e-3,
    minutes=0.0, lm_share=0.15, stage1_share=0.15, max_new_tokens=32, log_every=50, lm_reading_min=0.0,
    lm_type_weights={}, lm_from="", qformer_from="",
)


# ---------------------------------------------------------------- texts

class Texts:
    """Token ids of scene texts: [BOS] text [EOS], padded on the right with pad."""

    def __init__(self, tokenizer: dict, bos: int, eos: int, pad: int):
        self.bpe, self.bos, self.eos, self.pad = ByteLevelBpe(tokenizer), bos, eos, pad

    def batch(self, texts: list[str], eos: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        seqs = [[self.bos] + self.bpe.encode(t) + ([self.eos] if eos else []) for t in texts]
        n = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), n), self.pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), n), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = 1
        return ids, mask

    def scored(self, items: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[BOS] context + target [EOS] with a 0/1 map of the positions whose next token is scored
        (the target's tokens and EOS). Context and target are tokenized apart, as a prompt and the
        answer generated after it are."""
        seqs, starts = [], []
        for context, target in items:
            p = [self.bos] + (self.bpe.encode(context) if context else [])
            seqs.append(p + self.bpe.encode(target) + [self.eos])
            starts.append(len(p))
        n = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), n), self.pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), n), dtype=torch.long)
        scored = torch.zeros((len(seqs), n), dtype=torch.bool)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = 1
            scored[i, starts[i]:len(s)] = True
        return ids, mask, scored

    def qa(self, items: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[BOS] `Question: {q} Answer:` + answer [EOS], the answer and EOS scored, as LAVIS's OPT
        VQA loss scores only the answer."""
        return self.scored([(scenes_data.prompt(q), " " + a) for q, a in items])


# At most 3 objects in a scene (tools/blip/scenes.py sample_scene): a window for each and one for the background.
WINDOWS = 4


def windows(scene: scenes.Scene, texts: Texts, width: int) -> list[int]:
    """The scene's description as the language model reads it in pretraining, laid out as stage 2
    lays out the image's queries: WINDOWS windows of `width` tokens, one per object left to right
    (`a small red circle on the left`) then the background's (`on a black background`), each padded
    with the pad token, so that [BOS] always stands at position WINDOWS * width, as it stands after
    the queries. The layout is what lets this small OPT learn to read: OPT's positions are learnt
    absolute embeddings, and with a free-running description every scene size, phrase length and
    question template moved the positions it learnt its lookups for; its reading stopped near 0.70
    (docs/history/training.md)."""
    objs = scene.sorted_objects()
    phrases = [f"{scenes.obj_phrase(o)} {scenes_data.where_answer(o)}" for o in objs]
    phrases += [""] * (WINDOWS - 1 - len(objs)) + [f"on a {scene.background} background"]
    out: list[int] = []
    for phrase in phrases:
        ids = texts.bpe.encode(phrase) if phrase else []
        if len(ids) > width:
            raise ValueError(f"{phrase!r} is {len(ids)} tokens, over the window of {width}")
        out += ids + [texts.pad] * (width - len(ids))
    return out


def lm_batch(rng: random.Random, texts: Texts, n: int, width: int,
             type_weights: dict[str, float] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n pretraining items for the language model: a training scene's windows (the context), then
    `[BOS] Question: {q} Answer:` and the answer with EOS, which alone are scored (LAVIS's VQA loss),
    so that the model learns to answer from what precedes the prompt, where stage 2 puts the
    image's queries. Every question form is drawn, "describe the picture" (the caption) included.

    Scoring every token of `{caption}. Question: {q} Answer: {a}` instead left the answers a few
    percent of the loss: the model learnt the answers' prior and not to read them (exact match 0.52
    with the true caption as context), and stage 2 could not do better than that.

    `type_weights` draws some question types more often than the others (a type not named weighs 1):
    the lookups the model reads last, colour of a shape and shape of a colour, can be given more of
    the steps."""
    shown, items = [], []
    for _ in range(n):
        s = scenes.sample_scene(rng, train=True)
        qs = scenes_data.all_questions(s, rng, train=True)
        if type_weights:
            _t, q, a = rng.choices(qs, weights=[type_weights.get(t, 1.0) for t, _q, _a in qs])[0]
        else:
            _t, q, a = rng.choice(qs)
        shown.append(windows(s, texts, width))
        items.append((q, a))
    ids, mask, scored = texts.qa(items)
    context = torch.tensor(shown)
    return (torch.cat([context, ids], 1), torch.cat([torch.ones_like(context), mask], 1),
            torch.cat([torch.zeros_like(context, dtype=torch.bool), scored], 1))


def shifted_loss(logits: torch.Tensor, ids: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits[:, t] against ids[:, t + 1] where scored[:, t + 1]."""
    lg, tg, keep = logits[:, :-1], ids[:, 1:], scored[:, 1:]
    return F.cross_entropy(lg[keep], tg[keep])


def reading_probe(lm, texts: Texts, newline: int, width: int, seed: int = 7, scenes_n: int = 100) -> dict:
    """Exact match of the language model's greedy answers with the scene's true description
    (windows) as the context, per question type ("describe" aside; held-out combinations allowed):
    what stage 2 can reach at best, since its queries stand where the windows stand. Run after
    pretraining."""
    rng = random.Random(seed)
    hits: dict[str, list[int]] = {}
    with torch.no_grad():
        for _ in range(scenes_n):
            s = scenes.sample_scene(rng, train=False)
            context = windows(s, texts, width)
            for t, q, a in rng.sample(scenes_data.all_questions(s, rng, train=False), 3):
                if t == "describe":
                    continue
                ids = context + [texts.bos] + texts.bpe.encode(scenes_data.prompt(q))
                out: list[int] = []
                for _step in range(8):
                    x = torch.tensor([ids + out])
                    token = int(lm(lm.embed(x), torch.ones_like(x))[0, -1].argmax())
                    if token in (texts.eos, newline):
                        break
                    out.append(token)
                hits.setdefault(t, []).append(int(texts.bpe.decode(out).strip() == a))
    every = [h for v in hits.values() for h in v]
    return {"exact": round(float(np.mean(every)), 4), **{t: round(float(np.mean(v)), 3) for t, v in sorted(hits.items())}}


# ---------------------------------------------------------------- Q-Former stage 1

class QFormerTextSide(nn.Module):
    """The training-only text half of the Q-Former (BLIP-2 stage 1): word and position embeddings,
    a text feed-forward per layer, ITC projections, ITM and ITG heads. Attention weights are the
    Q-Former's own (shared with the queries), as in BLIP-2."""

    def __init__(self, c: QFormerConfig, vocab: int, max_len: int, embed: int = 64):
        super().__init__()
        h = c.hidden_size
        self.words = nn.Embedding(vocab, h)
        self.positions = nn.Embedding(max_len, h)
        self.ffn = nn.ModuleList([nn.Sequential(nn.Linear(h, c.intermediate_size), nn.GELU(), nn.Linear(c.intermediate_size, h))
                                  for _ in range(c.num_hidden_layers)])
        self.ffn_ln = nn.ModuleList([nn.LayerNorm(h, eps=c.layer_norm_eps) for _ in range(c.num_hidden_layers)])
        self.vision_proj = nn.Linear(h, embed)
        self.text_proj = nn.Linear(h, embed)
        self.itm_head = nn.Linear(h, 2)
        self.lm_head = nn.Linear(h, vocab)
        self.temp = nn.Parameter(torch.tensor(0.07))


def _attend(att, h: torch.Tensor, states: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """QFormerAttention `att` (self or cross) with a boolean mask allowed [B, Tq, Tk]."""
    m = att.attention
    q, k, v = _heads(m.query(h), m.heads), _heads(m.key(states), m.heads), _heads(m.value(states), m.heads)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if allowed is not None:
        scores = scores.masked_fill(~allowed[:, None], torch.finfo(scores.dtype).min)
    return att.output(_merge(torch.softmax(scores, dim=-1) @ v), h)


def joint_forward(model: Blip2ForConditionalGeneration, side: QFormerTextSide, image_embeds: torch.Tensor | None,
                  ids: torch.Tensor | None, mask: torch.Tensor | None, mode: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Queries and/or text through the Q-Former's layers. mode: "queries" (queries alone), "text"
    (text alone, bidirectional), "itm" (both, bidirectional), "itg" (queries alone among themselves,
    text sees all queries and itself causally). Returns (query states, text states)."""
    qf = model.qformer
    parts, nq = [], 0
    if mode != "text":
        b = image_embeds.shape[0]
        parts.append(model.query_tokens.expand(b, -1, -1))
        nq = parts[0].shape[1]
    if mode != "queries":
        t = ids.shape[1]
        parts.append(side.words(ids) + side.positions(torch.arange(t))[None])
    h = qf.layernorm(torch.cat(parts, dim=1))
    b, n = h.shape[:2]
    allowed = None
    if mode != "queries":
        text_ok = mask.bool()
        key_ok = torch.cat([torch.ones(b, nq, dtype=torch.bool), text_ok], dim=1)
        allowed = key_ok[:, None, :].expand(b, n, n).clone()
        if mode == "itg":
            t = ids.shape[1]
            allowed[:, :nq, nq:] = False
            allowed[:, nq:, nq:] &= torch.tril(torch.ones(t, t, dtype=torch.bool))[None]
    for li, layer in enumerate(qf.encoder.layer):
        h = _attend(layer.attention, h, h, allowed)
        qh, th = h[:, :nq], h[:, nq:]
        if nq:
            if layer.has_cross_attention:
                qh = _attend(layer.crossattention, qh, image_embeds, None)
            qh = layer.output_query(layer.intermediate_query(qh), qh)
        if th.shape[1]:
            th = side.ffn_ln[li](side.ffn[li](th) + th)
        h = torch.cat([qh, th], dim=1)
    return (h[:, :nq] if nq else None), (h[:, nq:] if mode != "queries" else None)


def stage1_losses(model, side, image_embeds, ids, mask, same: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """ITC, ITM and ITG losses; same[i, j] says image i's caption is text j's (duplicates in a batch)."""
    qs, _ = joint_forward(model, side, image_embeds, None, None, "queries")
    _, ts = joint_forward(model, side, None, ids, mask, "text")
    qf = F.normalize(side.vision_proj(qs), dim=-1)            # [B, Q, E]
    tf = F.normalize(side.text_proj(ts[:, 0]), dim=-1)         # [B, E] (BOS as the CLS token)
    sim = torch.einsum("bqe,te->bqt", qf, tf).max(dim=1).values / side.temp.clamp(0.01, 0.5)  # i2t [B, B]
    target = same.float() / same.float().sum(1, keepdim=True)
    itc = (-(F.log_softmax(sim, 1) * target).sum(1).mean() - (F.log_softmax(sim.t(), 1) * target.t()).sum(1).mean()) / 2
    # ITM: each image with its text, with a hard negative text, and each text with a hard negative image
    with torch.no_grad():
        w_i2t = F.softmax(sim, 1).masked_fill(same, 0) + 1e-6
        w_t2i = F.softmax(sim.t(), 1).masked_fill(same.t(), 0) + 1e-6
        neg_t = torch.multinomial(w_i2t, 1)[:, 0]
        neg_i = torch.multinomial(w_t2i, 1)[:, 0]
    img3 = torch.cat([image_embeds, image_embeds, image_embeds[neg_i]])
    ids3, mask3 = torch.cat([ids, ids[neg_t], ids]), torch.cat([mask, mask[neg_t], mask])
    q3, _ = joint_forward(model, side, img3, ids3, mask3, "itm")
    labels = torch.cat([torch.ones(len(ids)), torch.zeros(2 * len(ids))]).long()
    itm = F.cross_entropy(side.itm_head(q3.mean(1)), labels)
    _, tg = joint_forward(model, side, image_embeds, ids, mask, "itg")
    itg = shifted_loss(side.lm_head(tg), ids, mask.bool())
    return itc, itm, itg


# ---------------------------------------------------------------- the pool of frozen image features

def load_vision(model: Blip2ForConditionalGeneration, blip_dir: str) -> None:
    from tools.blip.onnx_weights import state_dict_from_folder
    tok = json.loads((Path(blip_dir) / "tokenizer.json").read_text())
    _c, state, _missing = state_dict_from_folder(blip_dir, tok)
    prefix = "retrieval.vision_model."
    vs = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    model.vision_model.load_state_dict(vs, strict=True)


Exported = tuple[Blip2Config, dict[str, torch.Tensor]]


def load_language_model(model: Blip2ForConditionalGeneration, folder: str, tokenizer: dict,
                        exported: Exported | None = None) -> None:
    """The frozen OPT of an exported scene BLIP-2 (tools/blip2/onnx_weights.py), so that the Q-Former
    stages can be trained again without pretraining it anew (most of the recipe's time). Its
    tokenizer and LM options must be this run's. `exported`: the folder's parameters_from_folder,
    when the caller has read them already."""
    if json.loads((Path(folder) / "tokenizer.json").read_text()) != json.loads(json.dumps(tokenizer)):
        raise SystemExit(f"lm_from {folder}: its tokenizer is not this run's (another seed or vocabulary)")
    config, found = exported or parameters_from_folder(folder)
    if config.text != model.config.text:
        raise SystemExit(f"lm_from {folder}: its language model is {config.text}, this run's {model.config.text}")
    lm = model.language_model
    theirs = {k[len("language_model."):]: v for k, v in found.items() if k.startswith("language_model.")}
    missing, unexpected = lm.load_state_dict(theirs, strict=False)
    loaded = {id(p) for n, p in lm.named_parameters() if n in theirs}
    # a key may be missing only as the alias of a tied parameter that was loaded (the LM head)
    own = lm.state_dict(keep_vars=True)
    if unexpected or any(id(own[k]) not in loaded for k in missing):
        raise SystemExit(f"lm_from {folder}: parameters missing {missing} or unexpected {unexpected}")


def load_qformer(model: Blip2ForConditionalGeneration, folder: str, exported: Exported | None = None) -> None:
    """The query path of an exported scene BLIP-2 (query tokens, Q-Former, language projection: all
    of the Q-Former that its graph holds, as the text side lives in QFormerTextSide), so that
    stage 2 can go on from it (`qformer_from`). `exported` as for load_language_model."""
    config, found = exported or parameters_from_folder(folder)
    if config.qformer != model.config.qformer or config.num_query_tokens != model.config.num_query_tokens:
        raise SystemExit(f"qformer_from {folder}: its Q-Former is {config.qformer}, this run's {model.config.qformer}")
    with torch.no_grad():
        model.query_tokens.copy_(found["query_tokens"])
    for prefix, module in (("qformer.", model.qformer), ("language_projection.", model.language_projection)):
        missing, unexpected = module.load_state_dict({k[len(prefix):]: v for k, v in found.items() if k.startswith(prefix)}, strict=False)
        if missing or unexpected:
            raise SystemExit(f"qformer_from {folder}: {prefix} parameters missing {missing} or unexpected {unexpected}")


def make_pool(model, n: int, rng: random.Random, size: int) -> tuple[list, torch.Tensor]:
    """n training scenes (never a held-out combination), rendered by the augmenting renderer, and
    their frozen image features [n, N, Dv]."""
    pool, feats = [], []
    with torch.no_grad():
        for start in range(0, n, 64):
            chunk = [scenes.sample_scene(rng, train=True) for _ in range(min(64, n - start))]
            px = torch.from_numpy(np.stack([to_pixels(scenes.render_augmented(s, rng, box=True), size) for s in chunk]))
            feats.append(model.vision_model(px))
            pool += chunk
    return pool, torch.cat(feats)


# ---------------------------------------------------------------- the run

def build(o: dict, vision: dict, vocab: int) -> Blip2ForConditionalGeneration:
    c = Blip2Config(VisionConfig(**vision),
                    QFormerConfig(hidden_size=o["qformer_hidden"], intermediate_size=o["qformer_ffn"],
                                  num_hidden_layers=o["qformer_layers"], num_attention_heads=o["qformer_heads"],
                                  cross_attention_frequency=o["cross_frequency"], encoder_hidden_size=vision["hidden_size"]),
                    OptConfig(vocab_size=vocab, hidden_size=o["llm_hidden"], ffn_dim=o["llm_ffn"],
                              num_hidden_layers=o["llm_layers"], num_attention_heads=o["llm_heads"],
                              max_position_embeddings=o["max_positions"], word_embed_proj_dim=o["llm_hidden"]),
                    num_query_tokens=WINDOWS * o["window"])  # a query for each position of the description windows
    m = Blip2ForConditionalGeneration(c)
    init_weights(m, std=0.02, seed=o["seed"])
    with torch.no_grad():  # LayerNorms start as identities, biases at zero, for training
        for name, p in m.named_parameters():
            if p.dim() == 1:
                p.copy_(torch.ones_like(p) if name.endswith("weight") else torch.zeros_like(p))
        if o["fixed_embeddings"]:
            table = m.language_model.model.decoder.embed_tokens.weight
            table.normal_(0.0, table.shape[1] ** -0.5, generator=torch.Generator().manual_seed(o["seed"]))
        if o["sinusoidal_positions"]:
            table = m.language_model.model.decoder.embed_positions.weight
            table.copy_(sinusoids(table.shape[0], table.shape[1]) * 0.02 * math.sqrt(2))
    return m


def sinusoids(n: int, d: int) -> torch.Tensor:
    """Transformer sinusoids [n, d] (sin on even, cos on odd columns). OPT's learned position table
    starts from them here instead of noise: with noise, a previous-token head has to be learnt for
    every absolute position, and the 3-layer OPT had not learnt to read its context after 3000
    steps (reading_probe 0.57); with sinusoids a fixed offset is one linear map."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float32) / d)
    out = torch.zeros(n, d)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq)
    return out


def schedule(opt, base_lr: float, step: int, total: int, warmup: int = 50) -> None:
    lr = base_lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(1, total)))
    for g in opt.param_groups:
        g["lr"] = lr


def fit(o: dict, stage: str, steps: int, t_stage: float, t_start: float, share: float | None) -> int:
    """With a time budget (o["minutes"]), the number of steps of a stage that fit its share of the
    budget (share of the whole; None: all that is left less a minute for the export), from the
    speed of its first 10 steps."""
    per_step = (time.time() - t_stage) / 10
    if share is None:
        seconds = o["minutes"] * 60 - (time.time() - t_start) - 60
    else:
        seconds = o["minutes"] * 60 * share - (time.time() - t_stage)
    total = max(11, min(steps, 10 + int(seconds / per_step)))
    print(f"{stage}: {per_step:.2f} s a step, {total} steps fit the budget", flush=True)
    return total


def train_stage(o: dict, name: str, opt, lr: float, steps: int, share: float | None, t_start: float,
                losses_of, names: tuple[str, ...] = ("loss",)) -> tuple[int, dict]:
    """One stage's loop: `losses_of()` draws a batch and returns its losses (tensors, in `names`
    order), whose sum is the step's loss. With a budget the step count is fitted at step 10
    (fit). Returns the steps run and the mean of each loss over the last 50."""
    t0, hist, total, step = time.time(), [], steps, 0
    while step < total:
        if step == 10 and o["minutes"] > 0:
            total = fit(o, name, total, t0, t_start, share)
        schedule(opt, lr, step, total)
        parts = losses_of()
        opt.zero_grad()
        sum(parts).backward()
        opt.step()
        hist.append([float(v) for v in parts])
        if step % o["log_every"] == 0 or step == total - 1:
            m = np.mean(hist[-o["log_every"]:], axis=0)
            shown = " ".join(f"{k} {v:.4f}" for k, v in zip(names, m))
            print(f"{name} {step} {shown} ({time.time() - t0:.0f} s)", flush=True)
        step += 1
    return total, (dict(zip(names, np.mean(hist[-50:], axis=0).tolist())) if hist else {})


def run(o: dict) -> dict:
    torch.manual_seed(o["seed"])
    torch.set_num_threads(o["threads"])
    rng = random.Random(o["seed"])
    t_start = time.time()
    tokenizer, newline = small_bpe_tokenizer(scenes_data.vocabulary_words(o["seed"]))
    vocab = len(tokenizer["model"]["vocab"])
    vocab = (vocab + 7) // 8 * 8  # OPT pads its embedding rows to a multiple of 8; ids past the tokenizer decode to nothing
    blip = json.loads((Path(o["blip_dir"]) / "manifest.json").read_text())
    model = build(o, blip["config"]["vision"], vocab)
    c = model.config.text
    texts = Texts(tokenizer, c.bos_token_id, c.eos_token_id, c.pad_token_id)
    lm = model.language_model
    log = {"steps": {}, "loss": {}}

    # 1. the language model on scene language, or an exported model's (lm_from; qformer_from's by default)
    lm_from = o["lm_from"] or o["qformer_from"]
    # each folder read once (a probe export and a pass over its graphs), the LM and the queries from it
    exported = {f: parameters_from_folder(f) for f in {lm_from, o["qformer_from"]} if f}
    if lm_from:
        load_language_model(model, lm_from, tokenizer, exported[lm_from])
        log["steps"]["lm"], log["lm_from"] = 0, lm_from
    else:
        if o["fixed_embeddings"]:
            lm.model.decoder.embed_tokens.weight.requires_grad_(False)
        opt = torch.optim.AdamW([p for p in lm.parameters() if p.requires_grad], lr=o["lm_lr"], weight_decay=0.01)

        def lm_losses():
            ids, mask, scored = lm_batch(rng, texts, o["lm_batch"], o["window"], o["lm_type_weights"])
            return [shifted_loss(lm(lm.embed(ids), mask), ids, scored)]

        log["steps"]["lm"], lm_loss = train_stage(o, "lm", opt, o["lm_lr"], o["lm_steps"], o["lm_share"], t_start, lm_losses)
        log["loss"]["lm"] = lm_loss.get("loss")
    for p in lm.parameters():
        p.requires_grad_(False)
    lm.eval()
    log["lm_reading"] = reading_probe(lm, texts, newline, o["window"])
    print(f"lm reads its context: {log['lm_reading']}", flush=True)
    if log["lm_reading"]["exact"] < o["lm_reading_min"]:
        # Stage 2 reads no better than its frozen language model (docs/blip2.md): stop before the
        # Q-Former stages spend the rest of the budget, and write nothing to the output folder.
        raise SystemExit(f"the language model reads {log['lm_reading']['exact']} of the probe's answers from the "
                         f"true description, under lm_reading_min {o['lm_reading_min']}: stopped before stage 1 "
                         f"after {round((time.time() - t_start) / 60, 1)} min ({log['steps']['lm']} LM steps)")

    # 2. the frozen image encoder and its features for the pool
    load_vision(model, o["blip_dir"])
    for p in model.vision_model.parameters():
        p.requires_grad_(False)
    model.vision_model.eval()
    t0 = time.time()
    pool, feats = make_pool(model, o["pool"], rng, model.config.vision.image_size)
    print(f"pool of {len(pool)} images in {time.time() - t0:.0f} s", flush=True)

    # 3. Q-Former stage 1: ITC, ITM, ITG on captions, or an exported model's queries (qformer_from).
    # Stage 2 draws nothing from torch's generator, so skipping stage 1's set-up leaves it as it was.
    q_params = [model.query_tokens, *model.qformer.parameters()]
    if o["qformer_from"]:
        # stage 1's text side is not exported: stage 2 goes on from the exported queries
        load_qformer(model, o["qformer_from"], exported[o["qformer_from"]])
        log["steps"]["stage1"], log["qformer_from"] = 0, o["qformer_from"]
        earlier = Path(o["qformer_from"]) / "training.json"
        if earlier.exists():  # how the model it goes on from was trained, kept with this one
            log["continues"] = {k: v for k, v in json.loads(earlier.read_text()).items() if k in ("options", "steps", "continues")}
    else:
        side = QFormerTextSide(model.config.qformer, vocab, o["max_positions"])
        opt = torch.optim.AdamW(q_params + list(side.parameters()), lr=o["stage1_lr"], weight_decay=0.05)

        def stage1_batch():
            idx = rng.sample(range(len(pool)), o["stage1_batch"])
            caps = [scenes.caption(pool[i]) if rng.random() < 0.5 else scenes.caption_paraphrase(pool[i], rng) for i in idx]
            canon = [scenes.caption(pool[i]) for i in idx]
            same = torch.tensor([[a == b for b in canon] for a in canon])
            ids, mask = texts.batch(caps)
            return list(stage1_losses(model, side, feats[idx], ids, mask, same))

        log["steps"]["stage1"], log["loss"]["stage1"] = train_stage(
            o, "stage1", opt, o["stage1_lr"], o["stage1_steps"], o["stage1_share"], t_start, stage1_batch, ("itc", "itm", "itg"))

    # 4. Q-Former stage 2: generative, with the frozen language model
    params = q_params + list(model.language_projection.parameters())
    opt = torch.optim.AdamW(params, lr=o["stage2_lr"], weight_decay=0.05)

    def stage2_batch():
        idx = rng.sample(range(len(pool)), o["stage2_batch"])
        rows, items = [], []
        for i in idx:
            qs = scenes_data.all_questions(pool[i], rng, train=True)
            for _t, q, a in rng.sample(qs, min(o["stage2_questions"], len(qs))):
                rows.append(i)
                items.append((q, a))
        ids, mask, scored = texts.qa(items)
        prefix = model.query_embeds(feats[idx]).repeat_interleave(torch.tensor([rows.count(i) for i in idx]), dim=0)
        nq = prefix.shape[1]
        embeds = torch.cat([prefix, lm.embed(ids)], dim=1)
        full_mask = torch.cat([torch.ones(len(rows), nq, dtype=torch.long), mask], dim=1)
        return [shifted_loss(lm(embeds, full_mask)[:, nq:], ids, scored)]

    log["steps"]["stage2"], stage2_loss = train_stage(o, "stage2", opt, o["stage2_lr"], o["stage2_steps"], None, t_start, stage2_batch)
    log["loss"]["stage2"] = stage2_loss.get("loss")
    log["minutes"] = round((time.time() - t_start) / 60, 1)

    steps = log["steps"]
    first = log.get("continues", {}).get("steps", steps)
    source = (f"tools/blip2/scenes_train.py: OPT pretrained on scene language ({first['lm']} steps) then frozen, "
              f"the bundled BLIP ViT frozen, Q-Former stage 1 ITC+ITM+ITG ({first['stage1']} steps), stage 2 "
              f"generative ({first['stage2']} steps" + (f", then {steps['stage2']} more" if "continues" in log else "") + ")")
    manifest = export_folder(o["out"], name=o["name"], model=model, tokenizer=tokenizer, newline_id=newline, source=source,
                             generation={"vqa": {"maxNewTokens": o["max_new_tokens"], "minNewTokens": 0, "numBeams": 1,
                                                 "repetitionPenalty": 1.0}}, decoder_external=False)
    (Path(o["out"]) / "training.json").write_text(json.dumps({"options": o, **log}, indent=2) + "\n")
    print(f"{manifest['modelId']}: {folder_bytes(o['out']) / 1e6:.1f} MB, {log['minutes']} min", flush=True)
    return log


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("recipe", nargs="?")
    for k, v in OPTIONS.items():
        if isinstance(v, dict):
            continue  # recipe only
        ap.add_argument("--" + k.replace("_", "-"), dest=k, type=type(v), default=None)
    args = ap.parse_args()
    o = dict(OPTIONS)
    if args.recipe:
        values = {k: v for k, v in runpy.run_path(args.recipe).items() if not k.startswith("_")}
        unknown = set(values) - set(OPTIONS)
        if unknown:
            raise SystemExit(f"{args.recipe}: unknown options {sorted(unknown)}")
        o.update(values)
    o.update({k: v for k, v in vars(args).items() if k != "recipe" and v is not None})
    run(o)


if __name__ == "__main__":
    main()
