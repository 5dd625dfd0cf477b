"""Export BLIP-2 (tools/blip2/model.py) to a model folder of family "blip2": three ONNX graphs,
tokenizer.json and manifest.json (docs/model-format.md, "BLIP-2 folders").

- `vision_encoder`: pixel_values -> image_embeds (after post_layernorm).
- `qformer`: image_embeds -> query_embeds, the 32 queries after `language_projection`, in the
  language model's embedding space.
- `llm_decoder`: one OPT step with the repo's fixed-capacity self-attention cache
  (tools/blip/export.py DecoderGraph's convention): the caller owns the cache
  [L,2,rows,H,capacity,Dh], feeds it as one input per layer and key/value, hides unused slots with
  attention_mask, and writes the returned `new_kv` at past_length. The step takes `prefix_embeds`
  (the projected queries at the first step, zero rows afterwards) followed by the embeddings of
  `input_ids`, so the queries are prepended exactly as HF's generate does with inputs_embeds, and
  returns only the last position's logits (the LM head on 40 prompt positions would cost 5 GFLOP
  for nothing).

Graphs whose weights exceed ONNX's 2 GB protobuf limit keep them in one external data file beside
the graph (`<graph>.onnx.data`); the decoder always does, so the path is exercised at any depth.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from tools.blip.export import CLIP_MEAN, CLIP_STD, OPSET, layer_kv_names

from .model import Blip2Config, Blip2ForConditionalGeneration

FORMAT_VERSION = 2
FAMILY = "blip2"
PROMPT = "Question: {} Answer:"  # the prompt of HF's BLIP-2 model card and LAVIS's OPT VQA
EXTERNAL_LIMIT = 1_800_000_000   # bytes of weights above which a graph's weights go to external data


class VisionGraph(nn.Module):
    def __init__(self, m: Blip2ForConditionalGeneration):
        super().__init__()
        self.vision = m.vision_model

    def forward(self, pixel_values):
        return self.vision(pixel_values)


class QFormerGraph(nn.Module):
    def __init__(self, m: Blip2ForConditionalGeneration):
        super().__init__()
        self.m = m

    def forward(self, image_embeds):
        return self.m.query_embeds(image_embeds)


class DecoderStep(nn.Module):
    """logits of the last new position [rows, V] (the LM head reads the embedding table itself:
    tie_lm_head) and the new tokens' keys and values
    new_kv [L, 2, rows, H, new, Dh], where new = prefix + input_ids positions.

    attention_mask [rows, capacity + new]: 1 for filled cache slots and for every new token; the
    graph adds causality among the new tokens. Positions are past_length + arange(new) (+ OPT's
    offset of 2), which equals HF's cumsum(mask) - 1 for an unpadded sequence."""

    def __init__(self, m: Blip2ForConditionalGeneration):
        super().__init__()
        self.lm = m.language_model

    def forward(self, input_ids, prefix_embeds, attention_mask, past_length, *kv):
        embeds = torch.cat([prefix_embeds, self.lm.embed(input_ids)], dim=1)
        new = embeds.shape[1]
        capacity = attention_mask.shape[1] - new
        i = torch.arange(new)
        causal = (i[None, :] <= i[:, None]).to(embeds.dtype)
        visible = torch.cat([torch.ones(new, capacity, dtype=embeds.dtype), causal], dim=1)
        allowed = attention_mask[:, None, None, :].to(embeds.dtype) * visible[None, None]
        additive = (1.0 - allowed) * torch.finfo(embeds.dtype).min
        positions = past_length + i[None, :]
        past = [(kv[2 * li], kv[2 * li + 1]) for li in range(len(kv) // 2)]
        h, news = self.lm.hidden(embeds, additive, positions, past)
        logits = self.lm.logits(h[:, -1:, :])[:, 0, :]
        return logits, torch.stack([torch.stack(kv_) for kv_ in news])


def _io(name, dtype, shape):
    return {"name": name, "dtype": dtype, "shape": shape}


def sha256_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def model_id(name: str, graphs: dict) -> str:
    return f"{name}@" + hashlib.sha256("".join(g["sha256"] for _, g in sorted(graphs.items())).encode()).hexdigest()[:8]


def save_graph(model: onnx.ModelProto, path: Path, external: bool) -> list[Path]:
    """Saves `model` at path; with external=True every initializer over 1 KB goes to one
    `<file>.data` beside it (ONNX's external data format, which onnxruntime resolves relative to
    the graph file). Returns the files written."""
    data = path.with_name(path.name + ".data")
    if data.exists():
        data.unlink()
    if not external:
        onnx.save(model, str(path))
        return [path]
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data.name, size_threshold=1024)
    return [path, data]


def _export(module: nn.Module, args: tuple, path: Path, inputs: list, outputs: list, external: bool | None,
            tie: bool = False) -> list[Path]:
    dynamic = {}
    for spec in inputs + outputs:
        axes = {i: d for i, d in enumerate(spec["shape"]) if isinstance(d, str)}
        if axes:
            dynamic[spec["name"]] = axes
    weight_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    if external is None:
        external = weight_bytes > EXTERNAL_LIMIT
    module.eval()
    # torch writes a graph over 2 GB with one external file per tensor: export into a scratch
    # folder, then save once more with a single data file.
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp, torch.no_grad():
        scratch = Path(tmp) / path.name
        torch.onnx.export(module, args, str(scratch), input_names=[s["name"] for s in inputs],
                          output_names=[s["name"] for s in outputs], dynamic_axes=dynamic,
                          opset_version=OPSET, do_constant_folding=True)
        model = onnx.load(str(scratch))
        if tie and not tie_lm_head(model):
            raise RuntimeError(f"{path.name}: the tied LM head was not found in the exported graph")
        return save_graph(model, path, external)


def tie_lm_head(model: onnx.ModelProto) -> bool:
    """torch exports the tied LM head as MatMul(h, W^T) with W^T folded into a second copy of the
    embedding table (0.5 GB at OPT-2.7b's size). Rewrites it as Gemm(h, W, transB=1) on the table
    the embedding Gather reads, and drops the copy. Returns whether it found one."""
    inits = {i.name: i for i in model.graph.initializer}
    gathers = {n.input[0] for n in model.graph.node if n.op_type == "Gather" and n.input[0] in inits}
    for node in model.graph.node:
        if node.op_type != "MatMul" or node.input[1] not in inits:
            continue
        b = inits[node.input[1]]
        for name in gathers:
            table = inits[name]
            if list(table.dims) == list(b.dims)[::-1] and len(b.dims) == 2:
                if not np.array_equal(numpy_helper.to_array(table).T, numpy_helper.to_array(b)):
                    continue
                a = node.input[0]
                node.op_type = "Gemm"
                del node.input[:]
                node.input.extend([a, name])
                node.attribute.extend([helper.make_attribute("transB", 1)])
                model.graph.initializer.remove(b)
                return True
    return False


def graph_entry(files: list[Path], inputs: list, outputs: list) -> dict:
    entry = {"file": files[0].name, "sha256": sha256_files(files), "bytes": files[0].stat().st_size,
             "inputs": inputs, "outputs": outputs}
    if len(files) > 1:
        entry["externalData"] = [{"file": f.name, "bytes": f.stat().st_size} for f in files[1:]]
    return entry


def export_folder(out: str | Path, *, name: str, model: Blip2ForConditionalGeneration, tokenizer: dict,
                  source: str, newline_id: int | None, generation: dict | None = None,
                  decoder_external: bool | None = True) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    c: Blip2Config = model.config
    v, t = c.vision, c.text
    S, N, Dv, Q, D = v.image_size, v.num_positions, v.hidden_size, c.num_query_tokens, t.hidden_size
    L, H, V = t.num_hidden_layers, t.num_attention_heads, t.vocab_size
    Dh = D // H
    model.eval()
    graphs: dict[str, dict] = {}

    def add(gname, module, args, inputs, outputs, external=None, tie=False):
        files = _export(module, args, out / f"{gname}.onnx", inputs, outputs, external, tie)
        graphs[gname] = graph_entry(files, inputs, outputs)
        print("exported", gname, sum(f.stat().st_size for f in files) // (1 << 20), "MB", flush=True)

    add("vision_encoder", VisionGraph(model), (torch.randn(2, 3, S, S),),
        [_io("pixel_values", "float32", ["batch", 3, S, S])], [_io("image_embeds", "float32", ["batch", N, Dv])])
    add("qformer", QFormerGraph(model), (torch.randn(2, N, Dv),),
        [_io("image_embeds", "float32", ["batch", N, Dv])], [_io("query_embeds", "float32", ["batch", Q, D])])
    ids = torch.tensor([[5, 6], [7, 8]], dtype=torch.long)
    prefix = torch.randn(2, 3, D)
    cap = 4
    mask = torch.tensor([[1, 1, 0, 0] + [1] * 5, [1, 1, 0, 0] + [1] * 5], dtype=torch.long)
    past = [torch.randn(2, H, cap, Dh) for _ in range(2 * L)]
    add("llm_decoder", DecoderStep(model), (ids, prefix, mask, torch.tensor([2]), *past),
        [_io("input_ids", "int64", ["batch", "new_ids"]), _io("prefix_embeds", "float32", ["batch", "prefix", D]),
         _io("attention_mask", "int64", ["batch", "capacity_plus_new"]), _io("past_length", "int64", [1])]
        + [_io(n, "float32", ["batch", H, "capacity", Dh]) for n in layer_kv_names("past_key_values", L)],
        [_io("logits", "float32", ["batch", V]), _io("new_kv", "float32", [L, 2, "batch", H, "new", Dh])],
        external=decoder_external, tie=True)

    (out / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    manifest = {
        "format": "blip-search-model",
        "formatVersion": FORMAT_VERSION,
        "family": FAMILY,
        "name": name,
        "modelId": model_id(name, graphs),
        "source": source,
        "image": {"size": S, "mean": CLIP_MEAN, "std": CLIP_STD, "rescaleFactor": 1 / 255, "resample": "bicubic",
                  "alpha": "drop"},
        "text": {"tokenizer": "tokenizer.json", "vocabSize": V, "prompt": PROMPT,
                 "specialTokens": {"bos": t.bos_token_id, "eos": t.eos_token_id, "pad": t.pad_token_id,
                                   **({"newline": newline_id} if newline_id is not None else {})}},
        "dims": {"visionHidden": Dv, "imageTokens": N, "queryTokens": Q, "llmHidden": D, "llmLayers": L, "llmHeads": H,
                 "llmHeadDim": Dh, "maxPositions": t.max_position_embeddings},
        "generation": generation or {"vqa": {"maxNewTokens": 10, "minNewTokens": 0, "numBeams": 1, "repetitionPenalty": 1.0}},
        "config": c.to_dict(),
        "graphs": graphs,
        "tasks": {"vqa": {"vision": "vision_encoder", "qformer": "qformer", "decoder": "llm_decoder"}},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def folder_bytes(folder: str | Path) -> int:
    return sum(os.path.getsize(p) for p in Path(folder).iterdir() if p.is_file())
