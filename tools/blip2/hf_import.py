"""Load a local Hugging Face snapshot of a BLIP-2 OPT checkpoint (Salesforce/blip2-opt-2.7b and its
siblings) into tools/blip2/model.py with strict key matching.

The Hub ships the weights sharded: `model-0000k-of-0000n.safetensors` plus
`model.safetensors.index.json` (`{"metadata": {"total_size": ...}, "weight_map": {key: shard}}`);
a small snapshot may have one `model.safetensors`. There is no `safetensors` package on these
machines: the format (8-byte little-endian header length, JSON header, raw little-endian tensors)
is read here through numpy memory maps, so a 10 GB shard is not read into memory at once.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import torch

from tools.blip.hf_import import _ST_DTYPES, write_safetensors

from .model import Blip2Config, Blip2ForConditionalGeneration, OptConfig, QFormerConfig, VisionConfig

INDEX = "model.safetensors.index.json"
# HF ties lm_head to embed_tokens (OPT's tie_word_embeddings defaults to true): a snapshot may store
# the copy (older save_pretrained did) or not (safetensors conversion drops shared tensors); either
# way the tied table is what HF uses.
TIED = "language_model.lm_head.weight"

# HF class defaults (configuration_blip_2.py, configuration_opt.py) for keys a config.json omits.
_VISION = dict(hidden_size=1408, intermediate_size=6144, num_hidden_layers=39, num_attention_heads=16, image_size=224,
               patch_size=14, layer_norm_eps=1e-6, qkv_bias=True, hidden_act="gelu")
_QFORMER = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                cross_attention_frequency=2, encoder_hidden_size=1408, layer_norm_eps=1e-12, hidden_act="gelu",
                vocab_size=30522, max_position_embeddings=512)
_OPT = dict(vocab_size=50272, hidden_size=768, ffn_dim=3072, num_hidden_layers=12, num_attention_heads=12,
            max_position_embeddings=2048, word_embed_proj_dim=None, do_layer_norm_before=True,
            activation_function="relu", enable_bias=True, layer_norm_elementwise_affine=True,
            bos_token_id=2, eos_token_id=2, pad_token_id=1)


def config_from_hf(cfg: dict) -> Blip2Config:
    text = cfg.get("text_config") or {}
    if text.get("model_type", "opt") != "opt":
        raise ValueError(f"language model {text.get('model_type')!r} is not supported: only the OPT BLIP-2 checkpoints")
    v = VisionConfig(**{k: cfg.get("vision_config", {}).get(k, d) for k, d in _VISION.items()})
    q = QFormerConfig(**{k: cfg.get("qformer_config", {}).get(k, d) for k, d in _QFORMER.items()})
    q.encoder_hidden_size = v.hidden_size  # Blip2Config.__init__ sets it so
    t = {k: text.get(k, d) for k, d in _OPT.items()}
    t["word_embed_proj_dim"] = t["word_embed_proj_dim"] or t["hidden_size"]
    return Blip2Config(v, q, OptConfig(**t), cfg.get("num_query_tokens", 32))


def config_to_hf(c: Blip2Config) -> dict:
    """A config.json as the Hub's (for the random-weight round trip and the layout check)."""
    return {"architectures": ["Blip2ForConditionalGeneration"], "model_type": "blip-2", "num_query_tokens": c.num_query_tokens,
            "use_decoder_only_language_model": True,
            "vision_config": {**c.vision.__dict__, "model_type": "blip_2_vision_model"},
            "qformer_config": {**c.qformer.__dict__, "model_type": "blip_2_qformer"},
            "text_config": {**c.text.__dict__, "model_type": "opt", "architectures": ["OPTForCausalLM"]}}


def read_header(path: Path) -> tuple[dict, int]:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header, 8 + n


