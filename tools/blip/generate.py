"""Reference generation with Hugging Face semantics (greedy and beam search), used for golden
token ids. It deliberately recomputes the whole prefix at every step with cross-attention from
`encoder_hidden_states` (as HF does), so it checks the cached ONNX decoder path independently.

Semantics (transformers generate, BLIP overrides): eos = [SEP], pad = 0, max_length counts the
prefix, min_length blocks eos while the sequence is shorter, repetition penalty divides positive /
multiplies negative scores of every token already in the sequence, beam search with
length_penalty 1.0 and early_stopping False.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch

from .model import BlipTextLMHeadModel


# The model side: rows of token ids in, each row's last-position logits [rows, V] out.
LastLogits = Callable[[list[list[int]]], torch.Tensor]


def _process(scores: torch.Tensor, seqs: list[list[int]], eos: Iterable[int], min_length: int, rep: float) -> torch.Tensor:
    scores = scores.clone()
    for b, seq in enumerate(seqs):
        if rep != 1.0:
            for t in set(seq):
                s = scores[b, t]
                scores[b, t] = s * rep if s < 0 else s / rep
        if len(seq) < min_length:
            for e in eos:
                scores[b, e] = float("-inf")
    return scores


@torch.no_grad()
def _last_logits(decoder: BlipTextLMHeadModel, seqs, enc, enc_mask):
    ids = torch.tensor(seqs, dtype=torch.long)
    b = ids.shape[0]
    logits = decoder(ids, torch.ones_like(ids), enc.expand(b, -1, -1), enc_mask.expand(b, -1))
    return logits[:, -1, :]


@torch.no_grad()
def greedy(decoder, prefix: list[int], enc: torch.Tensor, enc_mask: torch.Tensor, eos: int,
           max_length: int = 20, min_length: int = 0, repetition_penalty: float = 1.0) -> list[int]:
    """enc: [1,S,D] states the decoder cross-attends to; enc_mask: [1,S]."""
    return greedy_with(lambda seqs: _last_logits(decoder, seqs, enc, enc_mask), prefix, [eos], max_length,
                       min_length, repetition_penalty)


@torch.no_grad()
def greedy_with(last_logits: LastLogits, prefix: list[int], eos_ids: list[int], max_length: int = 20,
                min_length: int = 0, repetition_penalty: float = 1.0) -> list[int]:
    """Greedy search over any model; stops after any of eos_ids (HF: eos_token_id as a list)."""
    seq = list(prefix)
    while len(seq) < max_length:
        scores = _process(last_logits([seq]), [seq], eos_ids, min_length, repetition_penalty)
        tok = int(torch.argmax(scores[0]))
        seq.append(tok)
        if tok in eos_ids:
            break
    return seq


@torch.no_grad()
def beam_search(decoder, prefix: list[int], enc: torch.Tensor, enc_mask: torch.Tensor, eos: int,
                num_beams: int = 3, max_length: int = 20, min_length: int = 0,
                repetition_penalty: float = 1.0) -> list[int]:
    return beam_search_with(lambda seqs: _last_logits(decoder, seqs, enc, enc_mask), prefix, [eos], num_beams,
                            max_length, min_length, repetition_penalty)


@torch.no_grad()
def beam_search_with(last_logits: LastLogits, prefix: list[int], eos_ids: list[int], num_beams: int = 3,
                     max_length: int = 20, min_length: int = 0, repetition_penalty: float = 1.0) -> list[int]:
    """Beam search over any model; a hypothesis ends at any of eos_ids; a best sequence shorter
    than max_length gets eos_ids[0] appended (as HF pads it)."""
    eos = eos_ids[0]
    prompt_len = len(prefix)
    beams = [list(prefix) for _ in range(num_beams)]
    beam_scores = torch.tensor([0.0] + [-1e9] * (num_beams - 1))
    hyps: list[tuple[float, list[int]]] = []
    worst = 1e9
    done = False

    def add(seq, sum_logprobs, gen_len):
        nonlocal worst
        score = sum_logprobs / gen_len
        if len(hyps) < num_beams or score > worst:
            hyps.append((score, seq))
            if len(hyps) > num_beams:
                hyps.sort(key=lambda h: h[0])
                hyps.pop(0)
                worst = hyps[0][0]
            else:
                worst = min(score, worst)

    while len(beams[0]) < max_length:
        cur_len = len(beams[0])
        logits = last_logits(beams)
        logp = torch.log_softmax(logits, dim=-1)
        logp = _process(logp, beams, eos_ids, min_length, repetition_penalty)
        scores = (logp + beam_scores[:, None]).view(-1)
        vocab = logits.shape[-1]
        # HF: max(2, 1 + number of end tokens) * num_beams candidates
        top_scores, top_idx = torch.topk(scores, max(2, 1 + len(eos_ids)) * num_beams, largest=True, sorted=True)
        next_beams, next_scores = [], []
        for rank, (s, idx) in enumerate(zip(top_scores.tolist(), top_idx.tolist())):
            beam, tok = divmod(idx, vocab)
            if tok in eos_ids:
                if rank >= num_beams:
                    continue
                add(list(beams[beam]), s, cur_len + 1 - prompt_len)
            else:
                next_beams.append(beams[beam] + [tok])
                next_scores.append(s)
            if len(next_beams) == num_beams:
                break
        best_next = float(top_scores.max())
        if len(hyps) >= num_beams and worst >= best_next / (cur_len + 1 - prompt_len):
            done = True
        beams = next_beams
        beam_scores = torch.tensor(next_scores)
        if done:
            break
    if not done:
        for seq, s in zip(beams, beam_scores.tolist()):
            add(list(seq), s, len(seq) - prompt_len)
    # HF: sorted(beams, key=score).pop(): among equal scores the later-added hypothesis wins
    best = sorted(hyps, key=lambda h: h[0])[-1][1]
    return best + [eos] if len(best) < max_length else best
