"""Int8 weights for a model folder: every MatMul whose second input is a constant 2-D float
weight becomes ONNX Runtime's `com.microsoft.DynamicQuantizeMatMul` (weights int8, symmetric,
one scale per output column; activations quantized to uint8 at run time by the kernel).

Written here rather than taken from `onnxruntime.quantization.quantize_dynamic` because that
package is not installable on our machines (no PyPI, and Debian does not package onnxruntime);
the rewrite is small and only uses the `onnx` package. Its output is the same operator that
quantize_dynamic's MatMul path produces once ORT's optimizer has fused it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tools.blip.export import model_id, sha256_file

MS_DOMAIN = "com.microsoft"
# Files of a model folder that describe the fp32 graphs and would be wrong for the int8 copy.
NOT_COPIED = {"manifest.json", "EVAL.md", "eval.json"}


def quantize_weight(w: np.ndarray, reduce_range: bool) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-column int8: w[:, n] ~= q[:, n] * scale[n]. reduce_range keeps weights in
    [-63, 63], so that on CPUs without VNNI the u8 x s8 pairwise add into int16 cannot saturate."""
    qmax = 63.0 if reduce_range else 127.0
    scale = np.abs(w).max(axis=0) / qmax
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale), -qmax, qmax).astype(np.int8)
    return q, scale


def quantize_graph(model: onnx.ModelProto, reduce_range: bool = False) -> int:
    """Rewrites `model` in place; returns how many MatMuls now run on int8 weights."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    done: dict[str, tuple[str, str, str]] = {}
    count = 0
    for node in g.node:
        if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx") or node.input[1] not in inits:
            continue
        w_init = inits[node.input[1]]
        if w_init.data_type != onnx.TensorProto.FLOAT or len(w_init.dims) != 2:
            continue
        name = w_init.name
        if name not in done:
            q, scale = quantize_weight(numpy_helper.to_array(w_init), reduce_range)
            names = (f"{name}_int8", f"{name}_scale", f"{name}_zero_point")
            g.initializer.extend([numpy_helper.from_array(q, names[0]), numpy_helper.from_array(scale, names[1]),
                                  numpy_helper.from_array(np.zeros_like(q[0]), names[2])])
            done[name] = names
        a = node.input[0]
        node.op_type, node.domain = "DynamicQuantizeMatMul", MS_DOMAIN
        del node.input[:]
        node.input.extend([a, *done[name]])
        count += 1
    # A float weight that is still read elsewhere (a tied embedding's Gather) stays.
    used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    if count and not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return count


def quantize_folder(src: str | Path, out: str | Path, *, name: str | None = None, reduce_range: bool = False,
                    keep_fp32: set[str] | frozenset[str] = frozenset()) -> dict:
    """keep_fp32: graphs copied as they are (per-graph choice: int8 only where it costs no quality,
    as measured by `npm run eval` on the bundled model and the feature cosines of the full-size test)."""
    src, out = Path(src), Path(out)
    if src.resolve() == out.resolve():
        raise SystemExit("--out must be another folder: the fp32 model stays as it is")
    manifest = json.loads((src / "manifest.json").read_text())
    unknown = set(keep_fp32) - set(manifest["graphs"])
    if unknown:
        raise SystemExit(f"--keep-fp32 names graphs the model does not have: {sorted(unknown)}; it has {sorted(manifest['graphs'])}")
    out.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.suffix != ".onnx" and f.name not in NOT_COPIED:
            shutil.copy2(f, out / f.name)
    matmuls = {}
    for gname, spec in manifest["graphs"].items():
        model = onnx.load(str(src / spec["file"]))
        matmuls[gname] = 0 if gname in keep_fp32 else quantize_graph(model, reduce_range)
        path = out / spec["file"]
        onnx.save(model, str(path))
        spec["sha256"] = sha256_file(path)
        spec["bytes"] = path.stat().st_size
    fp32_id = manifest["modelId"]
    manifest["name"] = name or f"{manifest['name']}-int8"
    manifest["modelId"] = model_id(manifest["name"], manifest["graphs"])
    manifest["source"] = f"{manifest.get('source', manifest['name'])}; int8 weights by tools.quantize"
    manifest["quantization"] = {"weights": "int8", "scheme": "symmetric per output column",
                                "reduceRange": reduce_range, "operator": f"{MS_DOMAIN}.DynamicQuantizeMatMul",
                                "matmuls": matmuls, "fp32Graphs": sorted(keep_fp32), "from": fp32_id}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
