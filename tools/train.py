"""Train the bundled model on synthetic scenes with BLIP's objectives: ITC (contrastive; targets from
the scene grammar, so partial queries that hold for several images in a batch are all positives),
ITM with hard negatives mined from ITC similarity (plus one-attribute perturbations of the true
description), captioning LM, and VQA (question encoder with cross-attention to the image, answer
decoder). Two training-only heads, never exported, speed it up: a per-patch object head and an
attribute bag read from the ITC features.

A recipe is a small Python file of option values (tools/recipes/); flags after it override them:

    export OPENBLAS_NUM_THREADS=1
    /usr/bin/python3 -m tools.train tools/recipes/scenes_hour_vision.py
    /usr/bin/python3 -m tools.train tools/recipes/scenes_hour_joint.py
    /usr/bin/python3 -m tools.train tools/recipes/scenes_hour_joint.py --steps 10 --no-bf16 --out /tmp/try.pt

Batches come from tools.batches (images outside the grammar's palette from tools.augment). Then
`python3 -m tools.export_scenes` writes models/blip-scenes/. docs/models.md has the recipe's
results; docs/history/training.md what else was tried.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import runpy
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tools.augment import VisionAugment
from tools.batches import (AUX_CLASSES, BAG, WHERE, BatchStream, make_batch, make_tokenizer, make_vision_batch,
                           pad, to_device)
from tools.blip import scenes
from tools.blip.bundle import BlipBundle, scenes_config


def aux_loss(aux_head, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum over the label columns (batches.AUX_CLASSES) of the per-patch cross-entropy (ignoring -100)."""
    logits = aux_head(emb[:, 1:, :])  # [B, P, sum(AUX_CLASSES)]
    loss = torch.zeros((), device=emb.device)
    for k, (lo, n) in enumerate(zip(np.cumsum([0] + AUX_CLASSES[:-1]), AUX_CLASSES)):
        loss = loss + F.cross_entropy(logits[..., lo:lo + n].reshape(-1, n), labels[..., k].reshape(-1), ignore_index=-100)
    return loss


def lm_loss(decoder, ids, mask, enc, enc_mask, smoothing=0.1, noise=0.0, word_ids=None):
    inp = ids[:, :-1]
    if noise > 0:
        # Replace some teacher-forced input words with random scene words: the decoder must read
        # attributes from the image, not from the words before them (held-out combinations such as
        # "purple triangle" never follow each other in training captions).
        flip = (torch.rand(inp.shape, device=inp.device) < noise) & (inp >= word_ids[0]) & (inp <= word_ids[1])
        inp = torch.where(flip, torch.randint(word_ids[0], word_ids[1] + 1, inp.shape, device=inp.device), inp)
    logits = decoder(inp, mask[:, :-1], enc, enc_mask)
    target = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100,
                           label_smoothing=smoothing)


def word_range(tok) -> tuple[int, int]:
    """Token ids of the whole-word scene vocabulary (after specials and punctuation), for --word-noise."""
    ws = [tok.vocab[w] for w in scenes.WORDS]
    return min(ws), max(ws)


def bag_logits(bag_head, feats: torch.Tensor) -> torch.Tensor:
    """The BAG attributes' logits read from normalised ITC features, scaled by sqrt(dim): unit vectors
    have coordinates of about 1/16, too small for a linear head that starts from the usual
    initialisation to reach confident logits within a stage."""
    return bag_head(feats * feats.shape[1] ** 0.5)


