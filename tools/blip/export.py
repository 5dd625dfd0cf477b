"""Export BLIP (our PyTorch reference, HF layout) to a model folder: ONNX graphs + tokenizer.json +
manifest.json, as docs/model-format.md specifies."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from .absorbed import encode_absorbed
from .static_shapes import rewrite_file
from .model import (BlipConfig, BlipForConditionalGeneration, BlipForImageTextRetrieval,
                    BlipForQuestionAnswering, BlipVisionModel)

OPSET = 14
FORMAT_VERSION = 2
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def quantize_states(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per token: x[b, n, :] ~= codes[b, n, :] * scales[b, n]. The ITM states of an
    image shrink from 4 to about 1 byte a value (0.44 MB at base size), stored once per image."""
    scales = (x.abs().amax(dim=-1) / 127.0).clamp(min=1e-12)
    codes = torch.round(x / scales[..., None]).clamp(-127, 127).to(torch.int8)
    return codes, scales


def dequantize_states(codes: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    return codes.to(torch.float32) * scales[..., None]


class VisionGraph(nn.Module):
    """Image states for captioning/VQA; the retrieval encoder adds the ITC feature and the ITM
    states as int8 codes with per-token scales."""

    def __init__(self, vision: BlipVisionModel, proj: nn.Linear | None):
        super().__init__()
        self.vision, self.proj = vision, proj

    def forward(self, pixel_values):
        image_embeds = self.vision(pixel_values)
        if self.proj is None:
            return image_embeds
        codes, scales = quantize_states(image_embeds)
        return image_embeds, F.normalize(self.proj(image_embeds[:, 0, :]), dim=-1), codes, scales


class TextFeatureGraph(nn.Module):
    def __init__(self, m: BlipForImageTextRetrieval):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask):
        return self.m.text_feat(input_ids, attention_mask)


class ItmGraph(nn.Module):
    """ITM logits from the stored int8 ITM states, cross-attention as in tools/blip/absorbed.py."""

    def __init__(self, m: BlipForImageTextRetrieval):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask, itm_states, itm_scales):
        h = encode_absorbed(self.m.text_encoder, input_ids, attention_mask, dequantize_states(itm_states, itm_scales))
        return self.m.itm_head(h[:, 0, :])


class QuestionEncoderGraph(nn.Module):
    def __init__(self, m: BlipForQuestionAnswering):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask, image_embeds):
        return encode_absorbed(self.m.text_encoder, input_ids, attention_mask, image_embeds)


class CrossKvGraph(nn.Module):
    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, encoder_hidden_states):
        return self.decoder.bert.cross_kv(encoder_hidden_states)


class DecoderGraph(nn.Module):
    """One decoder step for `batch` rows: the beams of one or more inputs.

    Keys and values come one input per layer (`past_key_values.{l}.key` ...): slicing one stacked
    input would copy it at every step (42.5 MB of cross-attention keys and values at base size).
    The self-attention cache has a fixed capacity that the caller owns and fills: slots at
    past_length and beyond are hidden by attention_mask ([B, capacity + new]). The graph returns
    only the new tokens' keys and values (new_kv), so a step copies kilobytes out of onnxruntime,
    not the cache (onnxruntime-node copies every output into a fresh buffer). Cross-attention keys
    and values come once per input (`inputs` <= batch): the rows are that many equal groups, the
    beams of each input in turn, and each group shares its input's keys and values (nothing is
    tiled), so several captions can share one run's weight reads."""

    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, input_ids, attention_mask, past_length, encoder_attention_mask, *kv):
        layers = len(kv) // 4
        past = [(kv[2 * i], kv[2 * i + 1]) for i in range(layers)]
        cross = [(kv[2 * layers + 2 * i], kv[2 * layers + 2 * i + 1]) for i in range(layers)]
        logits, new = self.decoder(input_ids, attention_mask, encoder_attention_mask=encoder_attention_mask,
                                   past_kv=past, cross_kv=cross, return_present=True, past_length=past_length,
                                   new_only=True)
        return logits, new


