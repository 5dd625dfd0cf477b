"""Read a bundle's trained weights back out of an exported model folder.

The training checkpoints are build outputs (tools/checkpoints/ is not committed), so a later session
that wants to train on from the bundled model has only its ONNX graphs. torch.onnx renames and
transposes some weights on export (a Linear's weight becomes a MatMul initializer named
`onnx::MatMul_123`), so names alone do not say which parameter an initializer holds. Instead we
export a probe bundle of the same config whose every parameter holds distinct random values, through
the same exporter: each probe initializer then equals exactly one parameter, as stored or transposed,
and the trained folder's initializer of the same name in the same graph holds that parameter's
trained value. A hand-written mapping of names would break on the next exporter or torch change.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
import torch

from .bundle import BlipBundle
from .export import export_folder
from .model import BlipConfig


def _initializers(path: Path) -> tuple[dict[str, np.ndarray], dict[tuple[str, int], str]]:
    """A graph's initializers by name, and which one each (node name, input index) reads."""
    graph = onnx.load(str(path)).graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    read_by = {(n.name, i): x for n in graph.node for i, x in enumerate(n.input) if x in values}
    return values, read_by


def _shares_vision(manifest: dict) -> bool:
    tasks = manifest["tasks"]
    return tasks["retrieval"]["vision"] == tasks["caption"]["vision"] == tasks["vqa"]["vision"]


def _probe(config: BlipConfig, share_vision: bool) -> BlipBundle:
    """A bundle whose parameters are all distinct: no two of them (nor a transpose) are equal."""
    return distinct_parameters(BlipBundle(config, share_vision=share_vision))


def _locate(probe: torch.nn.Module) -> dict[bytes, tuple[str, bool, tuple[int, ...]]]:
    """Parameter name, whether transposed and its shape, keyed by the bytes of the value the
    exporter writes (a weight used reshaped, as tools/blip/absorbed.py does, has the same bytes)."""
    index: dict[bytes, tuple[str, bool, tuple[int, ...]]] = {}
    for name, p in probe.named_parameters():  # shared modules are listed once, under their first name
        a = p.detach().numpy().astype(np.float32)
        index.setdefault(np.ascontiguousarray(a).tobytes(), (name, False, a.shape))
        if a.ndim == 2:
            index.setdefault(np.ascontiguousarray(a.T).tobytes(), (name, True, a.shape))
    return index


def distinct_parameters(module: torch.nn.Module) -> torch.nn.Module:
    """Fills every parameter with distinct random values (no two of them, nor a transpose, are
    equal), so that each initializer of its export is exactly one parameter."""
    gen = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return module.eval()


def read_parameters(probe: torch.nn.Module, probe_dir: Path, trained_dir: Path, graphs: dict[str, dict]) -> dict[str, torch.Tensor]:
    """The trained value of every parameter of `probe` (see distinct_parameters) that one of the
    `graphs` (a manifest's) holds, by the probe's export in `probe_dir` and the trained folder's
    graphs of the same names in `trained_dir`.

    @raises ValueError when a graph holds a value the probe cannot place, or two graphs disagree on
      one parameter: the trained folder was not exported from this architecture by this exporter.
    """
    index = _locate(probe)
    found: dict[str, torch.Tensor] = {}
    for gname, g in graphs.items():
        trained, trained_read_by = _initializers(trained_dir / g["file"])
        values, read_by = _initializers(probe_dir / g["file"])
        uses: dict[str, list[tuple[str, int]]] = {}
        for use, init_name in read_by.items():
            uses.setdefault(init_name, []).append(use)
        for init_name, value in values.items():
            if value.dtype != np.float32 or value.size < 2:
                continue  # shapes, axes and scalar constants, not weights
            hit = index.get(np.ascontiguousarray(value).tobytes())
            if hit is None:
                raise ValueError(f"{gname}: initializer {init_name} {value.shape} matches no parameter")
            # The trained initializer read by the same node (node names follow module paths), else
            # the one of the same name: anonymous names (onnx::MatMul_1307) are numbered through
            # the whole graph, so a graph exported before a change elsewhere in it (as the
            # decoders' fold of rows into inputs, model.py attend) numbers them differently.
            match = next((trained_read_by[u] for u in uses.get(init_name, []) if u in trained_read_by), init_name)
            if match not in trained or trained[match].shape != value.shape:
                raise ValueError(f"{gname}: the trained graph lacks initializer {init_name} {value.shape}")
            pname, transposed, shape = hit
            w = torch.from_numpy(np.array(trained[match].T if transposed else trained[match])).reshape(shape)
            if pname in found and not torch.equal(found[pname], w):
                raise ValueError(f"graphs disagree on {pname}")
            found[pname] = w
    return found


def state_dict_from_folder(folder: str | Path, tokenizer: dict) -> tuple[BlipConfig, dict[str, torch.Tensor], list[str]]:
    """The bundle's state dict from an exported folder.

    @param tokenizer the folder's tokenizer.json contents (the probe export needs one).
    @returns the config, a state dict for BlipBundle(config, share_vision=...) with every
      parameter the graphs hold, and the names of parameters no graph holds (they do not affect
      inference; they keep the bundle's initial values).
    @raises ValueError when a graph holds a value the probe cannot place, or two graphs disagree on
      one parameter: the folder was not exported from this architecture by tools/blip/export.py.
    """
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    config = BlipConfig.from_dict(manifest["config"])
    share = _shares_vision(manifest)
    probe = _probe(config, share)
    with tempfile.TemporaryDirectory() as tmp:
        export_folder(tmp, name="probe", config=config, retrieval=probe.retrieval, caption=probe.caption,
                      vqa=probe.vqa, tokenizer=tokenizer, source="probe", text_max_length=manifest["text"]["maxLength"])
        found = read_parameters(probe, Path(tmp), folder, manifest["graphs"])
    state = BlipBundle(config, share_vision=share).state_dict()
    # state_dict() lists shared modules under every alias; fill each alias from the one found.
    aliases = {n: n for n in found}
    first_of = {id(p): n for n, p in probe.named_parameters()}
    params = {n: t for n, t in probe.state_dict(keep_vars=True).items() if id(t) in first_of}
    for n, t in params.items():
        aliases.setdefault(n, first_of[id(t)])
    missing = []
    for key in state:
        src = aliases.get(key)
        if src in found:
            state[key] = found[src].clone()
        elif key in params:
            missing.append(key)
    return config, state, sorted(set(missing))
