"""BLIP's text encoder with its cross-attention re-arranged for the image-grounded graphs (ITM, VQA
question encoder), where few text tokens attend to many image tokens.

HF projects every image token to keys and values in every layer (S Wk^T, S Wv^T: N x De x D per
layer, 8.2 G multiply-adds per candidate at base size). The same scores and context follow from
projecting the few queries instead, per head h:

    scores_h = (q_h Wk_h) S^T + q_h . bk_h          (Wk_h: rows h*Dh..(h+1)*Dh of Wk, [Dh, De])
    ctx_h    = (softmax(scores_h) S) Wv_h^T + bv_h   (softmax rows sum to 1, so bv passes through)

which costs T x H x De x N per layer instead: about 5x fewer operations for a 12-token text at
base size, and the image states are read as they are (int8 codes in the ITM graph). The weights
are used as stored, reshaped to [H, Dh, De]; q . bk is kept although softmax cancels it, so that
every parameter stays in the graph (tools/blip/onnx_weights.py reads them back from it).
"""
from __future__ import annotations

import math

import torch

from .model import BlipTextModel, BlipTextSelfAttention, _additive


def _cross_attend(sa: BlipTextSelfAttention, hidden: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """hidden [B,T,D] attends to states [B,N,De] (no mask: every image token is real)."""
    b, t, _ = hidden.shape
    h, dh = sa.num_heads, sa.head_dim
    de = states.shape[-1]
    q = sa.heads(sa.query(hidden))                                   # [B,H,T,Dh]
    wk = sa.key.weight.view(h, dh, de)                               # [H,Dh,De]
    wv = sa.value.weight.view(h, dh, de)
    qk = torch.matmul(q, wk)                                         # [B,H,T,De]
    scores = torch.matmul(qk.reshape(b, h * t, de), states.transpose(1, 2)).view(b, h, t, -1)
    scores = scores + (q * sa.key.bias.view(1, h, 1, dh)).sum(-1, keepdim=True)
    probs = torch.softmax(scores / math.sqrt(dh), dim=-1)            # [B,H,T,N]
    ctx_e = torch.matmul(probs.view(b, h * t, -1), states).view(b, h, t, de)
    ctx = torch.matmul(wv, ctx_e.transpose(-1, -2)).transpose(-1, -2)  # [B,H,T,Dh]
    ctx = ctx + sa.value.bias.view(1, h, 1, dh)
    return ctx.permute(0, 2, 1, 3).reshape(b, t, h * dh)


def encode_absorbed(text: BlipTextModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    states: torch.Tensor) -> torch.Tensor:
    """BlipTextModel.forward(input_ids, attention_mask, encoder_hidden_states=states) in encoder
    mode (bidirectional, no cache), with the cross-attention above. Returns the last hidden states."""
    h = text.embeddings(input_ids, 0)
    self_mask = _additive(attention_mask[:, None, None, :].to(h.dtype), h.dtype)
    for layer in text.encoder.layer:
        sa = layer.attention.self
        k, v = sa.project_kv(h)
        a = layer.attention.output(sa.attend(h, k, v, self_mask), h)
        a = layer.crossattention.output(_cross_attend(layer.crossattention.self, a, states), a)
        h = layer.output(layer.intermediate(a), a)
    return h