def bag_loss(bag_head, img_feat: torch.Tensor, txt_feat: torch.Tensor, batch, mix_feat: torch.Tensor | None = None,
             every_text: bool = False, text_only_feat: torch.Tensor | None = None, where: bool = False) -> torch.Tensor:
    """Multi-label cross-entropy of the BAG attributes read linearly from the normalised ITC features:
    of every image (over the columns its mask keeps), of every text that is a complete caption of
    its image or, with every_text (--aux-bag-text), of every text over every column (what it does
    not name being 0: batches.named_bag), of the --vision-mix images (--aux-bag-mix), and of the
    texts without images (--text-only). With `where` (--aux-bag-where) the positional columns
    (batches.WHERE) follow BAG's, read from the same features under the same rules."""
    def cols(key: str) -> torch.Tensor:  # the batch's BAG columns, and the WHERE ones after them
        return torch.cat([batch[key], batch[key.replace("bag", "where")]], 1) if where else batch[key]

    complete = batch["complete"]
    mask = cols("bag_mask")  # relit scenes drop their background column, --no-confounded-negatives a colour
    if every_text:
        feats, labels, masks = [img_feat, txt_feat], [cols("bag"), cols("text_bag")], [mask, torch.ones_like(cols("text_bag"))]
    else:
        feats, labels = [img_feat, txt_feat[complete]], [cols("bag"), cols("bag")[complete]]
        masks = [mask, mask[complete]]
    if mix_feat is not None:
        feats.append(mix_feat)
        labels.append(cols("mix_bag"))
        masks.append(cols("mix_bag_mask"))
    if text_only_feat is not None:
        feats.append(text_only_feat)
        labels.append(cols("text_only_bag"))
        masks.append(torch.ones_like(labels[-1]))
    mask = torch.cat(masks)
    loss = F.binary_cross_entropy_with_logits(bag_logits(bag_head, torch.cat(feats)), torch.cat(labels), reduction="none")
    return (loss * mask).sum() / mask.sum()


def similarity(img_feat: torch.Tensor, txt_feat: torch.Tensor, temp: torch.Tensor) -> torch.Tensor:
    """ITC logits, in float32 even under --bf16: at a temperature of 0.03 bfloat16's 8-bit mantissa
    would round them by about 0.1, as much as the gaps ITC has to learn between near-miss texts."""
    with torch.autocast(img_feat.device.type, enabled=False):
        return img_feat.float() @ txt_feat.float().t() / temp


