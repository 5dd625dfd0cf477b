"""Read a BLIP-2 folder's trained weights back out of its ONNX graphs, as tools/blip/onnx_weights.py
does for BLIP (its docstring says why by a probe export rather than by names): a later run can start
from an exported model's frozen language model instead of pretraining it again
(tools/blip2/scenes_train.py, `lm_from`)."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from tools.blip.onnx_weights import distinct_parameters, read_parameters

from .export import export_folder
from .model import Blip2Config, Blip2ForConditionalGeneration


def parameters_from_folder(folder: str | Path) -> tuple[Blip2Config, dict[str, torch.Tensor]]:
    """Every parameter of Blip2ForConditionalGeneration that the folder's graphs hold, by name.

    @raises ValueError when a graph holds a value the probe cannot place (see read_parameters)."""
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    config = Blip2Config.from_dict(manifest["config"])
    probe = distinct_parameters(Blip2ForConditionalGeneration(config))
    tokenizer = json.loads((folder / manifest["text"]["tokenizer"]).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        export_folder(tmp, name="probe", model=probe, tokenizer=tokenizer, source="probe",
                      newline_id=manifest["text"]["specialTokens"].get("newline"), decoder_external=False)
        found = read_parameters(probe, Path(tmp), folder, manifest["graphs"])
    return config, found
