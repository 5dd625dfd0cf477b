"""Int8 weights for a BLIP-2 model folder, as tools/blip/quantize.py does for BLIP, plus what BLIP-2
needs: graphs with external data (loaded and written back in ONNX's external data format), and the
tied LM head, which the export writes as `Gemm(h, W, transB=1)` reading the embedding table itself
(tools/blip2/model.py `logits`). That Gemm becomes DynamicQuantizeMatMul on an int8 copy of W^T;
the fp32 table stays for the embedding Gather.

By default only the language model (`llm_decoder`) is quantized: its weights are 70% of the real
2.7b model's and each generated token reads all of them, so int8 there is what makes tokens cheaper
(memory bandwidth bound). The vision encoder and Q-Former run once per image.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tools.blip.quantize import MS_DOMAIN, quantize_graph, quantize_weight

from .export import EXTERNAL_LIMIT, graph_entry, model_id, save_graph

NOT_COPIED = {"manifest.json", "EVAL.md", "eval.json"}


def quantize_tied_gemm(model: onnx.ModelProto, reduce_range: bool = False) -> int:
    """Gemm(A, W, transB=1) without bias, W a constant [N, K] -> DynamicQuantizeMatMul(A, int8 W^T)."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    count = 0
    for node in g.node:
        if node.op_type != "Gemm" or node.input[1] not in inits or len(node.input) > 2:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transA", 0) or not attrs.get("transB", 0) or attrs.get("alpha", 1.0) != 1.0:
            continue
        w = numpy_helper.to_array(inits[node.input[1]]).T  # [K, N]
        q, scale = quantize_weight(np.ascontiguousarray(w), reduce_range)
        base = f"{node.input[1]}_T"
        names = (f"{base}_int8", f"{base}_scale", f"{base}_zero_point")
        g.initializer.extend([numpy_helper.from_array(q, names[0]), numpy_helper.from_array(scale, names[1]),
                              numpy_helper.from_array(np.zeros_like(q[0]), names[2])])
        a = node.input[0]
        node.op_type, node.domain = "DynamicQuantizeMatMul", MS_DOMAIN
        del node.input[:]
        node.input.extend([a, *names])
        del node.attribute[:]
        count += 1
    if count and not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return count


def quantize_folder(src: str | Path, out: str | Path, *, graphs: tuple[str, ...] = ("llm_decoder",),
                    name: str | None = None, reduce_range: bool = False) -> dict:
    src, out = Path(src), Path(out)
    if src.resolve() == out.resolve():
        raise SystemExit("--out must be another folder: the fp32 model stays as it is")
    manifest = json.loads((src / "manifest.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    data_files = {d["file"] for g in manifest["graphs"].values() for d in g.get("externalData", [])}
    for f in src.iterdir():
        if f.is_file() and f.suffix != ".onnx" and f.name not in NOT_COPIED and f.name not in data_files:
            shutil.copy2(f, out / f.name)
    counts = {}
    for gname, spec in manifest["graphs"].items():
        model = onnx.load(str(src / spec["file"]))  # external data is loaded with it
        counts[gname] = 0
        if gname in graphs:
            counts[gname] = quantize_tied_gemm(model, reduce_range) + quantize_graph(model, reduce_range)
        weight_bytes = sum(len(i.raw_data) for i in model.graph.initializer)
        files = save_graph(model, out / spec["file"], bool(spec.get("externalData")) or weight_bytes > EXTERNAL_LIMIT)
        manifest["graphs"][gname] = graph_entry(files, spec["inputs"], spec["outputs"])
    fp32_id = manifest["modelId"]
    manifest["name"] = name or f"{manifest['name']}-int8"
    manifest["modelId"] = model_id(manifest["name"], manifest["graphs"])
    manifest["source"] = f"{manifest.get('source', manifest['name'])}; int8 weights by tools.quantize"
    manifest["quantization"] = {"weights": "int8", "scheme": "symmetric per output column", "reduceRange": reduce_range,
                                "operator": f"{MS_DOMAIN}.DynamicQuantizeMatMul", "matmuls": counts,
                                "fp32Graphs": sorted(set(manifest["graphs"]) - set(graphs)), "from": fp32_id}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
