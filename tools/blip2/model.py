"""BLIP-2 (Blip2ForConditionalGeneration with an OPT language model) in PyTorch, with the Hugging
Face parameter names, so that a Hub snapshot loads with strict key matching (tools/blip2/hf_import.py).

Layout, as HF's modeling_blip_2.py and modeling_opt.py define it (docs/blip2.md has the sources):

- `vision_model`: EVA ViT-g as a pre-LayerNorm ViT. Attention uses one fused `qkv` Linear whose
  bias is cat(q_bias, 0, v_bias) (the original EVA has no key bias; HF stores the zeros), and
  `projection` for the output. Every LayerNorm uses `vision_config.layer_norm_eps` (1e-6 in
  HF's current class default). The output, `last_hidden_state`, is after `post_layernorm`.
- `query_tokens` [1, 32, 768] and `qformer`: a BERT-style encoder over the queries only. `layernorm`
  (the original `Qformer.bert.embeddings.LayerNorm`) is applied to the queries first; every
  `cross_attention_frequency`-th layer (0, 2, 4, ...) cross-attends to the image states; the
  queries' feed-forward is `intermediate_query` / `output_query` (the text feed-forward was
  dropped from the OPT checkpoints). Post-LayerNorm blocks with eps 1e-12.
- `language_projection`: Linear(768, text hidden).
- `language_model`: OPTForCausalLM: pre-LayerNorm decoder, ReLU, learned positions with an
  offset of 2 (position p reads row p + 2 of `embed_positions`), queries scaled by head_dim^-0.5
  before the product, `lm_head` tied to `embed_tokens`.

Modules take `device`, so that `device="meta"` builds the full-depth model without allocating
its 3.9 billion weights (the key-layout check).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

POSITION_OFFSET = 2  # OPTLearnedPositionalEmbedding: positions start at row 2 (fairseq's padding legacy)


@dataclass
class VisionConfig:
    hidden_size: int = 1408
    intermediate_size: int = 6144
    num_hidden_layers: int = 39
    num_attention_heads: int = 16
    image_size: int = 224
    patch_size: int = 14
    layer_norm_eps: float = 1e-6
    qkv_bias: bool = True
    hidden_act: str = "gelu"

    @property
    def num_positions(self) -> int:
        return (self.image_size // self.patch_size) ** 2 + 1


@dataclass
class QFormerConfig:
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    cross_attention_frequency: int = 2
    encoder_hidden_size: int = 1408
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    vocab_size: int = 30522
    max_position_embeddings: int = 512


@dataclass
class OptConfig:
    vocab_size: int = 50272
    hidden_size: int = 2560
    ffn_dim: int = 10240
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    max_position_embeddings: int = 2048
    word_embed_proj_dim: int = 2560
    do_layer_norm_before: bool = True
    activation_function: str = "relu"
    enable_bias: bool = True
    layer_norm_elementwise_affine: bool = True
    bos_token_id: int = 2
    eos_token_id: int = 2
    pad_token_id: int = 1


@dataclass
class Blip2Config:
    vision: VisionConfig = field(default_factory=VisionConfig)
    qformer: QFormerConfig = field(default_factory=QFormerConfig)
    text: OptConfig = field(default_factory=OptConfig)
    num_query_tokens: int = 32

    def to_dict(self) -> dict:
        return {"vision": asdict(self.vision), "qformer": asdict(self.qformer), "text": asdict(self.text),
                "num_query_tokens": self.num_query_tokens}

    @staticmethod
    def from_dict(d: dict) -> "Blip2Config":
        """The inverse of to_dict (a model folder's manifest `config`)."""
        return Blip2Config(VisionConfig(**d["vision"]), QFormerConfig(**d["qformer"]), OptConfig(**d["text"]),
                           num_query_tokens=d["num_query_tokens"])


def opt_2_7b_config(layers: int | None = None) -> Blip2Config:
    """Salesforce/blip2-opt-2.7b's dimensions; `layers` cuts every stack to that depth (the random
    full-width round trip: the real depth does not fit this machine's memory in fp32)."""
    c = Blip2Config()
    if layers is not None:
        c.vision.num_hidden_layers = c.qformer.num_hidden_layers = c.text.num_hidden_layers = layers
    return c


_ACT = {"gelu": F.gelu, "relu": F.relu}


def _ln(dim: int, eps: float, device, affine: bool = True) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=eps, elementwise_affine=affine, device=device)


