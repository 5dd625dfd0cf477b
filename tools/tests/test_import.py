"""Importing Hugging Face snapshots of Salesforce BLIP: safetensors, strict key matching, the key
layout, and (where `transformers` is installed) parity with its own classes."""
from __future__ import annotations

import json
import tempfile
import unittest
from pathlib import Path

import torch

from tools.blip.hf_import import config_to_hf, load_checkpoint, read_safetensors, write_safetensors
from tools.blip.model import BlipForConditionalGeneration, BlipForImageTextRetrieval, init_weights
from tools.tests.helpers import tiny_config


class HfImport(unittest.TestCase):
    def test_safetensors_round_trip(self):
        with tempfile.TemporaryDirectory() as d:
            t = {"a": torch.randn(3, 4), "b": torch.arange(5, dtype=torch.int64)}
            write_safetensors(Path(d) / "x.safetensors", t)
            r = read_safetensors(Path(d) / "x.safetensors")
            self.assertTrue(torch.equal(r["a"], t["a"]) and torch.equal(r["b"], t["b"]))

    def _snapshot(self, d: Path, model, arch: str, fmt: str, drop=None, extra=None):
        sd = dict(model.state_dict())
        if drop:
            del sd[drop]
        if extra:
            sd[extra] = torch.zeros(1)
        if fmt == "bin":
            torch.save(sd, d / "pytorch_model.bin")
        else:
            write_safetensors(d / "model.safetensors", sd)
        (d / "config.json").write_text(json.dumps(config_to_hf(model.config, arch)))

    def test_strict_load_in_both_formats(self):
        cfg = tiny_config()
        for fmt in ("bin", "safetensors"):
            with tempfile.TemporaryDirectory() as d:
                m = BlipForImageTextRetrieval(cfg)
                init_weights(m)
                self._snapshot(Path(d), m, "BlipForImageTextRetrieval", fmt)
                task, loaded, _ = load_checkpoint(d)
                self.assertEqual(task, "retrieval")
                for k, v in m.state_dict().items():
                    self.assertTrue(torch.equal(v, loaded.state_dict()[k]), k)

    def test_missing_or_unexpected_keys_are_refused(self):
        cfg = tiny_config()
        m = BlipForConditionalGeneration(cfg)
        with tempfile.TemporaryDirectory() as d:
            self._snapshot(Path(d), m, "BlipForConditionalGeneration", "safetensors",
                           drop="text_decoder.bert.encoder.layer.0.output.dense.weight")
            with self.assertRaisesRegex(ValueError, "missing"):
                load_checkpoint(d)
        with tempfile.TemporaryDirectory() as d:
            self._snapshot(Path(d), m, "BlipForConditionalGeneration", "safetensors", extra="text_decoder.surprise")
            with self.assertRaisesRegex(ValueError, "unexpected"):
                load_checkpoint(d)

    def test_tied_and_legacy_keys_are_accepted(self):
        cfg = tiny_config()
        m = BlipForConditionalGeneration(cfg)
        with tempfile.TemporaryDirectory() as d:
            self._snapshot(Path(d), m, "BlipForConditionalGeneration", "bin",
                           drop="text_decoder.cls.predictions.decoder.bias",
                           extra="text_decoder.bert.embeddings.position_ids")
            load_checkpoint(d)

    def test_state_dict_uses_hf_key_layout(self):
        keys = set(BlipForImageTextRetrieval(tiny_config()).state_dict())
        for k in ["vision_model.embeddings.class_embedding", "vision_model.embeddings.patch_embedding.weight",
                  "vision_model.encoder.layers.0.self_attn.qkv.weight", "vision_model.post_layernorm.bias",
                  "text_encoder.embeddings.word_embeddings.weight",
                  "text_encoder.encoder.layer.0.crossattention.self.key.weight",
                  "text_encoder.encoder.layer.0.attention.output.LayerNorm.weight", "itm_head.weight",
                  "vision_proj.bias", "text_proj.weight"]:
            self.assertIn(k, keys)


class HuggingFaceParity(unittest.TestCase):
    """Runs only where `transformers` is installed (not on our CI machines): see tools/hf_parity.py."""

    @unittest.skipUnless(__import__("importlib.util").util.find_spec("transformers"), "transformers not installed")
    def test_matches_transformers_at_small_size(self):
        from tools import hf_parity
        hf_parity.results.clear()
        hf_parity.run("small", 12)
        self.assertTrue(hf_parity.results)
        self.assertEqual([r for r in hf_parity.results if not r[1]], [])


if __name__ == "__main__":
    unittest.main()
