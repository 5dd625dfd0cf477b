"""Load local Hugging Face snapshots of the Salesforce BLIP checkpoints into our PyTorch classes
with strict key matching.

A snapshot folder holds `config.json`, `model.safetensors` or `pytorch_model.bin`, and
`tokenizer.json` or `vocab.txt`. There is no `safetensors` package on these machines, so the file
format (8-byte little-endian header length, JSON header, raw little-endian tensors) is read and
written here directly.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import torch

from .model import (BlipConfig, BlipForConditionalGeneration, BlipForImageTextRetrieval,
                    BlipForQuestionAnswering, TextConfig, VisionConfig)
from .tokenizer import tokenizer_json, vocab_from_txt

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32,
              "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}

ARCHITECTURES = {
    "BlipForImageTextRetrieval": ("retrieval", BlipForImageTextRetrieval),
    "BlipForConditionalGeneration": ("caption", BlipForConditionalGeneration),
    "BlipForQuestionAnswering": ("vqa", BlipForQuestionAnswering),
}

# Keys a checkpoint may carry or omit without meaning anything: buffers that older transformers
# versions persisted, and the LM-head bias tied to `cls.predictions.bias`.
_OPTIONAL_SUFFIXES = ("embeddings.position_ids", "cls.predictions.decoder.bias")


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8: 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        if info["dtype"] == "BF16":
            raw = np.frombuffer(data, dtype=np.uint16, count=(end - begin) // 2, offset=base + begin)
            arr = (raw.astype(np.uint32) << 16).view(np.float32)
        else:
            dt = np.dtype(_ST_DTYPES[info["dtype"]]).newbyteorder("<")
            arr = np.frombuffer(data, dtype=dt, count=(end - begin) // dt.itemsize, offset=base + begin)
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out


def write_safetensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().cpu().contiguous().numpy()
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _ST_NAMES[a.dtype.type], "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


# HF class defaults (configuration_blip.py), used for keys a config.json leaves out. Note the
# text heads default of 8: the Hub configs set 12 explicitly (docs/blip.md, pitfall 1).
_HF_TEXT_DEFAULTS = dict(vocab_size=30524, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                         num_attention_heads=8, max_position_embeddings=512, layer_norm_eps=1e-12,
                         encoder_hidden_size=768, pad_token_id=0, sep_token_id=102, bos_token_id=30522)
_HF_VISION_DEFAULTS = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=384, patch_size=16, layer_norm_eps=1e-5)


def config_from_hf(cfg: dict) -> BlipConfig:
    tc = {k: cfg.get("text_config", {}).get(k, v) for k, v in _HF_TEXT_DEFAULTS.items()}
    vc = {k: cfg.get("vision_config", {}).get(k, v) for k, v in _HF_VISION_DEFAULTS.items()}
    tc["encoder_hidden_size"] = vc["hidden_size"]  # BlipConfig.__init__ sets it so
    return BlipConfig(VisionConfig(**vc), TextConfig(**tc), cfg.get("image_text_hidden_size", 256))


def config_to_hf(config: BlipConfig, architecture: str) -> dict:
    """A config.json as the Hub's (for the random-weight round trip)."""
    return {"architectures": [architecture], "model_type": "blip",
            "image_text_hidden_size": config.image_text_hidden_size, "projection_dim": 512,
            "text_config": {**config.text.__dict__, "model_type": "blip_text_model"},
            "vision_config": {**config.vision.__dict__, "model_type": "blip_vision_model"}}


def load_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    st, binf = folder / "model.safetensors", folder / "pytorch_model.bin"
    if st.exists():
        return read_safetensors(st)
    if binf.exists():
        return torch.load(binf, map_location="cpu")
    raise FileNotFoundError(f"{folder}: neither model.safetensors nor pytorch_model.bin")


def load_checkpoint(folder: str | Path):
    """Returns (task, model, config) for one snapshot folder; strict key matching."""
    folder = Path(folder)
    cfg = json.loads((folder / "config.json").read_text())
    arch = (cfg.get("architectures") or [None])[0]
    if arch not in ARCHITECTURES:
        raise ValueError(f"{folder}: architecture {arch!r} is not one of {sorted(ARCHITECTURES)}")
    task, cls = ARCHITECTURES[arch]
    config = config_from_hf(cfg)
    model = cls(config)
    sd = load_state_dict(folder)
    expected = set(model.state_dict())
    for k in list(sd):
        if k.endswith("embeddings.position_ids"):
            del sd[k]
    tied_w = "text_decoder.cls.predictions.decoder.weight"
    if tied_w in expected and tied_w not in sd:
        sd[tied_w] = sd["text_decoder.bert.embeddings.word_embeddings.weight"]
    for k in expected:
        if k.endswith("cls.predictions.decoder.bias") and k not in sd:
            sd[k] = sd[k.replace("decoder.bias", "bias")]
    missing = sorted(expected - set(sd))
    unexpected = sorted(set(sd) - expected)
    if missing or unexpected:
        raise ValueError(f"{folder}: state dict does not match {arch}:\n  missing: {missing[:20]}\n"
                         f"  unexpected: {unexpected[:20]}")
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    model.eval()
    return task, model, config


def load_tokenizer(folder: str | Path) -> dict:
    """tokenizer.json (our format, BERT uncased WordPiece with [DEC]/[ENC] appended) from a snapshot's
    tokenizer.json vocabulary or vocab.txt."""
    folder = Path(folder)
    tj = folder / "tokenizer.json"
    if tj.exists():
        vocab = json.loads(tj.read_text())["model"]["vocab"]
        tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    else:
        tokens = vocab_from_txt(folder / "vocab.txt")
    tokens = [t for t in tokens if t not in ("[DEC]", "[ENC]")]
    return tokenizer_json(tokens)
