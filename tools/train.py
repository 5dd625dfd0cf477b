"""Train the bundled model on synthetic scenes with BLIP's objectives:
ITC (contrastive; targets from the scene grammar, so partial queries that hold for several images
in a batch are all positives), ITM with hard negatives mined from ITC similarity (plus
one-attribute perturbations of the true description), captioning LM, and VQA (question encoder
with cross-attention to the image, answer decoder).

The exact commands of the committed model (stages on one GPU and on 2 CPU cores) are in docs/models.md; the
same script runs on CPUs (`--device cpu`, the default): a joint step of 48 scenes (three questions
each) takes about 2.4 s in float32 on an idle 2-core machine with `--threads 1 --workers 1`, and
about 0.9 s with `--bf16 --threads 2 --workers 1` on a Zen 4. `--workers N` draws and renders scenes in
N DataLoader processes, at the lowest priority (lower_priority).

Batches come from tools.batches (images outside the grammar's palette from tools.augment).
Then `python3 -m tools.export_scenes` writes models/blip-scenes/.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tools.augment import VisionAugment
from tools.batches import (AUX_CLASSES, AUX_LABEL_SETS, BAG, WHERE, BatchStream, make_batch, make_tokenizer,
                           make_vision_batch, pad, to_device)
from tools.blip import scenes
from tools.blip.bundle import BlipBundle, scenes_config
from tools.ema import WeightEma, ema_path


# Learning rate of the training-only heads while --head-warmup freezes the model: a linear probe's.
HEAD_WARMUP_LR = 1e-3

# Token id range of the whole-word scene vocabulary (after specials and punctuation).
WORD_RANGE = (0, 0)

def aux_loss(aux_head, emb: torch.Tensor, labels: torch.Tensor, aux_classes: list[int]) -> torch.Tensor:
    """Sum over the label columns of the per-patch cross-entropy (ignoring -100)."""
    logits = aux_head(emb[:, 1:, :])  # [B, P, sum(aux_classes)]
    loss = torch.zeros((), device=emb.device)
    for k, (lo, n) in enumerate(zip(np.cumsum([0] + aux_classes[:-1]), aux_classes)):
        loss = loss + F.cross_entropy(logits[..., lo:lo + n].reshape(-1, n), labels[..., k].reshape(-1), ignore_index=-100)
    return loss


def kept_patches(labels: torch.Tensor, keep: int) -> torch.Tensor:
    """--keep-patches: indices [B, keep] of the patches a vision-only step encodes, each image its own
    draw: every patch an object touches first (batches.patch_labels gives a patch the object of any
    pixel in it, so these carry each shape's whole outline), then background patches at random. A
    touched patch is one with a shape label (column 1): a recoloured object's colour label is -100."""
    score = (labels[..., 1] > 0).float() + torch.rand(labels.shape[:2], device=labels.device)
    return score.topk(keep, dim=1).indices


def pick_patches(per_patch: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The rows [B, keep, C] of a per-patch tensor [B, P, C] that kept_patches' indices name."""
    return torch.gather(per_patch, 1, idx.unsqueeze(-1).expand(-1, -1, per_patch.shape[-1]))


def encode_kept(vision, pixels: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The vision encoder on the CLS token and the patches `idx` picks (positions added before the
    pick, so each keeps its own), as FLIP drops patches: a step of 32 of 64 patches costs about half.
    Training-only; the exported encoder always sees every patch."""
    x = vision.embeddings(pixels)
    return vision.post_layernorm(vision.encoder(torch.cat([x[:, :1], pick_patches(x[:, 1:], idx)], 1)))


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


def bag_logits(bag_head, feats: torch.Tensor) -> torch.Tensor:
    """The BAG attributes' logits read from normalised ITC features, scaled by sqrt(dim): unit vectors
    have coordinates of about 1/16, too small for a linear head that starts from the usual
    initialisation to reach confident logits within a stage."""
    return bag_head(feats * feats.shape[1] ** 0.5)


def bag_loss(bag_head, img_feat: torch.Tensor, txt_feat: torch.Tensor, batch,
             mix_feat: torch.Tensor | None = None, every_text: str | None = None,
             text_only_feat: torch.Tensor | None = None, where: bool = False) -> torch.Tensor:
    """Multi-label cross-entropy of the BAG attributes read linearly from the normalised ITC features:
    of every image, of every text that is a complete caption of its image (every_text: of every
    text, batches.named_bag: "named" over the kinds of attribute it names, "all" over every column,
    what it does not name being 0), (--aux-bag-mix) of the --vision-mix images, over the columns
    their mask keeps, and (--text-only) of the texts without images, over every column. With `where`
    (--aux-bag-where) the positional columns (batches.WHERE) follow BAG's, read from the same
    features under the same rules."""
    def cols(key: str) -> torch.Tensor:  # the batch's BAG columns, and the WHERE ones after them
        return torch.cat([batch[key], batch[key.replace("bag", "where")]], 1) if where else batch[key]

    complete = batch["complete"]
    # relit scenes (--joint-relight) drop their background column (complete texts are never relit),
    # --no-confounded-negatives the held-out colour on its ground
    mask = cols("bag_mask") if "bag_mask" in batch else torch.ones_like(cols("bag"))
    if every_text:
        text_mask = cols("text_bag_mask") if every_text == "named" else torch.ones_like(cols("text_bag"))
        feats, labels, masks = [img_feat, txt_feat], [cols("bag"), cols("text_bag")], [mask, text_mask]
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
             extra: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
             extra_images: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Contrastive loss over the [image, text] similarities: every text that holds for an image is a
    positive (targets spread evenly over them), both ways. Pairs that are not `known` (a relit
    image, --joint-relight, and a text that names a background) are neither match nor non-match:
    left out of both softmaxes (by a finite logit, so that 0 * log p stays 0). `extra` (similarities,
    match, known of more texts, --itc-moved's counterfactuals) adds columns to each image's softmax
    only: those texts are there as hard negatives (or positives of other images), not as queries.
    `extra_images` (similarities [image, text], match, known of more images, --itc-counterfactual's)
    adds rows to each text's softmax only, likewise."""
    if known is not None:
        sim = sim.masked_fill(~known, -1e4)
    s_t, m_t = sim, match
    if extra_images is not None:
        x_sim, x_match, x_known = extra_images
        s_t, m_t = torch.cat([sim, x_sim.masked_fill(~x_known, -1e4)]), torch.cat([match, x_match])
    t2i = -(F.log_softmax(s_t.t(), 1) * (m_t.t() / m_t.t().sum(1, keepdim=True))).sum(1).mean()
    if extra is not None:
        e_sim, e_match, e_known = extra
        sim, match = torch.cat([sim, e_sim.masked_fill(~e_known, -1e4)], 1), torch.cat([match, e_match], 1)
    i2t = -(F.log_softmax(sim, 1) * (match / match.sum(1, keepdim=True))).sum(1).mean()
    return (i2t + t2i) / 2


@torch.no_grad()
def negative_weights(sim: torch.Tensor, match: torch.Tensor, known: torch.Tensor | None = None,
                     dim: int = 1) -> torch.Tensor:
    """ITM hard-negative sampling weights [image, text], on the CPU: ITC softmax over each image's
    texts (dim=1; dim=0: over each text's images), zero for matches and for pairs that are not
    known. Mining runs on the CPU: one transfer instead of a device sync per sampled negative."""
    M, sim = match.cpu(), sim.detach().float().cpu()
    if known is not None:
        # each image's own text is known, and each text's own image: no empty row or column
        sim = sim.masked_fill(~known.cpu(), float("-inf"))
    w = torch.softmax(sim, dim=dim).masked_fill(M > 0, 0) + 1e-9 * (M == 0)  # every true non-match stays drawable
    return w * known.cpu() if known is not None else w  # ... but not an unknown pair


def step_losses(model: BlipBundle, batch, temp: torch.Tensor, rng: random.Random, word_noise: float,
                aux_head=None, aux_classes: list[int] = AUX_CLASSES, bag_head=None, bag_mix: bool = False,
                bag_text: str | None = None, bag_where: bool = False, itm_negatives: int = 1,
                t2i_softmax: bool = False, itc_counterfactual: bool = False):
    r = model.retrieval
    B = batch["pixels"].shape[0]
    mixed = "mix_pixels" in batch
    C = batch["cf_pixels"].shape[0] if "cf_pixels" in batch else 0  # --itm-counterfactual images
    pixels = torch.cat([batch["pixels"]] + ([batch["cf_pixels"]] if C else []) + ([batch["mix_pixels"]] if mixed else []))
    emb_all = r.vision_model(pixels)  # shared vision encoder, one pass for the scenes, counterfactuals and the mix
    emb = emb_all[:B]
    dev = emb.device
    aux = torch.zeros((), device=dev)
    if aux_head is not None:
        # Training-only auxiliary loss (not exported): each patch token predicts the colour, shape
        # and size of the object under it. A ViT trained from scratch on 2 CPU cores otherwise
        # spends most of its budget discovering objects; this dense signal gets it there sooner.
        # The --vision-mix images (recoloured, relit) train only the training-only heads: this loss,
        # and the attribute bag's with --aux-bag-mix. Vision-only stages taught the encoder things
        # the joint stages after them undid (stages 8-12); mixed in, they keep being taught.
        labels = torch.cat([batch["patches"]] + ([batch["cf_patches"]] if C else []) +
                           ([batch["mix_patches"]] if mixed else []))
        aux = aux_loss(aux_head, emb_all, labels, aux_classes)
    ids, mask = batch["text"]
    img_feat = r.image_feat(emb)
    txt_feat = r.text_feat(ids, mask)
    sim = similarity(img_feat, txt_feat, temp)
    M, known = batch["match"], batch.get("known")
    # --itc-moved: each placed text's counterfactual in the opposite third (batches.moved) joins the
    # images' softmax. Without it no batch of 48 needed a position and the ITC text feature kept
    # none; with it the position AUC rose from 0.56 to 0.66 in an hour (docs/models.md, stage 29).
    extra = None
    if "moved" in batch:
        extra = (similarity(img_feat, r.text_feat(*batch["moved"]), temp), batch["moved_match"], batch["moved_known"])
    # --itc-counterfactual: the --itm-counterfactual images join each text's softmax over images too,
    # NegCLIP's hard negatives on the image side: the ITC image feature then has to keep the one
    # attribute that tells a scene from its counterfactual
    extra_images = None
    if itc_counterfactual and C:
        extra_images = (similarity(r.image_feat(emb_all[B:B + C]), txt_feat, temp), batch["cf_match"], batch["cf_known"])
    itc = itc_loss(sim, M, known, extra, extra_images)
    # Training-only (not exported): each single attribute must be linearly readable from the ITC
    # features. ITC alone let an image's feature encode conjunctions it was trained on: "a yellow
    # star" ranked yellow stars on white (held out) at a median of 586 of 1200, those on other
    # backgrounds at 47 (docs/models.md, stages 13-14, has what that did and did not fix).
    # With --aux-bag-mix the recoloured, relit --vision-mix images train it too: the patch tokens
    # learnt to name yellow on a bright ground from them, yet the ITC feature (the CLS token, pooled
    # by attention the joint scenes trained) still read yellow on white as orange (stage 16).
    mix_feat = r.image_feat(emb_all[B + C:]) if mixed and bag_mix else None
    # With --aux-bag-text every text trains it over the attributes it names ("all": what it does
    # not name is absent, so "a yellow star" encodes no ground), read by the same head as the
    # images': words and pictures of an attribute point the same way. --text-only adds texts without
    # images (batches.text_only_batch), held-out combinations among them: the text encoder had
    # learnt to drop "white" after "yellow", which no image-text pair ever shows together
    # (docs/models.md, stages 20-23).
    text_only_feat = r.text_feat(*batch["text_only"]) if bag_head is not None and "text_only" in batch else None
    # With --aux-bag-where it also reads each colour and shape at its position (batches.WHERE).
    bag = (bag_loss(bag_head, img_feat, txt_feat, batch, mix_feat, bag_text, text_only_feat, bag_where)
           if bag_head is not None else torch.zeros((), device=dev))

    # ITM: positives, one negative image per text (BLIP; --itm-negatives draws more, without
    # replacement) and one negative text per image (hard: sampled by ITC similarity among true
    # non-matches, or a one-attribute perturbation of the true text)
    # A text's negative image is drawn from column j of the weights. By default (every stage so
    # far) that column is cut from each image's softmax over texts, so an image near many of the
    # batch's texts is drawn less; --t2i-softmax draws it from the text's own softmax over images,
    # as BLIP's weights_t2i.
    # With --itm-counterfactual a text whose scene has a counterfactual image (batches.counterfactual:
    # one object's colour, shape or size changed so that the text fails) gets that image as its
    # negative instead of one drawn: the image-side twin of the perturbed texts below. A mined
    # negative differs from the text's image in many ways at once; this one only in what the text
    # says. In an hour it bought nothing alone; with --itc-counterfactual it gained a little on one
    # joint seed and lost 0.06 to 0.09 held out on the next, so both stay off (docs/models.md).
    cf_of = {int(j): B + c for c, j in enumerate(batch["cf_text"])} if C else {}
    w, M = negative_weights(sim, M, known), M.cpu()
    w_img = negative_weights(sim, M, known, dim=0) if t2i_softmax else w
    neg_img, neg_txt_ids = [], []  # neg_img: (text, image) pairs
    ids_cpu, mask_cpu = ids.cpu(), mask.cpu()
    for j in range(B):  # negative images for text j
        col = w_img[:, j].masked_fill(M[:, j] > 0, 0)
        n = min(itm_negatives - (j in cf_of), int((col > 0).sum()))
        neg_img += [(j, cf_of[j])] if j in cf_of else []
        neg_img += [(j, int(i)) for i in torch.multinomial(col, n)] if n > 0 else []
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
    pos_ids, pos_mask = ids, mask
    nt_ids, nt_mask = (t.to(dev) for t in pad([neg_txt_ids[i] for i in i_idx]))
    # which image each pair shows: the keys and values of each image are projected once
    pair_image = torch.tensor(list(range(B)) + [i for _, i in neg_img] + i_idx, device=dev)
    L = max(pos_ids.shape[1], nt_ids.shape[1])
    padto = lambda x: F.pad(x, (0, L - x.shape[1]))
    all_ids = torch.cat([padto(pos_ids), padto(ids[t_idx]), padto(nt_ids)])
    all_mask = torch.cat([padto(pos_mask), padto(mask[t_idx]), padto(nt_mask)])
    labels = torch.cat([torch.ones(B), torch.zeros(len(t_idx) + len(i_idx))]).long().to(dev)
    itm = F.cross_entropy(r.itm_logits(all_ids, all_mask, emb_all[:B + C], image_index=pair_image), labels)

    cap_ids, cap_mask = batch["caption"]
    # relit scenes have no caption (every caption names the background)
    cap_emb = emb[batch["caption_image"]] if "caption_image" in batch else emb
    ones = torch.ones(cap_emb.shape[:2], dtype=torch.long, device=dev)
    lm = lm_loss(model.caption.text_decoder, cap_ids, cap_mask, cap_emb, ones, noise=word_noise, word_ids=WORD_RANGE)

    return itc, itm, lm, vqa_loss(model, batch, emb), aux, bag


def vqa_loss(model: BlipBundle, batch, emb: torch.Tensor) -> torch.Tensor:
    q_ids, q_mask = batch["question"]
    # Several questions may share an image: the encoder ran once, its output is indexed per question.
    states = model.vqa.question_states(q_ids, q_mask, emb, image_index=batch["question_image"])
    a_ids, a_mask = batch["answer"]
    return lm_loss(model.vqa.text_decoder, a_ids, a_mask, states, q_mask, smoothing=0.0)


def batch_losses(args, model: BlipBundle, batch, temp: torch.Tensor, rng: random.Random, aux_head, aux_classes,
                 bag_head):
    """The stage's losses on one batch: (itc, itm, lm, vqa, aux, bag, weighted total)."""
    zero = torch.zeros((), device=temp.device)
    vision = model.retrieval.vision_model
    if args.vision_only:
        labels = batch["patches"]
        if args.keep_patches:
            idx = kept_patches(labels, args.keep_patches)
            emb = encode_kept(vision, batch["pixels"], idx)
            labels = pick_patches(labels, idx)
        else:
            emb = vision(batch["pixels"])
        aux = aux_loss(aux_head, emb, labels, aux_classes)
        return zero, zero, zero, zero, aux, zero, aux
    if args.vqa_only:
        with torch.no_grad():
            emb = vision(batch["pixels"])
        vqa = vqa_loss(model, batch, emb)
        return zero, zero, zero, vqa, zero, zero, vqa
    itc, itm, lm, vqa, aux, bag = step_losses(model, batch, temp.clamp(0.001, 0.5), rng, args.word_noise, aux_head,
                                              aux_classes, bag_head, args.aux_bag_mix, args.aux_bag_text,
                                              args.aux_bag_where, args.itm_negatives, args.t2i_softmax,
                                              args.itc_counterfactual)
    total = itc + args.itm_weight * itm + lm + vqa + args.aux_patch * aux + args.aux_bag * bag
    return itc, itm, lm, vqa, aux, bag, total


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
    words = set(cpuinfo.split())
    return words & {"avx512_bf16", "amx_bf16"}


def param_groups(vision: torch.nn.Module, trained: list, heads: list, text_lr_scale: float) -> list[dict]:
    """The optimiser's groups, each with the share of the scheduled lr it trains at: the image encoder's
    weights at 1, the rest of the model's at --text-lr-scale, the training-only heads at 1 (or the
    head warm-up's fixed lr). A group of no weights is left out."""
    ids = {id(p) for p in vision.parameters()}
    groups = [{"params": [p for p in trained if id(p) in ids], "role": "vision", "scale": 1.0},
              {"params": [p for p in trained if id(p) not in ids], "role": "text", "scale": text_lr_scale},
              {"params": heads, "role": "heads", "scale": 1.0}]
    return [g for g in groups if g["params"]]


def _identity(x):
    return x


# How far the DataLoader workers' priority is lowered (os.nice's increment; 19 is the lowest).
WORKER_NICE = 19


def lower_priority(_worker_id: int) -> None:
    """DataLoader worker_init_fn: the workers only draw batches ahead, so they yield the CPU to the
    training loop. With --threads 2 on a 2-core machine the loop's two threads then keep both cores
    and the worker runs in their gaps (the loop's serial Python and small ops). At equal priority a
    worker that takes a core stalls every parallel op, whose threads wait for each other: in 100-step
    tests a joint step of the hour's flags took 1.02 s that way, 1.03-1.08 s with --threads 1, and
    0.76-0.84 s with the worker lowered; over a 34-minute stage, 2202 steps against 1990 with one
    thread (Zen 4, docs/models.md). A joint batch takes 0.18 s to draw there."""
    os.nice(WORKER_NICE)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1300, help="optimizer steps (the schedule is by step)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="optional wall-clock budget; the cosine schedule then follows whichever of steps or "
                         "time runs out first, so the learning rate is annealed when the budget ends")
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1,
                    help="PyTorch intra-op threads. With --bf16 (oneDNN) on 2 cores, joint stages are fastest with "
                         "--threads 2 --workers 1 (the worker's priority lowered): 2202 steps of the hour's flags in "
                         "34 min against 1990 with 1 (Zen 4; 100-step tests had shown 0.76-0.84 s a step against "
                         "1.03-1.08). Vision-only stages, whose 128 images take 0.23 s "
                         "of a 0.51 s step to draw, keep 1 (2: 0.56 s). In float32 Debian's torch runs its matrix "
                         "products in OpenBLAS's own thread pool (one thread per core), so 1 already uses every "
                         "core: there --threads 2 made a joint step 2x slower (4.6-5.0 s against 2.2-2.7 s)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader processes drawing scenes (0 = in the loop)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--image-size", type=int, default=None, help="override the bundled config's input size")
    ap.add_argument("--patch-size", type=int, default=None, help="override the bundled config's patch size")
    ap.add_argument("--out", default="tools/checkpoints/blip-scenes.pt")
    ap.add_argument("--resume", default=None)
    ap.add_argument("--aux-labels", choices=list(AUX_LABEL_SETS), default="order",
                    help="per-patch labels: colour/shape/size ('attributes', stages 1-2 of the bundled model), "
                         "those plus the object's rank from the left and horizontal third ('order'), or also "
                         "its vertical third ('position')")
    ap.add_argument("--vision-only", action="store_true",
                    help="train only the vision encoder, on the per-patch labels (no text: about 8x more images "
                         "per second on CPUs); the text stack is saved unchanged")
    ap.add_argument("--keep-patches", type=int, default=0,
                    help="--vision-only: encode only this many patches of each image, those objects touch "
                         "first (0 = all); a step costs about keep/all as much")
    ap.add_argument("--vqa-only", action="store_true",
                    help="train only the VQA question encoder and answer decoder, on the frozen image encoder's "
                         "output (with --questions 9, every question type of each scene): the other tasks are "
                         "saved unchanged")
    ap.add_argument("--gray", type=float, default=0.0,
                    help="vision-only images: fraction shown in grayscale, their colour labels ignored")
    ap.add_argument("--decolor", type=float, default=0.0,
                    help="vision-only images: probability that an object is drawn in a random gray, its colour "
                         "label ignored")
    ap.add_argument("--rehue", type=float, default=0.0,
                    help="vision-only images: probability that an object is drawn in a random hue away from the "
                         "six named ones, its colour label ignored")
    ap.add_argument("--relight", type=float, default=0.0,
                    help="vision-only images: probability that the background is a random gray level (never "
                         "near-white behind a yellow object)")
    ap.add_argument("--joint-relight", type=float, default=0.0,
                    help="joint stages: probability that a scene is shown on a random gray ground (never near-white "
                         "behind yellow) and described only by texts that name no background (no caption, no "
                         "background question): ITC itself then sees yellow on bright grounds")
    ap.add_argument("--joint-recolor", type=float, default=0.0,
                    help="joint stages: probability that a scene's objects are recoloured as --decolor and --rehue "
                         "say (per object), the texts then naming no colour (no caption, colourless questions): "
                         "ITC sees shapes in hues beside the named ones, named by shape alone")
    ap.add_argument("--no-confounded-negatives", action="store_true",
                    help="joint stages: a text and an image on whose ground it would make a held-out combination "
                         "(a text naming yellow, a white image) are neither match nor non-match in ITC and ITM, and "
                         "the attribute bag leaves yellow out on white images")
    ap.add_argument("--itm-negatives", type=int, default=1,
                    help="joint stages: ITM negative images per text, drawn without replacement by ITC "
                         "similarity (BLIP draws one): text-to-image re-ranking is ITM's job, and one hard "
                         "negative of 47 taught it less in an hour than ITC learnt (docs/models.md)")
    ap.add_argument("--itm-counterfactual", type=float, default=0.0,
                    help="joint stages: share of the scenes that also get a counterfactual image (one object's "
                         "colour, shape or size changed so that the scene's text no longer holds), which is then "
                         "that text's ITM negative image in place of one drawn by ITC similarity. Costs one more "
                         "image through the encoder per counterfactual: at 1.0 with the one-hour recipe's flags "
                         "about 32 a step, and 22%% fewer joint steps in 34 minutes (docs/models.md)")
    ap.add_argument("--itc-counterfactual", action="store_true",
                    help="joint stages: the --itm-counterfactual images also join each text's ITC softmax over "
                         "the batch's images, as hard negatives (or positives of the texts they satisfy)")
    ap.add_argument("--t2i-softmax", action="store_true",
                    help="joint stages: draw each text's ITM negative image from its ITC softmax over the batch's "
                         "images (BLIP's weights_t2i), not from the columns of each image's softmax over texts "
                         "(every stage before it)")
    ap.add_argument("--itm-weight", type=float, default=1.0,
                    help="joint stages: weight of the ITM loss in the total (BLIP's is 1). Adam makes it matter only "
                         "where ITM shares weights: the text encoder (with ITC) and the image encoder (with every task)")
    ap.add_argument("--text-lr-scale", type=float, default=1.0,
                    help="joint stages: every weight outside the image encoder (text encoders, decoders, "
                         "projections, ITM head, temperature) trains at this multiple of --lr. After a vision-only "
                         "stage the image encoder is trained and the rest is at its random initial weights")
    ap.add_argument("--head-warmup", type=int, default=0,
                    help="first steps train only the training-only heads (per-patch, attribute bag) at lr "
                         f"{HEAD_WARMUP_LR}, the model frozen: for a stage resumed from a checkpoint without them "
                         "(tools.recover_checkpoint), whose fresh heads would otherwise send large gradients into "
                         "the trained encoder")
    ap.add_argument("--aux-bag-text", choices=["named", "all"],
                    help="the attribute-bag head reads every text's ITC feature, not only complete captions': "
                         "over the kinds of attribute it names ('named'), or over all, what it does not name "
                         "being absent ('all')")
    ap.add_argument("--text-only", type=int, default=0,
                    help="per step, this many texts of scenes with held-out combinations allowed, without images, "
                         "train the attribute-bag head through the text encoder (batches.text_only_batch)")
    ap.add_argument("--aux-bag-where", action="store_true",
                    help="the attribute-bag head also reads each colour and shape in the left / right / top / bottom "
                         "third it lies in (batches.WHERE), from images and texts alike")
    ap.add_argument("--text-only-placed", type=float, default=0.0,
                    help="this fraction of the --text-only texts names one object and the third it lies in "
                         "(batches.placed_text), for --aux-bag-where")
    ap.add_argument("--joint-placed", type=float, default=0.0,
                    help="joint stages: this share of the scenes' own texts names one object and the third it lies "
                         "in (batches.placed_text), for ITC and ITM")
    ap.add_argument("--itc-moved", type=float, default=0.0,
                    help="share of the scenes' texts that place an object whose counterfactual, the object in the "
                         "opposite third, joins ITC as a hard negative (batches.moved)")
    ap.add_argument("--aux-bag-mix", action="store_true",
                    help="the attribute-bag head reads the --vision-mix images' ITC features too")
    ap.add_argument("--vision-mix", type=int, default=0,
                    help="joint stages: images per step drawn as --vision-only draws them (with the options "
                         "above) that train only the per-patch head's loss, beside the joint batch")
    ap.add_argument("--questions", type=int, default=1,
                    help="VQA questions per scene, of distinct types: more answers per image encoded (the question "
                         "stack is small next to the image encoder and ITM), so rarer skills such as left/right "
                         "get several times the examples")
    ap.add_argument("--word-noise", type=float, default=0.15,
                    help="probability that a teacher-forced caption word is replaced by a random scene word, so "
                         "that the decoder reads attributes from the image rather than from the words before them")
    ap.add_argument("--temp", type=float, default=0.07, help="initial ITC temperature (it is learned; not saved)")
    ap.add_argument("--warmup", type=int, default=150, help="steps of linear learning-rate warm-up")
    ap.add_argument("--bf16", action="store_true",
                    help="run the forward pass in bfloat16 autocast (losses, ITC similarities, LayerNorms and the "
                         "optimizer stay float32): 1.45x the steps per minute on an AVX512-BF16 CPU (Zen 4), about "
                         "19x fewer on an AVX2-only one, which emulates bfloat16 (docs/models.md); it warns there")
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                    help="also keep an exponential moving average of the model's weights (decay per step, e.g. "
                         "0.998 averages about the last 500 steps) and save it beside --out as NAME.ema.pt, "
                         "same format; the trained weights in --out are unchanged")
    ap.add_argument("--aux-patch", type=float, default=0.5, help="weight of the auxiliary per-patch object loss (0 = off)")
    ap.add_argument("--aux-bag", type=float, default=0.0,
                    help="weight of the auxiliary loss that reads each colour, shape, size and background present "
                         "linearly from the ITC features of images and complete captions (0 = off)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    cpuinfo = Path("/proc/cpuinfo")
    if args.bf16 and dev.type == "cpu" and cpuinfo.exists() and not cpu_bf16_flags(cpuinfo.read_text()):
        print("warning: --bf16 on a CPU without bfloat16 instructions (no avx512_bf16 or amx_bf16 in /proc/cpuinfo): "
              "expect steps many times slower than float32 (19 s against 1.0 s on an AVX2-only EPYC); drop --bf16",
              file=sys.stderr, flush=True)
    rng = random.Random(args.seed)
    tok, _ = make_tokenizer()
    V = len(tok.vocab) + 2
    global WORD_RANGE
    ws = [tok.vocab[w] for w in scenes.WORDS]
    WORD_RANGE = (min(ws), max(ws))
    cfg = scenes_config(V, tok.sep, tok.added["[DEC]"])
    if args.image_size:
        cfg.vision.image_size = args.image_size
    if args.patch_size:
        cfg.vision.patch_size = args.patch_size
    model = BlipBundle(cfg)
    resumed = torch.load(args.resume, map_location="cpu") if args.resume else {}
    if resumed:
        model.load_state_dict(resumed["model"])
    model.to(dev)
    if args.bf16:
        float_layer_norms(model)
    temp = torch.nn.Parameter(torch.tensor(args.temp, device=dev))
    aux_classes = AUX_CLASSES[:AUX_LABEL_SETS[args.aux_labels]]
    if args.vision_only and args.vqa_only:
        raise SystemExit("--vision-only and --vqa-only train disjoint parts: choose one")
    if args.vqa_only:
        args.aux_patch = 0.0  # the image encoder is frozen: no per-patch head to train
    if args.keep_patches and not args.vision_only:
        raise SystemExit("--keep-patches drops patches from --vision-only steps only: joint steps' texts describe "
                         "the whole image")
    if args.vision_only and args.aux_patch <= 0:
        raise SystemExit("--vision-only trains on the per-patch labels: --aux-patch must be > 0")
    aug = VisionAugment(args.gray, args.decolor, args.rehue, args.relight)
    if aug != VisionAugment() and not (args.vision_only or args.vision_mix > 0 or args.joint_recolor > 0):
        raise SystemExit("--gray, --decolor, --rehue and --relight draw images that texts would describe wrongly: "
                         "they apply to --vision-only or --vision-mix images only (and --decolor, --rehue to the "
                         "scenes --joint-recolor picks)")
    if args.joint_recolor > 0 and aug.decolor + aug.rehue <= 0:
        raise SystemExit("--joint-recolor recolours joint scenes' objects as --decolor and --rehue say: run it "
                         "with --decolor or --rehue")
    if args.text_only > 0 and args.aux_bag <= 0:
        raise SystemExit("--text-only trains the attribute-bag head: it needs --aux-bag")
    if args.aux_bag_text and args.aux_bag <= 0:
        raise SystemExit("--aux-bag-text needs the --aux-bag head")
    if args.text_only_placed > 0 and args.text_only <= 0:
        raise SystemExit("--text-only-placed is a share of the --text-only texts: it needs them")
    if args.aux_bag_where and (args.aux_bag <= 0 or not args.aux_bag_text):
        # without --aux-bag-text only complete captions train the bag, and a caption names no position
        raise SystemExit("--aux-bag-where adds columns to the --aux-bag head, read from what texts name: "
                         "it needs --aux-bag-text")
    if not 0.0 <= args.ema < 1.0:
        raise SystemExit(f"--ema {args.ema}: a decay per step, below 1 (0 keeps no average)")
    if not 0.0 <= args.itm_counterfactual <= 1.0:
        raise SystemExit(f"--itm-counterfactual {args.itm_counterfactual}: a share of the scenes, 0 to 1")
    if args.itc_counterfactual and args.itm_counterfactual <= 0:
        raise SystemExit("--itc-counterfactual uses the --itm-counterfactual images: it needs --itm-counterfactual > 0")
    if args.itm_negatives < 1:
        raise SystemExit("--itm-negatives: at least 1")
    if args.itm_weight <= 0:
        raise SystemExit(f"--itm-weight {args.itm_weight}: positive (the ITM head would not train)")
    if args.aux_bag_mix and (args.vision_mix <= 0 or args.aux_bag <= 0):
        raise SystemExit("--aux-bag-mix needs --vision-mix images and the --aux-bag head")
    joint_only = [flag for flag, on in (("--joint-relight", args.joint_relight > 0), ("--joint-recolor", args.joint_recolor > 0),
                                        ("--no-confounded-negatives", args.no_confounded_negatives),
                                        ("--joint-placed", args.joint_placed > 0),
                                        ("--itc-moved", args.itc_moved > 0),
                                        ("--itm-negatives", args.itm_negatives != 1),
                                        ("--itm-counterfactual", args.itm_counterfactual > 0),
                                        ("--t2i-softmax", args.t2i_softmax),
                                        ("--text-lr-scale", args.text_lr_scale != 1.0),
                                        ("--itm-weight", args.itm_weight != 1.0)) if on]
    if joint_only and (args.vision_only or args.vqa_only):
        raise SystemExit(f"{', '.join(joint_only)}: joint stages only, not with --vision-only or --vqa-only (--relight "
                         "is the vision-only images' option)")
    if args.vision_mix > 0 and (args.vision_only or args.vqa_only or args.aux_patch <= 0):
        raise SystemExit("--vision-mix adds per-patch-labelled images to joint steps: it needs a joint stage "
                         "with --aux-patch > 0")
    aux_head = torch.nn.Linear(cfg.vision.hidden_size, sum(aux_classes)).to(dev) if args.aux_patch > 0 else None
    if aux_head is not None and resumed.get("aux_head") is not None and resumed.get("aux_labels") == args.aux_labels:
        # The per-patch head is training-only (never exported), but a stage that restarts it from
        # random weights sends large gradients into a trained encoder while the head catches up
        # (a short stage after stage 7 lost ground everywhere that way), so checkpoints carry it.
        aux_head.load_state_dict(resumed["aux_head"])
        print("per-patch head resumed", flush=True)
    bag_cols = len(BAG) + (len(WHERE) if args.aux_bag_where else 0)
    bag_head = torch.nn.Linear(cfg.image_text_hidden_size, bag_cols).to(dev) if args.aux_bag > 0 else None
    if bag_head is not None and resumed.get("bag_head") is not None:
        # as the per-patch head, for the same reason; the columns both heads have (BAG's come first)
        old = resumed["bag_head"]
        kept = min(bag_cols, old["weight"].shape[0])
        with torch.no_grad():
            bag_head.weight[:kept] = old["weight"][:kept]
            bag_head.bias[:kept] = old["bias"][:kept]
        print("attribute-bag head resumed" + (f", {bag_cols - kept} columns fresh" if kept < bag_cols else ""),
              flush=True)
    if bag_head is not None and (args.vision_only or args.vqa_only):
        raise SystemExit("--aux-bag trains the ITC features: not with --vision-only or --vqa-only")
    vision = model.retrieval.vision_model
    if args.vision_only:
        trained = list(vision.parameters())
    elif args.vqa_only:
        trained = list(model.vqa.text_encoder.parameters()) + list(model.vqa.text_decoder.parameters())
    else:
        trained = list(model.parameters()) + [temp]
    heads = (list(aux_head.parameters()) if aux_head else []) + (list(bag_head.parameters()) if bag_head else [])
    if args.head_warmup > 0 and not heads:
        raise SystemExit("--head-warmup trains the per-patch and attribute-bag heads: this stage has neither")
    params = trained + heads
    grid = cfg.vision.image_size // cfg.vision.patch_size
    if not 0 <= args.keep_patches <= grid * grid:
        raise SystemExit(f"--keep-patches {args.keep_patches}: an image has {grid * grid} patches")
    if args.text_lr_scale <= 0:
        raise SystemExit(f"--text-lr-scale {args.text_lr_scale}: a positive multiple of --lr")
    opt = torch.optim.AdamW(param_groups(vision, trained, heads, args.text_lr_scale), lr=args.lr, weight_decay=0.02)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params {n_params/1e6:.2f}M  vocab {V}  batch {args.batch}  image {cfg.vision.image_size}  "
          f"patch {cfg.vision.patch_size} ({grid * grid + 1} tokens)  device {dev}", flush=True)
    # make_batch's options, the same in the DataLoader workers and in the loop
    joint = dict(questions=args.questions, mix=args.vision_mix, relit=args.joint_relight, recolored=args.joint_recolor,
                 confounded=not args.no_confounded_negatives, text_only=args.text_only,
                 text_only_placed=args.text_only_placed, joint_placed=args.joint_placed, itc_moved=args.itc_moved,
                 itm_counterfactual=args.itm_counterfactual)
    if args.workers > 0:
        stream = BatchStream(args.seed, cfg.vision.image_size, args.batch, grid, args.vision_only, aug, **joint)
        loader = torch.utils.data.DataLoader(stream,
                                             batch_size=None, num_workers=args.workers, collate_fn=_identity,
                                             prefetch_factor=4, persistent_workers=True,
                                             worker_init_fn=lower_priority)
        batches = iter(loader)
        next_batch = lambda: next(batches)
    elif args.vision_only:
        next_batch = lambda: make_vision_batch(rng, cfg.vision.image_size, args.batch, grid, aug)
    else:
        next_batch = lambda: make_batch(rng, tok, cfg.vision.image_size, args.batch, 35, tok.added["[DEC]"], grid,
                                        aug=aug, **joint)
    budget = args.minutes * 60 if args.minutes else float("inf")
    t0 = time.time()
    step, warm = 0, max(1, args.warmup)
    ema = None
    averaged = WeightEma(model, args.ema) if args.ema > 0 else None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)

    def save():
        heads = {"config": cfg.to_dict(), "step": step,
                 "aux_head": {k: v.cpu() for k, v in aux_head.state_dict().items()} if aux_head else None,
                 "aux_labels": args.aux_labels,
                 "bag_head": {k: v.cpu() for k, v in bag_head.state_dict().items()} if bag_head else None}
        torch.save({"model": {k: v.cpu() for k, v in model.state_dict().items()}, **heads}, args.out)
        if averaged is not None:
            torch.save({"model": averaged.state_dict(model), "ema": args.ema, **heads}, ema_path(args.out))
    while True:
        elapsed = time.time() - t0
        if elapsed > budget or step >= args.steps:
            break
        frac = max(step / args.steps, elapsed / budget)
        frozen = step < args.head_warmup
        if step == 0 or step == args.head_warmup:
            for p in trained:
                p.requires_grad_(not frozen)
        lr = args.lr * min(1.0, (max(0, step - args.head_warmup) + 1) / warm) * \
            (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = HEAD_WARMUP_LR if frozen and g["role"] == "heads" else lr * g["scale"]
        batch = to_device(next_batch(), dev)
        model.train()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            itc, itm, lm, vqa, aux, bag, loss = batch_losses(args, model, batch, temp, rng, aux_head, aux_classes,
                                                             bag_head)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if averaged is not None:
            averaged.update()
        step += 1
        if step % args.log_every == 0:
            vals = [float(x.detach()) for x in (itc, itm, lm, vqa, aux, bag)]
            ema = vals if ema is None else [0.8 * e + 0.2 * v for e, v in zip(ema, vals)]
            print(f"step {step} t={elapsed/60:.1f}m lr={lr:.2e} itc={ema[0]:.3f} itm={ema[1]:.3f} "
                  f"lm={ema[2]:.3f} vqa={ema[3]:.3f} aux={ema[4]:.3f} bag={ema[5]:.3f} temp={float(temp):.3f}", flush=True)
        if step % 500 == 0:
            save()
    save()
    print(f"done: {step} steps in {(time.time()-t0)/60:.1f} min -> {args.out}"
          + (f" (average: {ema_path(args.out)})" if averaged is not None else ""), flush=True)


if __name__ == "__main__":
    main()