def read_tensor(path: Path, info: dict, base: int) -> torch.Tensor:
    begin, end = info["data_offsets"]
    if info["dtype"] == "BF16":
        raw = np.memmap(path, dtype="<u2", mode="r", offset=base + begin, shape=((end - begin) // 2,))
        arr = (raw.astype(np.uint32) << 16).view(np.float32)
    else:
        dt = np.dtype(_ST_DTYPES[info["dtype"]]).newbyteorder("<")
        arr = np.memmap(path, dtype=dt, mode="r", offset=base + begin, shape=((end - begin) // dt.itemsize,))
    return torch.from_numpy(np.array(arr, dtype=arr.dtype.newbyteorder("="))).reshape(info["shape"])


def shard_files(folder: Path) -> list[Path]:
    """The snapshot's weight files: the shards its index names, or the single model.safetensors."""
    index = folder / INDEX
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        return [folder / s for s in sorted(set(weight_map.values()))]
    single = folder / "model.safetensors"
    if single.exists():
        return [single]
    raise FileNotFoundError(f"{folder}: neither {INDEX} nor model.safetensors (convert .bin shards to safetensors first)")


def snapshot_shapes(folder: Path) -> dict[str, tuple[list[int], str]]:
    """Every stored key's shape and dtype, from the shard headers only (no tensor data is read).
    Checks that the index and the shards agree."""
    index = folder / INDEX
    weight_map = json.loads(index.read_text())["weight_map"] if index.exists() else None
    out = {}
    for f in shard_files(folder):
        header, _ = read_header(f)
        for k, info in header.items():
            if weight_map is not None and weight_map.get(k) != f.name:
                raise ValueError(f"{f.name} holds {k}, which {INDEX} puts in {weight_map.get(k)}")
            out[k] = (info["shape"], info["dtype"])
    if weight_map is not None and set(weight_map) != set(out):
        raise ValueError(f"{INDEX} names keys no shard holds: {sorted(set(weight_map) - set(out))[:10]}")
    return out


def check_keys(stored: dict[str, list[int]], model: torch.nn.Module, where: str) -> None:
    """Strict: every model key stored with its shape, nothing unknown (the tied lm_head may be either)."""
    expected = {k: list(v.shape) for k, v in model.state_dict().items() if k != TIED}
    stored = {k: list(s) for k, s in stored.items() if k != TIED}
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong = sorted(k for k in set(expected) & set(stored) if expected[k] != stored[k])
    if missing or unexpected or wrong:
        raise ValueError(f"{where}: state dict does not match Blip2ForConditionalGeneration (OPT):\n"
                         f"  missing: {missing[:20]}\n  unexpected: {unexpected[:20]}\n"
                         f"  wrong shape: {[(k, stored[k], expected[k]) for k in wrong[:10]]}")


def check_layout(folder: str | Path) -> dict:
    """The full-depth key check without weights: config.json and shard headers against the model
    built on the meta device (shapes only). Returns counts for the report."""
    folder = Path(folder)
    config = config_from_hf(json.loads((folder / "config.json").read_text()))
    model = Blip2ForConditionalGeneration(config, device="meta")
    shapes = snapshot_shapes(folder)
    check_keys({k: s for k, (s, _) in shapes.items()}, model, str(folder))
    params = sum(p.numel() for p in model.parameters())
    return {"keys": len(shapes), "parameters": params, "tied_lm_head_stored": TIED in shapes}


def load_checkpoint(folder: str | Path) -> tuple[Blip2ForConditionalGeneration, Blip2Config]:
    folder = Path(folder)
    config = config_from_hf(json.loads((folder / "config.json").read_text()))
    model = Blip2ForConditionalGeneration(config)
    shapes = snapshot_shapes(folder)
    check_keys({k: s for k, (s, _) in shapes.items()}, model, str(folder))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for f in shard_files(folder):
            header, base = read_header(f)
            for k, info in header.items():
                if k == TIED:
                    continue
                params[k].copy_(read_tensor(f, info, base).float())
    model.eval()
    return model, config


def save_sharded(folder: str | Path, model: torch.nn.Module, max_shard_bytes: int) -> list[str]:
    """Writes the state dict as the Hub does: shards of at most max_shard_bytes (a tensor larger
    than that gets a shard of its own), named model-0000k-of-0000n.safetensors, in state-dict
    order, with model.safetensors.index.json; the tied lm_head is not stored twice."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: v for k, v in model.state_dict().items() if k != TIED}
    groups: list[dict] = [{}]
    size = 0
    for k, v in sd.items():
        n = v.numel() * v.element_size()
        if groups[-1] and size + n > max_shard_bytes:
            groups.append({})
            size = 0
        groups[-1][k] = v
        size += n
    names = [f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors" for i in range(len(groups))]
    weight_map = {}
    for name, group in zip(names, groups):
        write_safetensors(folder / name, group)
        weight_map.update({k: name for k in group})
    total = sum(v.numel() * v.element_size() for v in sd.values())
    (folder / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n")
    return names