def _heads(x: torch.Tensor, n: int) -> torch.Tensor:
    b, t, d = x.shape
    return x.view(b, t, n, d // n).permute(0, 2, 1, 3)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, t, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, t, h * d)


# ---------------------------------------------------------------- vision (EVA ViT-g)

class Blip2VisionEmbeddings(nn.Module):
    def __init__(self, c: VisionConfig, device=None):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.empty(1, 1, c.hidden_size, device=device))
        self.patch_embedding = nn.Conv2d(3, c.hidden_size, c.patch_size, c.patch_size, device=device)
        self.position_embedding = nn.Parameter(torch.empty(1, c.num_positions, c.hidden_size, device=device))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(pixel_values.shape[0], -1, -1)
        return torch.cat([cls, patches], dim=1) + self.position_embedding


class Blip2Attention(nn.Module):
    def __init__(self, c: VisionConfig, device=None):
        super().__init__()
        self.heads = c.num_attention_heads
        self.qkv = nn.Linear(c.hidden_size, 3 * c.hidden_size, bias=c.qkv_bias, device=device)
        self.projection = nn.Linear(c.hidden_size, c.hidden_size, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        probs = torch.softmax((q @ k.transpose(-1, -2)) * (d // self.heads) ** -0.5, dim=-1)
        return self.projection(_merge(probs @ v))


class Blip2MLP(nn.Module):
    def __init__(self, c: VisionConfig, device=None):
        super().__init__()
        self.act = _ACT[c.hidden_act]
        self.fc1 = nn.Linear(c.hidden_size, c.intermediate_size, device=device)
        self.fc2 = nn.Linear(c.intermediate_size, c.hidden_size, device=device)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Blip2EncoderLayer(nn.Module):
    def __init__(self, c: VisionConfig, device=None):
        super().__init__()
        self.self_attn = Blip2Attention(c, device)
        self.layer_norm1 = _ln(c.hidden_size, c.layer_norm_eps, device)
        self.mlp = Blip2MLP(c, device)
        self.layer_norm2 = _ln(c.hidden_size, c.layer_norm_eps, device)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class Blip2Encoder(nn.Module):
    def __init__(self, c: VisionConfig, device=None):
        super().__init__()
        self.layers = nn.ModuleList([Blip2EncoderLayer(c, device) for _ in range(c.num_hidden_layers)])


class Blip2VisionModel(nn.Module):
    def __init__(self, c: VisionConfig, device=None):
        super().__init__()
        self.embeddings = Blip2VisionEmbeddings(c, device)
        self.encoder = Blip2Encoder(c, device)
        self.post_layernorm = _ln(c.hidden_size, c.layer_norm_eps, device)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """last_hidden_state [B, N, Dv], after post_layernorm (what BLIP-2 feeds the Q-Former)."""
        h = self.embeddings(pixel_values)
        for layer in self.encoder.layers:
            h = layer(h)
        return self.post_layernorm(h)


# ---------------------------------------------------------------- Q-Former

class QFormerMultiHeadAttention(nn.Module):
    def __init__(self, c: QFormerConfig, cross: bool, device=None):
        super().__init__()
        self.heads = c.num_attention_heads
        kv_in = c.encoder_hidden_size if cross else c.hidden_size
        self.query = nn.Linear(c.hidden_size, c.hidden_size, device=device)
        self.key = nn.Linear(kv_in, c.hidden_size, device=device)
        self.value = nn.Linear(kv_in, c.hidden_size, device=device)

    def forward(self, h: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        q, k, v = _heads(self.query(h), self.heads), _heads(self.key(states), self.heads), _heads(self.value(states), self.heads)
        probs = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1]), dim=-1)
        return _merge(probs @ v)


class QFormerSelfOutput(nn.Module):
    def __init__(self, c: QFormerConfig, device=None):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size, device=device)
        self.LayerNorm = _ln(c.hidden_size, c.layer_norm_eps, device)

    def forward(self, h, residual):
        return self.LayerNorm(self.dense(h) + residual)


class QFormerAttention(nn.Module):
    def __init__(self, c: QFormerConfig, cross: bool = False, device=None):
        super().__init__()
        self.attention = QFormerMultiHeadAttention(c, cross, device)
        self.output = QFormerSelfOutput(c, device)

    def forward(self, h, states=None):
        return self.output(self.attention(h, h if states is None else states), h)


class QFormerIntermediate(nn.Module):
    def __init__(self, c: QFormerConfig, device=None):
        super().__init__()
        self.act = _ACT[c.hidden_act]
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size, device=device)

    def forward(self, h):
        return self.act(self.dense(h))


class QFormerOutput(nn.Module):
    def __init__(self, c: QFormerConfig, device=None):
        super().__init__()
        self.dense = nn.Linear(c.intermediate_size, c.hidden_size, device=device)
        self.LayerNorm = _ln(c.hidden_size, c.layer_norm_eps, device)

    def forward(self, h, residual):
        return self.LayerNorm(self.dense(h) + residual)


