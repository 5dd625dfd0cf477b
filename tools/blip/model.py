"""BLIP in PyTorch, following Hugging Face `transformers` (modeling_blip.py, modeling_blip_text.py).

Module attribute names are chosen so that `state_dict()` keys are identical to the Hugging Face
checkpoints (Salesforce/blip-itm-base-coco, blip-image-captioning-base, blip-vqa-base): those load
with strict key matching (see hf_import.py). The math follows docs/blip.md, "Forward math".

Two additions that HF does not have, both exact re-arrangements of the same math:
- `BlipTextModel.cross_kv(encoder_hidden_states)` computes every layer's cross-attention key and
  value once, and `forward(..., cross_kv=...)` consumes them, so a decoder need not recompute them
  at every generated token;
- `forward(..., past_kv=...)` takes the self-attention cache as one stacked tensor
  [L, 2, B, H, P, Dh] (simpler to feed from TypeScript than 2L separate inputs).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, asdict

import torch
from torch import nn
import torch.nn.functional as F


@dataclass
class VisionConfig:
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    image_size: int = 384
    patch_size: int = 16
    layer_norm_eps: float = 1e-5

    @property
    def num_positions(self) -> int:
        return (self.image_size // self.patch_size) ** 2 + 1


@dataclass
class TextConfig:
    vocab_size: int = 30524
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12  # NOT the class default of 8: docs/blip.md, pitfall 1
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-12
    encoder_hidden_size: int = 768
    pad_token_id: int = 0
    sep_token_id: int = 102
    bos_token_id: int = 30522


@dataclass
class BlipConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    image_text_hidden_size: int = 256

    def to_dict(self) -> dict:
        return {"vision": asdict(self.vision), "text": asdict(self.text),
                "image_text_hidden_size": self.image_text_hidden_size}

    @staticmethod
    def from_dict(d: dict) -> "BlipConfig":
        return BlipConfig(VisionConfig(**d["vision"]), TextConfig(**d["text"]), d["image_text_hidden_size"])


def base_config() -> BlipConfig:
    """The size of the three Salesforce base checkpoints."""
    return BlipConfig()


# --------------------------------------------------------------------------------------------
# Vision
# --------------------------------------------------------------------------------------------

class BlipVisionEmbeddings(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.randn(1, 1, c.hidden_size) * 0.02)
        self.patch_embedding = nn.Conv2d(3, c.hidden_size, kernel_size=c.patch_size, stride=c.patch_size)
        self.position_embedding = nn.Parameter(torch.randn(1, c.num_positions, c.hidden_size) * 0.02)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        b = pixel_values.shape[0]
        patches = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(b, 1, -1)
        x = torch.cat([cls, patches], dim=1)
        return x + self.position_embedding[:, : x.shape[1], :]


class BlipAttention(nn.Module):
    """ViT self-attention with a fused qkv projection (rows: Q, K, V)."""

    def __init__(self, c: VisionConfig):
        super().__init__()
        self.num_heads = c.num_attention_heads
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(c.hidden_size, 3 * c.hidden_size)
        self.projection = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax((q @ k.transpose(-1, -2)) * self.scale, dim=-1)
        ctx = (attn @ v).permute(0, 2, 1, 3).reshape(b, n, d)
        return self.projection(ctx)


class BlipMLP(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.fc1 = nn.Linear(c.hidden_size, c.intermediate_size)
        self.fc2 = nn.Linear(c.intermediate_size, c.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class BlipEncoderLayer(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.self_attn = BlipAttention(c)
        self.layer_norm1 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlp = BlipMLP(c)
        self.layer_norm2 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class BlipEncoder(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.layers = nn.ModuleList([BlipEncoderLayer(c) for _ in range(c.num_hidden_layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class BlipVisionModel(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.config = c
        self.embeddings = BlipVisionEmbeddings(c)
        self.encoder = BlipEncoder(c)
        self.post_layernorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Returns image_embeds = last_hidden_state [B, N, D] (post_layernorm applied once)."""
        return self.post_layernorm(self.encoder(self.embeddings(pixel_values)))


# --------------------------------------------------------------------------------------------
# Text (BERT post-LN with cross-attention in every layer, as HF with is_decoder=True config)
# --------------------------------------------------------------------------------------------

