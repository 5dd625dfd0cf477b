"""Full-depth key layout of Salesforce/blip2-opt-2.7b, checked without allocating a weight.

`hub_keys` writes down the checkpoint's keys and shapes as HF names them, independently of
tools/blip2/model.py: from HF's BLIP-2 conversion script's renames (visual_encoder.blocks.N ->
vision_model.encoder.layers.N, Qformer.bert.embeddings.LayerNorm -> qformer.layernorm, the
q/v biases folded into qkv.bias) and OPTForCausalLM's module names. `check_full_depth` writes a
snapshot of that layout whose shards hold safetensors headers only (shapes, no data), with the
real config.json values and an index, and runs the importer's strict check on it with the model
built on the meta device.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

from .hf_import import INDEX, check_layout, config_to_hf
from .model import Blip2Config, opt_2_7b_config


def hub_keys(c: Blip2Config) -> dict[str, list[int]]:
    v, q, t = c.vision, c.qformer, c.text
    D, F = v.hidden_size, v.intermediate_size
    keys: dict[str, list[int]] = {
        "vision_model.embeddings.class_embedding": [1, 1, D],
        "vision_model.embeddings.patch_embedding.weight": [D, 3, v.patch_size, v.patch_size],
        "vision_model.embeddings.patch_embedding.bias": [D],
        "vision_model.embeddings.position_embedding": [1, (v.image_size // v.patch_size) ** 2 + 1, D],
        "vision_model.post_layernorm.weight": [D], "vision_model.post_layernorm.bias": [D],
        "query_tokens": [1, c.num_query_tokens, q.hidden_size],
        "qformer.layernorm.weight": [q.hidden_size], "qformer.layernorm.bias": [q.hidden_size],
        "language_projection.weight": [t.hidden_size, q.hidden_size], "language_projection.bias": [t.hidden_size],
        "language_model.model.decoder.embed_tokens.weight": [t.vocab_size, t.word_embed_proj_dim],
        "language_model.model.decoder.embed_positions.weight": [t.max_position_embeddings + 2, t.hidden_size],
        "language_model.model.decoder.final_layer_norm.weight": [t.hidden_size],
        "language_model.model.decoder.final_layer_norm.bias": [t.hidden_size],
        "language_model.lm_head.weight": [t.vocab_size, t.word_embed_proj_dim],
    }
    for i in range(v.num_hidden_layers):
        p = f"vision_model.encoder.layers.{i}."
        keys.update({p + "self_attn.qkv.weight": [3 * D, D], p + "self_attn.qkv.bias": [3 * D],
                     p + "self_attn.projection.weight": [D, D], p + "self_attn.projection.bias": [D],
                     p + "mlp.fc1.weight": [F, D], p + "mlp.fc1.bias": [F], p + "mlp.fc2.weight": [D, F],
                     p + "mlp.fc2.bias": [D]})
        for ln in ("layer_norm1", "layer_norm2"):
            keys.update({p + ln + ".weight": [D], p + ln + ".bias": [D]})
    H, I, E = q.hidden_size, q.intermediate_size, q.encoder_hidden_size
    for i in range(q.num_hidden_layers):
        p = f"qformer.encoder.layer.{i}."
        blocks = [("attention.", H)] + ([("crossattention.", E)] if i % q.cross_attention_frequency == 0 else [])
        for b, kv_in in blocks:
            keys.update({p + b + "attention.query.weight": [H, H], p + b + "attention.query.bias": [H],
                         p + b + "attention.key.weight": [H, kv_in], p + b + "attention.key.bias": [H],
                         p + b + "attention.value.weight": [H, kv_in], p + b + "attention.value.bias": [H],
                         p + b + "output.dense.weight": [H, H], p + b + "output.dense.bias": [H],
                         p + b + "output.LayerNorm.weight": [H], p + b + "output.LayerNorm.bias": [H]})
        keys.update({p + "intermediate_query.dense.weight": [I, H], p + "intermediate_query.dense.bias": [I],
                     p + "output_query.dense.weight": [H, I], p + "output_query.dense.bias": [H],
                     p + "output_query.LayerNorm.weight": [H], p + "output_query.LayerNorm.bias": [H]})
    d, f = t.hidden_size, t.ffn_dim
    for i in range(t.num_hidden_layers):
        p = f"language_model.model.decoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            keys.update({p + f"self_attn.{proj}.weight": [d, d], p + f"self_attn.{proj}.bias": [d]})
        keys.update({p + "fc1.weight": [f, d], p + "fc1.bias": [f], p + "fc2.weight": [d, f], p + "fc2.bias": [d]})
        for ln in ("self_attn_layer_norm", "final_layer_norm"):
            keys.update({p + ln + ".weight": [d], p + ln + ".bias": [d]})
    return keys


def write_header_only_snapshot(folder: Path, config: Blip2Config, shards: int = 2) -> dict[str, list[int]]:
    """config.json, index and `shards` safetensors files that hold headers only (float16, as the
    Hub's files are; no tensor bytes follow)."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = hub_keys(config)
    names = sorted(keys)
    per = -(-len(names) // shards)
    weight_map = {}
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        header, off = {}, 0
        for k in names[s * per:(s + 1) * per]:
            n = 2
            for dim in keys[k]:
                n *= dim
            header[k] = {"dtype": "F16", "shape": keys[k], "data_offsets": [off, off + n]}
            off += n
            weight_map[k] = fname
        h = json.dumps(header).encode()
        (folder / fname).write_bytes(struct.pack("<Q", len(h)) + h)
    (folder / INDEX).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=1))
    (folder / "config.json").write_text(json.dumps(config_to_hf(config), indent=2))
    return keys


def check_full_depth(folder: str | Path) -> dict:
    write_header_only_snapshot(Path(folder), opt_2_7b_config())
    return check_layout(folder)


if __name__ == "__main__":
    print(check_full_depth(".cache/blip2-layout"))