class QFormerLayer(nn.Module):
    def __init__(self, c: QFormerConfig, index: int, device=None):
        super().__init__()
        self.attention = QFormerAttention(c, device=device)
        self.has_cross_attention = index % c.cross_attention_frequency == 0
        if self.has_cross_attention:
            self.crossattention = QFormerAttention(c, cross=True, device=device)
        self.intermediate_query = QFormerIntermediate(c, device)
        self.output_query = QFormerOutput(c, device)

    def forward(self, queries, image_states):
        h = self.attention(queries)
        if self.has_cross_attention:
            h = self.crossattention(h, image_states)
        return self.output_query(self.intermediate_query(h), h)


class QFormerEncoder(nn.Module):
    def __init__(self, c: QFormerConfig, device=None):
        super().__init__()
        self.layer = nn.ModuleList([QFormerLayer(c, i, device) for i in range(c.num_hidden_layers)])


class Blip2QFormerModel(nn.Module):
    """Queries only (what generation uses): image_attention_mask is all ones, so no mask."""

    def __init__(self, c: QFormerConfig, device=None):
        super().__init__()
        self.layernorm = _ln(c.hidden_size, c.layer_norm_eps, device)
        self.encoder = QFormerEncoder(c, device)

    def forward(self, query_embeds: torch.Tensor, image_states: torch.Tensor) -> torch.Tensor:
        h = self.layernorm(query_embeds)
        for layer in self.encoder.layer:
            h = layer(h, image_states)
        return h


# ---------------------------------------------------------------- OPT