class BlipTextEmbeddings(nn.Module):
    def __init__(self, c: TextConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, past_len) -> torch.Tensor:
        t = input_ids.shape[1]
        pos = torch.arange(t, device=input_ids.device) + past_len
        return self.LayerNorm(self.word_embeddings(input_ids) + self.position_embeddings(pos)[None])


class BlipTextSelfAttention(nn.Module):
    def __init__(self, c: TextConfig, is_cross_attention: bool):
        super().__init__()
        self.num_heads = c.num_attention_heads
        self.head_dim = c.hidden_size // c.num_attention_heads
        kv_in = c.encoder_hidden_size if is_cross_attention else c.hidden_size
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(kv_in, c.hidden_size)
        self.value = nn.Linear(kv_in, c.hidden_size)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.head_dim).permute(0, 2, 1, 3)

    def project_kv(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(self.key(states)), self.heads(self.value(states))

    def attend_with_past(self, hidden: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor],
                         new: tuple[torch.Tensor, torch.Tensor], additive_mask) -> torch.Tensor:
        """attend(hidden, cat(past, new), ...) without concatenating the cache: only the scores are
        joined, so an exported decoder step does not copy its whole cache per layer."""
        q = self.heads(self.query(hidden))
        p = past[0].shape[2]
        scores = torch.cat([q @ past[0].transpose(-1, -2), q @ new[0].transpose(-1, -2)], dim=-1) / math.sqrt(self.head_dim)
        if additive_mask is not None:
            scores = scores + additive_mask
        probs = torch.softmax(scores, dim=-1)
        ctx = probs[..., :p] @ past[1] + probs[..., p:] @ new[1]
        b, _, t, _ = ctx.shape
        return ctx.permute(0, 2, 1, 3).reshape(b, t, self.num_heads * self.head_dim)

    def attend(self, hidden: torch.Tensor, k: torch.Tensor, v: torch.Tensor, additive_mask) -> torch.Tensor:
        q = self.heads(self.query(hidden))
        b, h, t, d = q.shape
        n = k.shape[0]
        if n < b:
            # Keys and values shared by groups of rows (a decoder's beams: rows n*beams, grouped by
            # input, over n inputs' keys and values): fold each group's rows into the query length,
            # one product per input and head instead of one per row and head.
            qf = q.reshape(n, b // n, h, t, d).transpose(1, 2).reshape(n, h, (b // n) * t, d)
            scores = (qf @ k.transpose(-1, -2)) / math.sqrt(d)
            if additive_mask is not None:
                scores = scores + additive_mask
            ctx = (torch.softmax(scores, dim=-1) @ v).reshape(n, h, b // n, t, d).transpose(1, 2).reshape(b, h, t, d)
        else:
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)
            if additive_mask is not None:
                scores = scores + additive_mask
            ctx = torch.softmax(scores, dim=-1) @ v
        return ctx.permute(0, 2, 1, 3).reshape(b, t, self.num_heads * self.head_dim)


class BlipTextSelfOutput(nn.Module):
    def __init__(self, c: TextConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(h) + residual)


class BlipTextAttention(nn.Module):
    def __init__(self, c: TextConfig, is_cross_attention: bool = False):
        super().__init__()
        self.self = BlipTextSelfAttention(c, is_cross_attention)
        self.output = BlipTextSelfOutput(c)


class BlipTextIntermediate(nn.Module):
    def __init__(self, c: TextConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(h))


class BlipTextOutput(nn.Module):
    def __init__(self, c: TextConfig):
        super().__init__()
        self.dense = nn.Linear(c.intermediate_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(h) + residual)


class BlipTextLayer(nn.Module):
    def __init__(self, c: TextConfig):
        super().__init__()
        self.attention = BlipTextAttention(c)
        self.crossattention = BlipTextAttention(c, is_cross_attention=True)
        self.intermediate = BlipTextIntermediate(c)
        self.output = BlipTextOutput(c)

    def forward(self, h, self_mask, past_kv, cross, cross_mask, new_only=False):
        """past_kv: (k, v) [B,H,P,Dh] or None. cross: (k, v) [B,H,S,Dh] or None (unimodal mode).
        Returns (hidden, (k, v) of self-attention including the new positions, or only the new
        positions' with new_only)."""
        sa = self.attention.self
        k, v = sa.project_kv(h)
        if past_kv is None:
            a = sa.attend(h, k, v, self_mask)
        else:
            a = sa.attend_with_past(h, past_kv, (k, v), self_mask)
            if not new_only:
                k = torch.cat([past_kv[0], k], dim=2)
                v = torch.cat([past_kv[1], v], dim=2)
        a = self.attention.output(a, h)
        if cross is not None:
            a = self.crossattention.output(self.crossattention.self.attend(a, cross[0], cross[1], cross_mask), a)
        return self.output(self.intermediate(a), a), (k, v)


class BlipTextEncoder(nn.Module):
    def __init__(self, c: TextConfig):
        super().__init__()
        self.layer = nn.ModuleList([BlipTextLayer(c) for _ in range(c.num_hidden_layers)])


def _additive(mask: torch.Tensor, dtype) -> torch.Tensor:
    # HF get_extended_attention_mask: (1 - mask) * -10000.0
    return (1.0 - mask.to(dtype)) * -10000.0


class BlipTextModel(nn.Module):
    """HF BlipTextModel (add_pooling_layer=False). Cross-attention runs only when image (or question)
    states are given; self-attention is causal when is_decoder."""

    def __init__(self, c: TextConfig):
        super().__init__()
        self.config = c
        self.embeddings = BlipTextEmbeddings(c)
        self.encoder = BlipTextEncoder(c)

    def layer_cross_kv(self, encoder_hidden_states: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's cross-attention (key, value), each [B, H, S, Dh]. A generator, so that
        cross_kv traces project-then-stack per layer, in the order of the committed graphs."""
        return (layer.crossattention.self.project_kv(encoder_hidden_states) for layer in self.encoder.layer)

    def cross_kv(self, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """Every layer's cross-attention (key, value) stacked, as the decoder graphs take them:
        [L, 2, B, H, S, Dh]."""
        return torch.stack([torch.stack(kv) for kv in self.layer_cross_kv(encoder_hidden_states)])

    def forward(self, input_ids, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
                is_decoder=False, past_kv=None, cross_kv=None, return_present=False, encoder_index=None,
                past_length=None, new_only=False):
        """encoder_index (training): row i cross-attends to encoder_hidden_states[encoder_index[i]], so
        texts that share an image (ITM pairs, several questions) project its keys and values once.
        past_length: position of the first new token when past_kv is a fixed-capacity cache whose
        unused slots attention_mask hides (default: every cached position is used).
        new_only: return only the new tokens' keys and values (not the cache with them)."""
        b, t = input_ids.shape
        # past_kv / cross_kv: one stacked tensor [L, 2, B, H, P, Dh], or per layer a (key, value) pair
        # (the decoder graphs take one input per layer: slicing a stacked input copies it per step)
        layered_past = isinstance(past_kv, (list, tuple))
        past_len = 0 if past_kv is None else (past_kv[0][0].shape[2] if layered_past else past_kv.shape[4])
        h = self.embeddings(input_ids, past_len if past_length is None else past_length)
        dtype = h.dtype
        if attention_mask is None:
            attention_mask = torch.ones(b, past_len + t, dtype=torch.long, device=input_ids.device)
        mask = attention_mask[:, None, None, :].to(dtype)  # [B,1,1,P+T]
        if is_decoder:
            # causal within the new tokens; every past position visible (HF: ones prepended for the past)
            i = torch.arange(t, device=input_ids.device)
            causal = (i[None, :] <= i[:, None]).to(dtype)  # [T,T]
            causal = torch.cat([torch.ones(t, past_len, dtype=dtype, device=input_ids.device), causal], dim=1)
            mask = mask * causal[None, None]
        self_mask = _additive(mask, dtype)
        n_layers = len(self.encoder.layer)
        if cross_kv is not None:
            crosses = list(cross_kv) if isinstance(cross_kv, (list, tuple)) else [(cross_kv[li, 0], cross_kv[li, 1]) for li in range(n_layers)]
        elif encoder_hidden_states is not None:
            # Per layer, not through cross_kv's stacked tensor: in training, the backward of each slice
            # of a stacked tensor writes a zero tensor the size of every layer's keys and values (150 MB
            # per slice for the 144 ITM pairs of a 48-scene step, a tenth of the step's time on CPUs).
            crosses = list(self.layer_cross_kv(encoder_hidden_states))
            if encoder_index is not None:
                crosses = [(k[encoder_index], v[encoder_index]) for k, v in crosses]
        else:
            crosses = [None] * n_layers
        cross_mask = None
        if crosses[0] is not None:
            if encoder_attention_mask is None:
                cross_mask = None  # all ones: adding zeros changes nothing
            else:
                # HF invert_attention_mask: (1 - mask) * finfo.min
                cross_mask = (1.0 - encoder_attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        presents = []
        for li, layer in enumerate(self.encoder.layer):
            past = None if past_kv is None else (past_kv[li] if layered_past else (past_kv[li, 0], past_kv[li, 1]))
            h, kv = layer(h, self_mask, past, crosses[li], cross_mask, new_only=new_only)
            if return_present:
                presents.append(torch.stack(kv))
        if return_present:
            return h, torch.stack(presents)
        return h


class BlipTextPredictionHeadTransform(nn.Module):
    def __init__(self, c: TextConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, h):
        return self.LayerNorm(F.gelu(self.dense(h)))


class BlipTextLMPredictionHead(nn.Module):
    def __init__(self, c: TextConfig):
        super().__init__()
        self.transform = BlipTextPredictionHeadTransform(c)
        self.decoder = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.decoder.bias = self.bias  # tied, as HF: both keys appear in the state dict

    def forward(self, h):
        return self.decoder(self.transform(h))


class BlipTextOnlyMLMHead(nn.Module):
    def __init__(self, c: TextConfig):
        super().__init__()
        self.predictions = BlipTextLMPredictionHead(c)

    def forward(self, h):
        return self.predictions(h)


class BlipTextLMHeadModel(nn.Module):
    def __init__(self, c: TextConfig):
        super().__init__()
        self.bert = BlipTextModel(c)
        self.cls = BlipTextOnlyMLMHead(c)

    def forward(self, input_ids, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
                past_kv=None, cross_kv=None, return_present=False, past_length=None, new_only=False):
        out = self.bert(input_ids, attention_mask, encoder_hidden_states, encoder_attention_mask,
                        is_decoder=True, past_kv=past_kv, cross_kv=cross_kv, return_present=return_present,
                        past_length=past_length, new_only=new_only)
        if return_present:
            h, present = out
            return self.cls(h), present
        return self.cls(out)


# --------------------------------------------------------------------------------------------
# The three checkpoint classes
# --------------------------------------------------------------------------------------------

class BlipForImageTextRetrieval(nn.Module):
    def __init__(self, c: BlipConfig):
        super().__init__()
        self.config = c
        self.vision_model = BlipVisionModel(c.vision)
        self.text_encoder = BlipTextModel(c.text)
        self.vision_proj = nn.Linear(c.vision.hidden_size, c.image_text_hidden_size)
        self.text_proj = nn.Linear(c.text.hidden_size, c.image_text_hidden_size)
        self.itm_head = nn.Linear(c.text.hidden_size, 2)

    def image_feat(self, image_embeds):
        return F.normalize(self.vision_proj(image_embeds[:, 0, :]), dim=-1)

    def text_feat(self, input_ids, attention_mask):
        h = self.text_encoder(input_ids, attention_mask)
        return F.normalize(self.text_proj(h[:, 0, :]), dim=-1)

    def itm_logits(self, input_ids, attention_mask, image_embeds, image_index=None):
        h = self.text_encoder(input_ids, attention_mask, encoder_hidden_states=image_embeds, encoder_index=image_index)
        return self.itm_head(h[:, 0, :])


class BlipForConditionalGeneration(nn.Module):
    def __init__(self, c: BlipConfig):
        super().__init__()
        self.config = c
        self.vision_model = BlipVisionModel(c.vision)
        self.text_decoder = BlipTextLMHeadModel(c.text)


class BlipForQuestionAnswering(nn.Module):
    def __init__(self, c: BlipConfig):
        super().__init__()
        self.config = c
        self.vision_model = BlipVisionModel(c.vision)
        self.text_encoder = BlipTextModel(c.text)
        self.text_decoder = BlipTextLMHeadModel(c.text)

    def question_states(self, input_ids, attention_mask, image_embeds, image_index=None):
        return self.text_encoder(input_ids, attention_mask, encoder_hidden_states=image_embeds,
                                 encoder_index=image_index)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT/HF-style init: normal(0, 0.02) for Linear/Embedding, LayerNorm (1, 0)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