def layer_kv_names(prefix: str, layers: int) -> list[str]:
    """`{prefix}.{l}.key`, `{prefix}.{l}.value` for every layer, in input order."""
    return [f"{prefix}.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]


def model_id(name: str, graphs: dict) -> str:
    """name@ the first 8 hex of the sha256 of all graph hashes: changes whenever any weight changes."""
    return f"{name}@" + hashlib.sha256("".join(g["sha256"] for _, g in sorted(graphs.items())).encode()).hexdigest()[:8]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _io(name, dtype, shape):
    return {"name": name, "dtype": dtype, "shape": shape}


def _export(module: nn.Module, args: tuple, path: Path, inputs: list, outputs: list) -> None:
    dynamic = {}
    for spec in inputs + outputs:
        axes = {i: d for i, d in enumerate(spec["shape"]) if isinstance(d, str)}
        if axes:
            dynamic[spec["name"]] = axes
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), input_names=[s["name"] for s in inputs],
                          output_names=[s["name"] for s in outputs], dynamic_axes=dynamic,
                          opset_version=OPSET, do_constant_folding=True)


def export_folder(out: str | Path, *, name: str, config: BlipConfig, retrieval: BlipForImageTextRetrieval,
                  caption: BlipForConditionalGeneration, vqa: BlipForQuestionAnswering, tokenizer: dict,
                  source: str, text_max_length: int = 35, generation: dict | None = None,
                  search: dict | None = None, extra: dict | None = None) -> dict:
    """search: service defaults chosen for this model, e.g. {"defaultCandidates": 128} (the ITC
    candidates ITM re-ranks when a query names none; docs/model-format.md)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    v, t = config.vision, config.text
    S, N, Dv, Dt, E = v.image_size, v.num_positions, v.hidden_size, t.hidden_size, config.image_text_hidden_size
    L, H, Dh, V = t.num_hidden_layers, t.num_attention_heads, t.hidden_size // t.num_attention_heads, t.vocab_size
    for m in (retrieval, caption, vqa):
        m.eval()

    graphs: dict[str, dict] = {}
    ids = torch.tensor([[2, 7, 9, 3], [2, 8, 3, 0]], dtype=torch.long).clamp(max=V - 1)
    mask = (ids != 0).long()
    pix = torch.randn(2, 3, S, S)

    def add(gname, module, args, inputs, outputs):
        f = out / f"{gname}.onnx"
        _export(module, args, f, inputs, outputs)
        rewrite_file(f)  # constant Reshape targets (tools/blip/static_shapes.py)
        graphs[gname] = {"file": f.name, "inputs": inputs, "outputs": outputs}

    # Vision encoders: one per distinct module (the bundled model shares one among all tasks).
    vision_names: dict[int, str] = {}
    shared = caption.vision_model is retrieval.vision_model and vqa.vision_model is retrieval.vision_model
    for task, m in (("retrieval", retrieval), ("caption", caption), ("vqa", vqa)):
        if id(m.vision_model) in vision_names:
            continue
        gname = "vision_encoder" if shared else f"vision_encoder_{task}"
        proj = retrieval.vision_proj if m.vision_model is retrieval.vision_model else None
        outputs = [_io("image_embeds", "float32", ["batch", N, Dv])]
        if proj is not None:
            outputs += [_io("image_feat", "float32", ["batch", E]), _io("itm_states", "int8", ["batch", N, Dv]),
                        _io("itm_scales", "float32", ["batch", N])]
        add(gname, VisionGraph(m.vision_model, proj), (pix,),
            [_io("pixel_values", "float32", ["batch", 3, S, S])], outputs)
        vision_names[id(m.vision_model)] = gname

    text_in = [_io("input_ids", "int64", ["batch", "seq"]), _io("attention_mask", "int64", ["batch", "seq"])]
    add("text_feature", TextFeatureGraph(retrieval), (ids, mask), text_in, [_io("text_feat", "float32", ["batch", E])])
    emb = torch.randn(2, N, Dv)
    add("itm", ItmGraph(retrieval), (ids, mask, *quantize_states(emb)),
        text_in + [_io("itm_states", "int8", ["batch", N, Dv]), _io("itm_scales", "float32", ["batch", N])],
        [_io("itm_logits", "float32", ["batch", 2])])
    add("vqa_question_encoder", QuestionEncoderGraph(vqa), (ids, mask, emb),
        text_in + [_io("image_embeds", "float32", ["batch", N, Dv])],
        [_io("question_states", "float32", ["batch", "seq", Dt])])

    for prefix, m, enc_dim in (("caption", caption, Dv), ("vqa", vqa, Dt)):
        enc = torch.randn(2, 5, enc_dim)
        add(f"{prefix}_cross_kv", CrossKvGraph(m.text_decoder), (enc,),
            [_io("encoder_hidden_states", "float32", ["batch", "enc_seq", enc_dim])],
            [_io("cross_kv", "float32", [L, 2, "batch", H, "enc_seq", Dh])])
        # Traced with two inputs of two beams each, so that the fold of rows into inputs
        # (model.py, BlipTextSelfAttention.attend) reads the input count from the keys' shape.
        dec_ids = torch.tensor([[5, 6], [7, 8], [6, 5], [8, 7]], dtype=torch.long).clamp(max=V - 1)
        dec_mask = torch.tensor([[1, 1, 1, 0, 1, 1]] * 4, dtype=torch.long)
        past = [torch.randn(4, H, 4, Dh) for _ in range(2 * L)]
        cross = [torch.randn(2, H, 5, Dh) for _ in range(2 * L)]
        add(f"{prefix}_decoder", DecoderGraph(m.text_decoder),
            (dec_ids, dec_mask, torch.tensor([3]), torch.ones(1, 5, dtype=torch.long), *past, *cross),
            [_io("input_ids", "int64", ["batch", "new"]),
             _io("attention_mask", "int64", ["batch", "capacity_plus_new"]),
             _io("past_length", "int64", [1]),
             _io("encoder_attention_mask", "int64", [1, "enc_seq"])]
            + [_io(n, "float32", ["batch", H, "capacity", Dh]) for n in layer_kv_names("past_key_values", L)]
            + [_io(n, "float32", ["inputs", H, "enc_seq", Dh]) for n in layer_kv_names("cross_key_values", L)],
            [_io("logits", "float32", ["batch", "new", V]),
             _io("new_kv", "float32", [L, 2, "batch", H, "new", Dh])])

    for g in graphs.values():
        p = out / g["file"]
        g["sha256"] = sha256_file(p)
        g["bytes"] = p.stat().st_size
    (out / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    vocab = tokenizer["model"]["vocab"]
    added = {a["content"]: a["id"] for a in tokenizer["added_tokens"]}
    special = {"pad": vocab["[PAD]"], "unk": vocab["[UNK]"], "cls": vocab["[CLS]"], "sep": vocab["[SEP]"],
               "mask": vocab["[MASK]"], "dec": added["[DEC]"], "enc": added["[ENC]"]}
    manifest = {
        "format": "blip-search-model",
        "formatVersion": FORMAT_VERSION,
        "name": name,
        "modelId": model_id(name, graphs),
        "source": source,
        "image": {"size": S, "mean": CLIP_MEAN, "std": CLIP_STD, "rescaleFactor": 1 / 255,
                  "resample": "bicubic", "alpha": "drop"},
        "text": {"tokenizer": "tokenizer.json", "maxLength": text_max_length, "vocabSize": V, "doLowerCase": True,
                 "specialTokens": special, "itmFirstToken": "cls", "vqaFirstToken": "cls"},
        "dims": {"embed": E, "visionHidden": Dv, "imageTokens": N, "textHidden": Dt,
                 "decoderLayers": L, "decoderHeads": H, "decoderHeadDim": Dh},
        "generation": generation or {
            "caption": {"maxLength": 30, "minLength": 5, "numBeams": 3, "repetitionPenalty": 1.0, "prompt": ""},
            "vqa": {"maxLength": 10, "minLength": 1, "numBeams": 1}},
        "config": config.to_dict(),
        **({"search": search} if search else {}),
        "graphs": graphs,
        "tasks": {
            "retrieval": {"vision": vision_names[id(retrieval.vision_model)], "textFeature": "text_feature", "itm": "itm"},
            "caption": {"vision": vision_names[id(caption.vision_model)], "crossKv": "caption_cross_kv",
                        "decoder": "caption_decoder"},
            "vqa": {"vision": vision_names[id(vqa.vision_model)], "questionEncoder": "vqa_question_encoder",
                    "crossKv": "vqa_cross_kv", "decoder": "vqa_decoder"},
        },
    }
    if extra:
        manifest.update(extra)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