class OptAttention(nn.Module):
    def __init__(self, c: OptConfig, device=None):
        super().__init__()
        self.heads = c.num_attention_heads
        d = c.hidden_size
        self.k_proj = nn.Linear(d, d, bias=c.enable_bias, device=device)
        self.v_proj = nn.Linear(d, d, bias=c.enable_bias, device=device)
        self.q_proj = nn.Linear(d, d, bias=c.enable_bias, device=device)
        self.out_proj = nn.Linear(d, d, bias=c.enable_bias, device=device)

    def forward(self, h, additive_mask, past=None):
        """h [B,T,D]; past: (key, value) [B,H,P,Dh] of a fixed-capacity cache (the mask hides unused
        slots) or None; additive_mask [B,1,T,P+T]. Returns (output, (new keys, new values))."""
        q = _heads(self.q_proj(h) * (h.shape[-1] // self.heads) ** -0.5, self.heads)
        k, v = _heads(self.k_proj(h), self.heads), _heads(self.v_proj(h), self.heads)
        if past is None:
            probs = torch.softmax(q @ k.transpose(-1, -2) + additive_mask, dim=-1)
            ctx = probs @ v
        else:
            # Scores against the cache and the new tokens joined, not the cache concatenated with
            # them: an exported step does not copy its cache per layer (tools/blip/model.py does the same).
            p = past[0].shape[2]
            scores = torch.cat([q @ past[0].transpose(-1, -2), q @ k.transpose(-1, -2)], dim=-1) + additive_mask
            probs = torch.softmax(scores, dim=-1)
            ctx = probs[..., :p] @ past[1] + probs[..., p:] @ v
        return self.out_proj(_merge(ctx)), (k, v)


class OptDecoderLayer(nn.Module):
    def __init__(self, c: OptConfig, device=None):
        super().__init__()
        self.pre_ln = c.do_layer_norm_before
        self.act = _ACT[c.activation_function]
        self.self_attn = OptAttention(c, device)
        self.self_attn_layer_norm = _ln(c.hidden_size, 1e-5, device, c.layer_norm_elementwise_affine)
        self.fc1 = nn.Linear(c.hidden_size, c.ffn_dim, bias=c.enable_bias, device=device)
        self.fc2 = nn.Linear(c.ffn_dim, c.hidden_size, bias=c.enable_bias, device=device)
        self.final_layer_norm = _ln(c.hidden_size, 1e-5, device, c.layer_norm_elementwise_affine)

    def forward(self, h, additive_mask, past=None):
        residual = h
        x = self.self_attn_layer_norm(h) if self.pre_ln else h
        x, kv = self.self_attn(x, additive_mask, past)
        h = residual + x
        if not self.pre_ln:
            h = self.self_attn_layer_norm(h)
        x = self.final_layer_norm(h) if self.pre_ln else h
        h = h + self.fc2(self.act(self.fc1(x)))
        if not self.pre_ln:
            h = self.final_layer_norm(h)
        return h, kv


class OptDecoder(nn.Module):
    def __init__(self, c: OptConfig, device=None):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.word_embed_proj_dim, padding_idx=c.pad_token_id, device=device)
        self.embed_positions = nn.Embedding(c.max_position_embeddings + POSITION_OFFSET, c.hidden_size, device=device)
        if c.word_embed_proj_dim != c.hidden_size:  # opt-350m only
            self.project_in = nn.Linear(c.word_embed_proj_dim, c.hidden_size, bias=False, device=device)
            self.project_out = nn.Linear(c.hidden_size, c.word_embed_proj_dim, bias=False, device=device)
        else:
            self.project_in = self.project_out = None
        # HF: final_layer_norm only for pre-LN models (`_remove_final_layer_norm` is a legacy flag, off)
        self.final_layer_norm = _ln(c.hidden_size, 1e-5, device, c.layer_norm_elementwise_affine) if c.do_layer_norm_before else None
        self.layers = nn.ModuleList([OptDecoderLayer(c, device) for _ in range(c.num_hidden_layers)])


class OptModel(nn.Module):
    def __init__(self, c: OptConfig, device=None):
        super().__init__()
        self.decoder = OptDecoder(c, device)


class OptForCausalLM(nn.Module):
    def __init__(self, c: OptConfig, device=None):
        super().__init__()
        self.config = c
        self.model = OptModel(c, device)
        self.lm_head = nn.Linear(c.word_embed_proj_dim, c.vocab_size, bias=False, device=device)
        self.lm_head.weight = self.model.decoder.embed_tokens.weight  # tied, as HF ties them

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.decoder.embed_tokens(input_ids)

    def hidden(self, inputs_embeds, additive_mask, positions, past=None):
        """Runs the decoder stack; returns (last hidden states [B,T,D], per-layer new (key, value))."""
        d = self.model.decoder
        h = inputs_embeds if d.project_in is None else d.project_in(inputs_embeds)
        h = h + d.embed_positions(positions + POSITION_OFFSET)
        news = []
        for li, layer in enumerate(d.layers):
            h, kv = layer(h, additive_mask, None if past is None else past[li])
            news.append(kv)
        if d.final_layer_norm is not None:
            h = d.final_layer_norm(h)
        if d.project_out is not None:
            h = d.project_out(h)
        return h, news

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """lm_head on the tied table, as a 2-D product so that the export can run it as
        Gemm(h, W, transB=1) on the embedding's own initializer (tools/blip2/export.py tie_lm_head)."""
        shape = h.shape[:-1]
        return F.linear(h.reshape(-1, h.shape[-1]), self.lm_head.weight).view(*shape, -1)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Full-sequence logits [B,T,V], HF semantics: causal, padding hidden, positions =
        cumsum(mask) * mask - 1 (left padding does not shift positions)."""
        t = inputs_embeds.shape[1]
        positions = (torch.cumsum(attention_mask, dim=1) * attention_mask - 1).clamp(min=0)
        allowed = torch.tril(torch.ones(t, t, dtype=torch.bool))[None, None] & attention_mask[:, None, None, :].bool()
        additive = torch.zeros(allowed.shape, dtype=inputs_embeds.dtype).masked_fill(~allowed, torch.finfo(inputs_embeds.dtype).min)
        h, _ = self.hidden(inputs_embeds, additive, positions)
        return self.logits(h)


# ---------------------------------------------------------------- BLIP-2

class Blip2ForConditionalGeneration(nn.Module):
    def __init__(self, c: Blip2Config, device=None):
        super().__init__()
        self.config = c
        self.vision_model = Blip2VisionModel(c.vision, device)
        self.query_tokens = nn.Parameter(torch.empty(1, c.num_query_tokens, c.qformer.hidden_size, device=device))
        self.qformer = Blip2QFormerModel(c.qformer, device)
        self.language_projection = nn.Linear(c.qformer.hidden_size, c.text.hidden_size, device=device)
        self.language_model = OptForCausalLM(c.text, device)

    def query_embeds(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """The 32 queries in the language model's embedding space [B, 32, D_llm]."""
        q = self.query_tokens.expand(image_embeds.shape[0], -1, -1)
        return self.language_projection(self.qformer(q, image_embeds))

    def prefix_logits(self, pixel_values: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits [B, 32 + T, V] of [queries, embed(input_ids)], as HF's forward / generate build
        the language model's inputs (all-ones mask over queries and text)."""
        queries = self.query_embeds(self.vision_model(pixel_values))
        embeds = torch.cat([queries, self.language_model.embed(input_ids)], dim=1)
        return self.language_model(embeds, torch.ones(embeds.shape[:2], dtype=torch.long))


def init_weights(model: nn.Module, std: float = 0.02, seed: int | None = None) -> None:
    """Random weights for the round trip: every tensor distinct and non-trivial, LayerNorm and biases
    included, so that a wrongly mapped key cannot hide behind an identity or zero init."""
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.dim() == 1:  # LayerNorm gains near 1
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
            elif name.endswith("position_embedding") or name.endswith("class_embedding") or name == "query_tokens":
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 if name == "query_tokens" else std))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))