def itc_loss(sim: torch.Tensor, match: torch.Tensor, known: torch.Tensor | None = None,
             extra: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Contrastive loss over the [image, text] similarities: every text that holds for an image is a
    positive (targets spread evenly over them), both ways. Pairs that are not `known` (a relit
    image and a text that names a background) are neither match nor non-match: left out of both
    softmaxes (by a finite logit, so that 0 * log p stays 0). `extra` (similarities, match, known
    of more texts: --itc-moved's counterfactuals) adds columns to each image's softmax only: those
    texts are there as hard negatives (or positives of other images), not as queries."""
    if known is not None:
        sim = sim.masked_fill(~known, -1e4)
    t2i = -(F.log_softmax(sim.t(), 1) * (match.t() / match.t().sum(1, keepdim=True))).sum(1).mean()
    if extra is not None:
        e_sim, e_match, e_known = extra
        sim, match = torch.cat([sim, e_sim.masked_fill(~e_known, -1e4)], 1), torch.cat([match, e_match], 1)
    i2t = -(F.log_softmax(sim, 1) * (match / match.sum(1, keepdim=True))).sum(1).mean()
    return (i2t + t2i) / 2


@torch.no_grad()
def negative_weights(sim: torch.Tensor, match: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
    """ITM hard-negative sampling weights [image, text], on the CPU: each image's ITC softmax over
    texts, zero for matches and for pairs that are not known. A text's negative image is drawn from
    its column (BLIP draws it from the text's own softmax over images: no better here, see
    docs/history/training.md). Mining runs on the CPU: one transfer instead of a device sync per
    sampled negative."""
    M, sim = match.cpu(), sim.detach().float().cpu()
    if known is not None:
        # each image's own text is known, and each text's own image: no empty row or column
        sim = sim.masked_fill(~known.cpu(), float("-inf"))
    w = torch.softmax(sim, dim=1).masked_fill(M > 0, 0) + 1e-9 * (M == 0)  # every true non-match stays drawable
    return w * known.cpu() if known is not None else w  # ... but not an unknown pair


def step_losses(model: BlipBundle, batch, temp: torch.Tensor, rng: random.Random, word_noise: float = 0.0,
                word_ids: tuple[int, int] | None = None, aux_head=None, bag_head=None, bag_mix: bool = False,
                bag_text: bool = False, bag_where: bool = False):
    """The joint losses on one batch: (itc, itm, lm, vqa, aux, bag)."""
    r = model.retrieval
    B = batch["pixels"].shape[0]
    mixed = "mix_pixels" in batch
    pixels = torch.cat([batch["pixels"]] + ([batch["mix_pixels"]] if mixed else []))
    emb_all = r.vision_model(pixels)  # shared vision encoder, one pass for the scenes and the mix
    emb = emb_all[:B]
    dev = emb.device
    aux = torch.zeros((), device=dev)
    if aux_head is not None:
        # Each patch token predicts the colour, shape, size, rank and thirds of the object under it.
        # A ViT trained from scratch on 2 CPU cores otherwise spends most of its budget discovering
        # objects; this dense signal gets it there sooner. The --vision-mix images (recoloured,
        # relit) train only the training-only heads: vision-only stages taught the encoder things
        # the joint stages after them undid; mixed in, they keep being taught.
        labels = torch.cat([batch["patches"]] + ([batch["mix_patches"]] if mixed else []))
        aux = aux_loss(aux_head, emb_all, labels)
    ids, mask = batch["text"]
    img_feat = r.image_feat(emb)
    txt_feat = r.text_feat(ids, mask)
    sim = similarity(img_feat, txt_feat, temp)
    M, known = batch["match"], batch.get("known")
    # --itc-moved: each placed text's counterfactual in the opposite third (batches.moved) joins the
    # images' softmax. Without it no batch of 48 needed a position and the ITC text feature kept
    # none; with it the position AUC rose from 0.56 to 0.66 in an hour.
    extra = None
    if "moved" in batch:
        extra = (similarity(img_feat, r.text_feat(*batch["moved"]), temp), batch["moved_match"], batch["moved_known"])
    itc = itc_loss(sim, M, known, extra)
    # The attribute bag: each single attribute must be linearly readable from the ITC features.
    # ITC alone let an image's feature encode conjunctions it was trained on: "a yellow star"
    # ranked yellow stars on white (held out) at a median of 586 of 1200, those on other
    # backgrounds at 47. With --aux-bag-mix the recoloured, relit --vision-mix images train it
    # too; with --aux-bag-text every text, read by the same head as the images' (words and
    # pictures of an attribute point the same way); --text-only adds texts without images,
    # held-out combinations among them (the text encoder had learnt to drop "white" after
    # "yellow", which no image-text pair ever shows together); --aux-bag-where adds each colour
    # and shape at its position (batches.WHERE).
    mix_feat = r.image_feat(emb_all[B:]) if mixed and bag_mix else None
    text_only_feat = r.text_feat(*batch["text_only"]) if bag_head is not None and "text_only" in batch else None
    bag = (bag_loss(bag_head, img_feat, txt_feat, batch, mix_feat, bag_text, text_only_feat, bag_where)
           if bag_head is not None else torch.zeros((), device=dev))

    # ITM: positives, one negative image per text and one negative text per image (hard: sampled
    # by ITC similarity among true non-matches, or a one-attribute perturbation of the true text)
    w, M = negative_weights(sim, M, known), M.cpu()
    neg_img, neg_txt_ids = [], []  # neg_img: (text, image) pairs
    ids_cpu, mask_cpu = ids.cpu(), mask.cpu()
    for j in range(B):  # the negative image of text j
        col = w[:, j].masked_fill(M[:, j] > 0, 0)
        if (col > 0).any():
            neg_img.append((j, int(torch.multinomial(col, 1))))
    for i in range(B):
        p = batch["perturbed"][i]
        row = w[i].masked_fill(M[i] > 0, 0)
        if p is not None and (rng.random() < 0.5 or row.sum() <= 0):
            neg_txt_ids.append(p)
        elif row.sum() > 0:
            j = int(torch.multinomial(row, 1))
            neg_txt_ids.append(ids_cpu[j][mask_cpu[j] > 0].tolist())
        else:
            neg_txt_ids.append(None)
    t_idx = [j for j, _ in neg_img]
    i_idx = [i for i in range(B) if neg_txt_ids[i] is not None]
    nt_ids, nt_mask = (t.to(dev) for t in pad([neg_txt_ids[i] for i in i_idx]))
    # which image each pair shows: the keys and values of each image are projected once
    pair_image = torch.tensor(list(range(B)) + [i for _, i in neg_img] + i_idx, device=dev)
    L = max(ids.shape[1], nt_ids.shape[1])
    padto = lambda x: F.pad(x, (0, L - x.shape[1]))
    all_ids = torch.cat([padto(ids), padto(ids[t_idx]), padto(nt_ids)])
    all_mask = torch.cat([padto(mask), padto(mask[t_idx]), padto(nt_mask)])
    labels = torch.cat([torch.ones(B), torch.zeros(len(t_idx) + len(i_idx))]).long().to(dev)
    itm = F.cross_entropy(r.itm_logits(all_ids, all_mask, emb_all[:B], image_index=pair_image), labels)

    cap_ids, cap_mask = batch["caption"]
    cap_emb = emb[batch["caption_image"]]  # relit scenes have no caption (every caption names the background)
    ones = torch.ones(cap_emb.shape[:2], dtype=torch.long, device=dev)
    lm = lm_loss(model.caption.text_decoder, cap_ids, cap_mask, cap_emb, ones, noise=word_noise, word_ids=word_ids)

    return itc, itm, lm, vqa_loss(model, batch, emb), aux, bag


def vqa_loss(model: BlipBundle, batch, emb: torch.Tensor) -> torch.Tensor:
    q_ids, q_mask = batch["question"]
    # Several questions may share an image: the encoder ran once, its output is indexed per question.
    states = model.vqa.question_states(q_ids, q_mask, emb, image_index=batch["question_image"])
    a_ids, a_mask = batch["answer"]
    return lm_loss(model.vqa.text_decoder, a_ids, a_mask, states, q_mask, smoothing=0.0)


def batch_losses(args, model: BlipBundle, batch, temp: torch.Tensor, rng: random.Random, aux_head, bag_head,
                 word_ids: tuple[int, int] | None = None):
    """The stage's losses on one batch: (itc, itm, lm, vqa, aux, bag, weighted total)."""
    zero = torch.zeros((), device=temp.device)
    if args.vision_only:
        aux = aux_loss(aux_head, model.retrieval.vision_model(batch["pixels"]), batch["patches"])
        return zero, zero, zero, zero, aux, zero, aux
    itc, itm, lm, vqa, aux, bag = step_losses(model, batch, temp.clamp(0.001, 0.5), rng, args.word_noise, word_ids,
                                              aux_head, bag_head, args.aux_bag_mix, args.aux_bag_text,
                                              args.aux_bag_where)
    return itc, itm, lm, vqa, aux, bag, itc + itm + lm + vqa + args.aux_patch * aux + args.aux_bag * bag


def float_layer_norms(model: torch.nn.Module) -> None:
    """--bf16: LayerNorms take float32 input. torch 1.13's CPU autocast leaves layer_norm in its input's
    dtype and refuses bfloat16 input with float32 weights; normalising in float32 is also what mixed
    precision wants. A hook keeps this training-only concern out of the exported model's code."""
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.register_forward_pre_hook(lambda _, inputs: tuple(x.float() for x in inputs))


def cpu_bf16_flags(cpuinfo: str) -> set[str]:
    """The bfloat16 instruction sets a /proc/cpuinfo text lists (AVX512-BF16, AMX-BF16). Without
    one, oneDNN emulates bfloat16 matrix products: on an AVX2-only EPYC a vision-only step of 128
    images took about 19 s with --bf16 against 1.0 s in float32."""
    return set(cpuinfo.split()) & {"avx512_bf16", "amx_bf16"}


def _identity(x):
    return x


# How far the DataLoader workers' priority is lowered (os.nice's increment; 19 is the lowest).
WORKER_NICE = 19


def lower_priority(_worker_id: int) -> None:
    """DataLoader worker_init_fn: the workers only draw batches ahead, so they yield the CPU to the
    training loop. With --threads 2 on a 2-core machine the loop's two threads then keep both cores
    and the worker runs in their gaps. At equal priority a worker that takes a core stalls every
    parallel op, whose threads wait for each other: a joint step took 1.02 s that way and
    0.76-0.84 s with the worker lowered (Zen 4)."""
    os.nice(WORKER_NICE)


def arg_parser() -> argparse.ArgumentParser:
    on_off = argparse.BooleanOptionalAction
    ap = argparse.ArgumentParser(description="Train the bundled model (docs/models.md).")
    ap.add_argument("recipe", nargs="?", help="a recipe file (tools/recipes/*.py) whose values are the defaults")
    ap.add_argument("--steps", type=int, default=1300, help="optimizer steps (the schedule is by step)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="optional wall-clock budget; the cosine schedule then follows whichever of steps or "
                         "time runs out first, so the learning rate is annealed when the budget ends")
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--warmup", type=int, default=150, help="steps of linear learning-rate warm-up")
    ap.add_argument("--temp", type=float, default=0.07, help="initial ITC temperature (it is learned; not saved)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1,
                    help="PyTorch intra-op threads. With --bf16 on 2 cores, joint stages are fastest with --threads 2 "
                         "--workers 1 (the worker's priority lowered), vision-only stages with 1. In float32 "
                         "Debian's torch runs its matrix products in OpenBLAS's own thread pool, so 1 already uses "
                         "every core")
    ap.add_argument("--workers", type=int, default=0,
                    help="DataLoader processes drawing scenes (0 = in the loop; each worker draws from its own "
                         "seeded stream, so the batches depend on it)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--bf16", action=on_off, default=False,
                    help="run the forward pass in bfloat16 autocast (losses, ITC similarities, LayerNorms and the "
                         "optimizer stay float32): 1.45x the steps per minute on an AVX512-BF16 CPU, about 19x "
                         "fewer on one without, which emulates bfloat16 (it warns there)")
    ap.add_argument("--out", default="tools/checkpoints/blip-scenes.pt")
    ap.add_argument("--resume", default=None, help="checkpoint to start from (model and training-only heads)")
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--vision-only", action=on_off, default=False,
                    help="train only the vision encoder, on the per-patch labels (no text: about 8x more images "
                         "per second on CPUs); the text stack is saved unchanged")
    ap.add_argument("--decolor", type=float, default=0.0,
                    help="vision-only and --vision-mix images: probability that an object is drawn in a random "
                         "gray, its colour label ignored")
    ap.add_argument("--rehue", type=float, default=0.0,
                    help="vision-only and --vision-mix images: probability that an object is drawn in a random hue "
                         "away from the six named ones, its colour label ignored")
    ap.add_argument("--relight", type=float, default=0.0,
                    help="vision-only and --vision-mix images: probability that the background is a random gray "
                         "level (never near-white behind a yellow object)")
    ap.add_argument("--questions", type=int, default=1, help="VQA questions per scene, of distinct types")
    ap.add_argument("--word-noise", type=float, default=0.15,
                    help="probability that a teacher-forced caption word is replaced by a random scene word, so "
                         "that the decoder reads attributes from the image rather than from the words before them")
    ap.add_argument("--aux-patch", type=float, default=0.5, help="weight of the per-patch object loss (0 = off)")
    ap.add_argument("--aux-bag", type=float, default=0.0,
                    help="weight of the loss that reads each colour, shape, size and background present linearly "
                         "from the ITC features of images and complete captions (0 = off)")
    ap.add_argument("--aux-bag-text", action=on_off, default=False,
                    help="the attribute bag reads every text's ITC feature, over every column, what it does not "
                         "name being absent")
    ap.add_argument("--aux-bag-mix", action=on_off, default=False,
                    help="the attribute bag reads the --vision-mix images' ITC features too")
    ap.add_argument("--aux-bag-where", action=on_off, default=False,
                    help="the attribute bag also reads each colour and shape in the left / right / top / bottom "
                         "third it lies in (batches.WHERE), from images and texts alike")
    ap.add_argument("--vision-mix", type=int, default=0,
                    help="joint stages: images per step drawn as --vision-only draws them that train only the "
                         "training-only heads, beside the joint batch")
    ap.add_argument("--text-only", type=int, default=0,
                    help="per step, this many texts of scenes with held-out combinations allowed, without images, "
                         "train the attribute bag through the text encoder (batches.text_only_batch)")
    ap.add_argument("--text-only-placed", type=float, default=0.0,
                    help="this share of the --text-only texts names one object and the third it lies in "
                         "(batches.placed_text), for --aux-bag-where")
    ap.add_argument("--joint-relight", type=float, default=0.0,
                    help="joint stages: probability that a scene is shown on a random gray ground and described "
                         "only by texts that name no background (no caption, no background question)")
    ap.add_argument("--confounded-negatives", action=on_off, default=True,
                    help="--no-confounded-negatives: a text and an image on whose ground it would make a held-out "
                         "combination (a text naming yellow, a white image) are neither match nor non-match in "
                         "ITC and ITM, and the attribute bag leaves yellow out on white images")
    ap.add_argument("--joint-placed", type=float, default=0.0,
                    help="joint stages: this share of the scenes' own texts names one object and the third it lies "
                         "in (batches.placed_text), for ITC and ITM")
    ap.add_argument("--itc-moved", type=float, default=0.0,
                    help="joint stages: share of the texts that place an object whose counterfactual, the object "
                         "in the opposite third, joins ITC as a hard negative (batches.moved)")
    return ap


def load_recipe(path: str, ap: argparse.ArgumentParser) -> dict:
    """The option values a recipe file sets (its public top-level names), refusing names that are
    no option of tools.train."""
    values = {k: v for k, v in runpy.run_path(path).items() if not k.startswith("_")}
    options = {a.dest for a in ap._actions} - {"help", "recipe"}
    unknown = sorted(set(values) - options)
    if unknown:
        raise SystemExit(f"{path}: {', '.join(unknown)} not options of tools.train (options: {', '.join(sorted(options))})")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = arg_parser()
    first, _ = ap.parse_known_args(argv)
    if first.recipe:
        ap.set_defaults(**load_recipe(first.recipe, ap))
    args = ap.parse_args(argv)
    joint_only = [flag for flag, on in (("--vision-mix", args.vision_mix > 0), ("--aux-bag", args.aux_bag > 0),
                                        ("--text-only", args.text_only > 0), ("--joint-relight", args.joint_relight > 0),
                                        ("--no-confounded-negatives", not args.confounded_negatives),
                                        ("--joint-placed", args.joint_placed > 0), ("--itc-moved", args.itc_moved > 0))
                  if on]
    if args.vision_only and joint_only:
        raise SystemExit(f"{', '.join(joint_only)}: joint stages only, not with --vision-only")
    if args.vision_only and args.aux_patch <= 0:
        raise SystemExit("--vision-only trains on the per-patch labels: --aux-patch must be > 0")
    if (args.decolor > 0 or args.rehue > 0 or args.relight > 0) and not (args.vision_only or args.vision_mix > 0):
        raise SystemExit("--decolor, --rehue and --relight draw images that texts would describe wrongly: they apply "
                         "to --vision-only or --vision-mix images only (--joint-relight relights joint scenes)")
    if args.vision_mix > 0 and args.aux_patch <= 0:
        raise SystemExit("--vision-mix images train the per-patch head: it needs --aux-patch > 0")
    for flag, on in (("--aux-bag-text", args.aux_bag_text), ("--aux-bag-mix", args.aux_bag_mix),
                     ("--aux-bag-where", args.aux_bag_where), ("--text-only", args.text_only > 0)):
        if on and args.aux_bag <= 0:
            raise SystemExit(f"{flag} trains the attribute bag: it needs --aux-bag > 0")
    if args.aux_bag_mix and args.vision_mix <= 0:
        raise SystemExit("--aux-bag-mix reads the --vision-mix images: it needs --vision-mix > 0")
    if args.aux_bag_where and not args.aux_bag_text:
        # without --aux-bag-text only complete captions train the bag, and a caption names no position
        raise SystemExit("--aux-bag-where reads positions from what texts name: it needs --aux-bag-text")
    if args.text_only_placed > 0 and args.text_only <= 0:
        raise SystemExit("--text-only-placed is a share of the --text-only texts: it needs them")
    return args


def batch_options(args: argparse.Namespace) -> tuple[VisionAugment, dict]:
    """The image augmentation and make_batch's options that a stage's arguments ask for, the same in
    the DataLoader workers and in the loop."""
    return VisionAugment(args.decolor, args.rehue, args.relight), dict(
        questions=args.questions, mix=args.vision_mix, relit=args.joint_relight, confounded=args.confounded_negatives,
        text_only=args.text_only, text_only_placed=args.text_only_placed, joint_placed=args.joint_placed,
        itc_moved=args.itc_moved)


def resumed_head(head: torch.nn.Linear, saved: dict | None, name: str) -> None:
    """Starts a training-only head from the checkpoint's, on the rows both have. A stage that
    restarts a head from random weights sends large gradients into a trained encoder while the head
    catches up (a short stage lost ground everywhere that way), so checkpoints carry them."""
    if saved is None or saved["weight"].shape[1] != head.weight.shape[1]:
        return
    kept = min(head.weight.shape[0], saved["weight"].shape[0])
    with torch.no_grad():
        head.weight[:kept] = saved["weight"][:kept]
        head.bias[:kept] = saved["bias"][:kept]
    fresh = head.weight.shape[0] - kept
    print(f"{name} head resumed" + (f", {fresh} columns fresh" if fresh else ""), flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    cpuinfo = Path("/proc/cpuinfo")
    if args.bf16 and dev.type == "cpu" and cpuinfo.exists() and not cpu_bf16_flags(cpuinfo.read_text()):
        print("warning: --bf16 on a CPU without bfloat16 instructions (no avx512_bf16 or amx_bf16 in /proc/cpuinfo): "
              "expect steps many times slower than float32; --no-bf16 turns it off", file=sys.stderr, flush=True)
    rng = random.Random(args.seed)
    tok, _ = make_tokenizer()
    word_ids = word_range(tok)
    cfg = scenes_config(len(tok.vocab) + 2, tok.sep, tok.added["[DEC]"])
    model = BlipBundle(cfg)
    resumed = torch.load(args.resume, map_location="cpu") if args.resume else {}
    if resumed:
        model.load_state_dict(resumed["model"])
    model.to(dev)
    if args.bf16:
        float_layer_norms(model)
    temp = torch.nn.Parameter(torch.tensor(args.temp, device=dev))
    aux_head = torch.nn.Linear(cfg.vision.hidden_size, sum(AUX_CLASSES)).to(dev) if args.aux_patch > 0 else None
    if aux_head is not None:
        resumed_head(aux_head, resumed.get("aux_head"), "per-patch")
    bag_head = None
    if args.aux_bag > 0:
        bag_head = torch.nn.Linear(cfg.image_text_hidden_size, len(BAG) + (len(WHERE) if args.aux_bag_where else 0))
        bag_head = bag_head.to(dev)
        resumed_head(bag_head, resumed.get("bag_head"), "attribute-bag")
    vision = model.retrieval.vision_model
    trained = list(vision.parameters()) if args.vision_only else list(model.parameters()) + [temp]
    params = trained + (list(aux_head.parameters()) if aux_head else []) + (list(bag_head.parameters()) if bag_head else [])
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.02)
    grid = cfg.vision.image_size // cfg.vision.patch_size
    print(f"params {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M  vocab {len(tok.vocab) + 2}  "
          f"batch {args.batch}  image {cfg.vision.image_size}  patch {cfg.vision.patch_size} ({grid * grid + 1} tokens)  "
          f"device {dev}", flush=True)
    aug, joint = batch_options(args)
    if args.workers > 0:
        stream = BatchStream(args.seed, cfg.vision.image_size, args.batch, grid, args.vision_only, aug, **joint)
        batches = iter(torch.utils.data.DataLoader(stream, batch_size=None, num_workers=args.workers,
                                                   collate_fn=_identity, prefetch_factor=4, persistent_workers=True,
                                                   worker_init_fn=lower_priority))
        next_batch = lambda: next(batches)
    elif args.vision_only:
        next_batch = lambda: make_vision_batch(rng, cfg.vision.image_size, args.batch, grid, aug)
    else:
        next_batch = lambda: make_batch(rng, tok, cfg.vision.image_size, args.batch, 35, tok.added["[DEC]"], grid,
                                        aug=aug, **joint)
    budget = args.minutes * 60 if args.minutes else float("inf")
    t0 = time.time()
    step, warm, smoothed = 0, max(1, args.warmup), None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)

    def save():
        head = lambda h: {k: v.cpu() for k, v in h.state_dict().items()} if h else None
        torch.save({"model": {k: v.cpu() for k, v in model.state_dict().items()}, "config": cfg.to_dict(), "step": step,
                    "aux_head": head(aux_head), "bag_head": head(bag_head)}, args.out)
    while True:
        elapsed = time.time() - t0
        if elapsed > budget or step >= args.steps:
            break
        frac = max(step / args.steps, elapsed / budget)
        lr = args.lr * min(1.0, (step + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        batch = to_device(next_batch(), dev)
        model.train()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            *losses, loss = batch_losses(args, model, batch, temp, rng, aux_head, bag_head, word_ids)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % args.log_every == 0:
            vals = [float(x.detach()) for x in losses]
            smoothed = vals if smoothed is None else [0.8 * e + 0.2 * v for e, v in zip(smoothed, vals)]
            itc, itm, lm, vqa, aux, bag = smoothed
            print(f"step {step} t={elapsed/60:.1f}m lr={lr:.2e} itc={itc:.3f} itm={itm:.3f} lm={lm:.3f} vqa={vqa:.3f} "
                  f"aux={aux:.3f} bag={bag:.3f} temp={float(temp):.3f}", flush=True)
        if step % 500 == 0:
            save()
    save()
    print(f"done: {step} steps in {(time.time() - t0) / 60:.1f} min -> {args.out}", flush=True)


if __name__ == "__main__":
    main()
