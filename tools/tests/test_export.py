"""Exporting model folders (ONNX graphs, tokenizer, manifest) and their int8 copies."""
from __future__ import annotations

import hashlib
import json
import tempfile
import unittest
from pathlib import Path

import numpy as np
import onnx
import torch

from tools.blip import scenes
from tools.blip.bundle import BlipBundle
from tools.blip.absorbed import encode_absorbed
from tools.blip.export import DecoderGraph, dequantize_states, export_folder, quantize_states
from tools.blip.model import BlipForConditionalGeneration, BlipForImageTextRetrieval, init_weights
from tools.blip.onnx_weights import state_dict_from_folder
from tools.blip.quantize import quantize_folder, quantize_weight
from tools.blip.tokenizer import scenes_vocab, tokenizer_json
from tools.tests.helpers import tiny_config


def export_tiny(d, bundle, tj):
    return export_folder(d, name="t", config=bundle.config, retrieval=bundle.retrieval, caption=bundle.caption,
                         vqa=bundle.vqa, tokenizer=tj, source="test", text_max_length=16)


class Export(unittest.TestCase):
    def test_the_manifest_names_every_graph_with_its_inputs_outputs_and_hash(self):
        vocab = scenes_vocab(scenes.WORDS)
        tj = tokenizer_json(vocab)
        for share in (True, False):
            torch.manual_seed(3)
            bundle = BlipBundle(tiny_config(len(vocab) + 2), share_vision=share)
            with tempfile.TemporaryDirectory() as d:
                m = export_tiny(d, bundle, tj)
                self.assertEqual(sorted(p.name for p in Path(d).iterdir()),
                                 sorted(["manifest.json", "tokenizer.json"] + [g["file"] for g in m["graphs"].values()]))
                self.assertEqual(json.loads((Path(d) / "manifest.json").read_text()), m)
                for gname, g in m["graphs"].items():
                    path = Path(d) / g["file"]
                    graph = onnx.load(str(path))
                    onnx.checker.check_model(graph)
                    inits = {i.name for i in graph.graph.initializer}
                    self.assertEqual([i.name for i in graph.graph.input if i.name not in inits],
                                     [s["name"] for s in g["inputs"]], gname)
                    self.assertEqual([o.name for o in graph.graph.output], [s["name"] for s in g["outputs"]], gname)
                    self.assertEqual(g["sha256"], hashlib.sha256(path.read_bytes()).hexdigest())
                    self.assertEqual(g["bytes"], path.stat().st_size)
            vision = {t["vision"] for t in m["tasks"].values()}
            self.assertEqual(vision, {"vision_encoder"} if share else
                             {"vision_encoder_retrieval", "vision_encoder_caption", "vision_encoder_vqa"})
            for task in m["tasks"].values():
                self.assertTrue(set(task.values()) <= set(m["graphs"]), task)
            self.assertEqual(m["text"]["specialTokens"]["dec"], len(vocab))
            self.assertEqual(m["text"]["specialTokens"]["enc"], len(vocab) + 1)
            self.assertEqual(m["dims"]["imageTokens"], (16 // 8) ** 2 + 1)

    def test_the_model_id_changes_with_any_weight_and_only_the_graphs_holding_it(self):
        vocab = scenes_vocab(scenes.WORDS)
        tj = tokenizer_json(vocab)
        torch.manual_seed(4)
        bundle = BlipBundle(tiny_config(len(vocab) + 2))
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            before = export_tiny(a, bundle, tj)
            self.assertEqual(export_tiny(b, bundle, tj)["modelId"], before["modelId"])  # the export is reproducible
            with torch.no_grad():
                bundle.vqa.text_decoder.cls.predictions.transform.dense.weight[0, 0] += 1.0
            after = export_tiny(b, bundle, tj)
        self.assertNotEqual(after["modelId"], before["modelId"])
        self.assertTrue(after["modelId"].startswith("t@"))
        changed = {g for g in before["graphs"] if before["graphs"][g]["sha256"] != after["graphs"][g]["sha256"]}
        self.assertEqual(changed, {"vqa_decoder"})

    def test_cached_decoding_equals_full_recompute(self):
        torch.manual_seed(0)
        m = BlipForConditionalGeneration(tiny_config())
        init_weights(m, std=0.2)
        m.eval()
        enc = torch.randn(1, 5, 16)
        ids = torch.tensor([[3, 7, 9, 11]])
        with torch.no_grad():
            full = m.text_decoder(ids, torch.ones_like(ids), enc)
            cross = m.text_decoder.bert.cross_kv(enc)
            l1, past = m.text_decoder(ids[:, :2], torch.ones(1, 2, dtype=torch.long), cross_kv=cross, return_present=True)
            l2, _ = m.text_decoder(ids[:, 2:], torch.ones(1, 4, dtype=torch.long), past_kv=past, cross_kv=cross,
                                   return_present=True)
        self.assertTrue(torch.allclose(torch.cat([l1, l2], 1), full, atol=1e-5))


class Rearranged(unittest.TestCase):
    """The graphs' re-arrangements of BLIP's math (tools/blip/absorbed.py, DecoderGraph) against
    the reference, in float64 so that only a real difference in the math could show."""

    def setUp(self):
        torch.set_default_dtype(torch.float64)

    def tearDown(self):
        torch.set_default_dtype(torch.float32)

    def test_cross_attention_from_the_text_side_equals_the_reference(self):
        torch.manual_seed(1)
        m = BlipForImageTextRetrieval(tiny_config())
        init_weights(m, std=0.3)
        m.eval()
        ids = torch.randint(1, 40, (3, 6))
        mask = torch.ones_like(ids)
        mask[1, 4:] = 0
        states = torch.randn(3, 5, 16)
        with torch.no_grad():
            ref = m.text_encoder(ids, mask, encoder_hidden_states=states)
            ours = encode_absorbed(m.text_encoder, ids, mask, states)
        self.assertLess(float((ref - ours).abs().max()), 1e-10)

    def test_the_fixed_capacity_decoder_step_equals_full_recompute(self):
        torch.manual_seed(2)
        m = BlipForConditionalGeneration(tiny_config())
        init_weights(m, std=0.3)
        m.eval()
        dec, enc, seq, cap = m.text_decoder, torch.randn(1, 5, 16), [3, 7, 9, 11, 4], 8
        c = dec.bert.config
        with torch.no_grad():
            full = dec(torch.tensor([seq]), torch.ones(1, 5, dtype=torch.long), enc, torch.ones(1, 5, dtype=torch.long))
            cross = dec.bert.cross_kv(enc)
            cache = torch.zeros(c.num_hidden_layers, 2, 1, c.num_attention_heads, cap, c.hidden_size // c.num_attention_heads)
            step = DecoderGraph(dec)
            got = []
            for start, end in ((0, 2), (2, 3), (3, 5)):  # a two-token prompt, then single tokens
                mask = torch.zeros(1, cap + end - start, dtype=torch.long)
                mask[0, :start] = 1
                mask[0, cap:] = 1
                layers = c.num_hidden_layers
                past = [cache[i, j] for i in range(layers) for j in range(2)]
                crosses = [cross[i, j] for i in range(layers) for j in range(2)]
                logits, new = step(torch.tensor([seq[start:end]]), mask, torch.tensor([start]),
                                   torch.ones(1, 5, dtype=torch.long), *past, *crosses)
                cache[:, :, :, :, start:end] = new
                got.append(logits)
        self.assertLess(float((torch.cat(got, 1) - full).abs().max()), 1e-10)

    def test_attention_to_keys_shared_by_every_row_equals_attention_to_copies(self):
        torch.manual_seed(3)
        m = BlipForConditionalGeneration(tiny_config())
        init_weights(m, std=0.3)
        sa = m.text_decoder.bert.encoder.layer[0].crossattention.self
        hidden = torch.randn(3, 2, sa.num_heads * sa.head_dim)
        k, v = torch.randn(1, sa.num_heads, 5, sa.head_dim), torch.randn(1, sa.num_heads, 5, sa.head_dim)
        mask = torch.zeros(1, 1, 1, 5)
        mask[..., 4] = -10000.0
        with torch.no_grad():
            shared = sa.attend(hidden, k, v, mask)
            copies = sa.attend(hidden, k.expand(3, -1, -1, -1), v.expand(3, -1, -1, -1), mask)
        self.assertLess(float((shared - copies).abs().max()), 1e-10)

    def test_rows_grouped_by_input_attend_to_their_own_inputs_keys(self):
        """Several captions in one decoder run: rows are the beams of each input in turn, keys and
        values come once per input; each row must see only its own input's, as if run alone."""
        torch.manual_seed(4)
        m = BlipForConditionalGeneration(tiny_config())
        init_weights(m, std=0.3)
        sa = m.text_decoder.bert.encoder.layer[0].crossattention.self
        inputs, beams = 3, 2
        hidden = torch.randn(inputs * beams, 2, sa.num_heads * sa.head_dim)
        k, v = torch.randn(inputs, sa.num_heads, 5, sa.head_dim), torch.randn(inputs, sa.num_heads, 5, sa.head_dim)
        mask = torch.zeros(1, 1, 1, 5)
        mask[..., 4] = -10000.0
        with torch.no_grad():
            grouped = sa.attend(hidden, k, v, mask)
            alone = torch.cat([sa.attend(hidden[i * beams:(i + 1) * beams], k[i:i + 1], v[i:i + 1], mask)
                               for i in range(inputs)])
        self.assertLess(float((grouped - alone).abs().max()), 1e-6)

    def test_itm_states_round_to_within_half_a_step_per_token(self):
        x = torch.randn(2, 7, 16)
        x[0, 3] *= 50  # an outlier token must not coarsen the others
        codes, scales = quantize_states(x)
        self.assertEqual(codes.dtype, torch.int8)
        self.assertEqual(int(codes.abs().max()), 127)
        err = (dequantize_states(codes, scales) - x).abs()
        self.assertTrue(bool((err <= scales[..., None] / 2 + 1e-12).all()))


class WeightsFromGraphs(unittest.TestCase):
    def test_a_folders_weights_are_read_back_exactly_from_its_graphs(self):
        vocab = scenes_vocab(scenes.WORDS)
        tj = tokenizer_json(vocab)
        torch.manual_seed(5)
        bundle = BlipBundle(tiny_config(len(vocab) + 2))
        with torch.no_grad():  # as trained: no two parameters equal (zero biases would be merged by the exporter)
            for p in bundle.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        with tempfile.TemporaryDirectory() as d:
            m = export_tiny(d, bundle, tj)
            # A folder exported before a change elsewhere in a graph numbers the anonymous
            # initializers (onnx::MatMul_12) differently: shift every such name in the decoders.
            for g in ("caption_decoder", "vqa_decoder"):
                path = Path(d) / m["graphs"][g]["file"]
                model = onnx.load(str(path))
                renamed = {i.name: f"{i.name}_old" for i in model.graph.initializer if i.name.startswith("onnx::")}
                self.assertGreater(len(renamed), 0)
                for i in model.graph.initializer:
                    i.name = renamed.get(i.name, i.name)
                for n in model.graph.node:
                    n.input[:] = [renamed.get(x, x) for x in n.input]
                onnx.save(model, str(path))
            _, state, missing = state_dict_from_folder(d, tj)
        self.assertEqual(missing, [])
        expected = bundle.state_dict()
        self.assertEqual(set(state), set(expected))
        for k, v in expected.items():
            self.assertTrue(torch.equal(state[k], v), k)


class Quantize(unittest.TestCase):
    def test_weights_round_to_within_half_a_step_per_column(self):
        w = np.random.default_rng(0).normal(0, 1, (64, 16)).astype(np.float32)
        w[:, 3] *= 100  # one column of outliers must not coarsen the others
        for reduce_range, qmax in ((False, 127), (True, 63)):
            q, scale = quantize_weight(w, reduce_range)
            self.assertEqual(q.dtype, np.int8)
            self.assertEqual(int(np.abs(q).max()), qmax)
            np.testing.assert_allclose(scale, np.abs(w).max(0) / qmax, rtol=1e-6)
            self.assertTrue(np.all(np.abs(q * scale - w) <= scale / 2 + 1e-6))

    def test_folder_copy_rewrites_constant_matmuls_and_keeps_the_rest(self):
        vocab = scenes_vocab(scenes.WORDS)
        tj = tokenizer_json(vocab)
        bundle = BlipBundle(tiny_config(len(vocab) + 2))
        with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as out:
            fp32 = export_folder(src, name="t", config=bundle.config, retrieval=bundle.retrieval,
                                 caption=bundle.caption, vqa=bundle.vqa, tokenizer=tj, source="test", text_max_length=16)
            (Path(src) / "EVAL.md").write_text("figures of the fp32 graphs")
            m = quantize_folder(src, out)
            self.assertEqual(m["name"], "t-int8")
            self.assertNotEqual(m["modelId"], fp32["modelId"])
            self.assertEqual(m["quantization"]["from"], fp32["modelId"])
            self.assertEqual(sorted(p.name for p in Path(out).iterdir()),
                             sorted(["manifest.json", "tokenizer.json"] + [g["file"] for g in fp32["graphs"].values()]))
            for gname, spec in m["graphs"].items():
                before = onnx.load(str(Path(src) / spec["file"]))
                after = onnx.load(str(Path(out) / spec["file"]))
                onnx.checker.check_model(after)
                inits = {i.name for i in before.graph.initializer}
                const_mm = [n for n in before.graph.node if n.op_type == "MatMul" and n.input[1] in inits]
                dq = [n for n in after.graph.node if n.op_type == "DynamicQuantizeMatMul"]
                self.assertGreater(len(const_mm), 0, gname)
                self.assertEqual(len(dq), len(const_mm), gname)
                self.assertEqual(m["quantization"]["matmuls"][gname], len(dq))
                self.assertTrue(all(n.domain == "com.microsoft" for n in dq))
                # attention's activation x activation MatMuls stay float
                self.assertEqual(sum(n.op_type == "MatMul" for n in after.graph.node),
                                 sum(n.op_type == "MatMul" for n in before.graph.node) - len(const_mm))
                after_inits = {i.name: i for i in after.graph.initializer}
                for n in dq:
                    self.assertEqual(after_inits[n.input[1]].data_type, onnx.TensorProto.INT8)
                    self.assertNotIn(n.input[1][: -len("_int8")], after_inits, "float copy of a rewritten weight left behind")
                self.assertEqual(spec["sha256"], hashlib.sha256((Path(out) / spec["file"]).read_bytes()).hexdigest())
            with self.assertRaises(SystemExit):
                quantize_folder(out, out)

    def test_graphs_named_to_stay_fp32_are_copied_as_they_are(self):
        vocab = scenes_vocab(scenes.WORDS)
        tj = tokenizer_json(vocab)
        bundle = BlipBundle(tiny_config(len(vocab) + 2))
        with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as out:
            fp32 = export_tiny(src, bundle, tj)
            m = quantize_folder(src, out, keep_fp32={"itm"})
            self.assertEqual(m["quantization"]["matmuls"]["itm"], 0)
            self.assertEqual(m["quantization"]["fp32Graphs"], ["itm"])
            self.assertEqual(m["graphs"]["itm"]["sha256"], fp32["graphs"]["itm"]["sha256"])
            self.assertGreater(m["quantization"]["matmuls"]["text_feature"], 0)
            with self.assertRaises(SystemExit):
                quantize_folder(src, out + "-x", keep_fp32={"no_such_graph"})


if __name__ == "__main__":
    unittest.main()


class StaticReshapes(unittest.TestCase):
    def test_exported_decoder_reshapes_take_constant_targets_that_copy_the_dynamic_dims(self):
        """tools/blip/static_shapes.py: the traced Shape/Gather/Concat chains in front of Reshape are
        replaced by constant targets ([0, 0, heads, head_dim] and the like), and the nodes that only
        fed them are gone. Outputs are compared with PyTorch by test/ml/parity.test.ts on
        test/fixtures/tiny-random, which tools.tiny_random exports this way."""
        from tools.blip.static_shapes import make_static_reshapes
        vocab = scenes_vocab(scenes.WORDS)
        torch.manual_seed(3)
        bundle = BlipBundle(tiny_config(len(vocab) + 2), share_vision=True)
        with tempfile.TemporaryDirectory() as d:
            m = export_tiny(d, bundle, tokenizer_json(vocab))
            dec = onnx.load(str(Path(d) / m["graphs"]["caption_decoder"]["file"]))
            inits = {i.name: i for i in dec.graph.initializer}
            reshapes = [n for n in dec.graph.node if n.op_type == "Reshape"]
            static = [n for n in reshapes if n.input[1] in inits]
            heads, head_dim = m["dims"]["decoderHeads"], m["dims"]["decoderHeadDim"]
            # Left dynamic: per layer, the four reshapes of cross-attention's fold of rows into
            # inputs, whose input count comes from the keys' shape (model.py, attend).
            layers = m["dims"]["decoderLayers"]
            self.assertLessEqual(len(reshapes) - len(static), 4 * layers)
            self.assertGreater(len(static), 0)
            targets = [list(onnx.numpy_helper.to_array(inits[n.input[1]])) for n in static]
            self.assertIn([0, 0, heads, head_dim], targets)
            for t in targets:
                self.assertLessEqual(t.count(-1), 1, t)
            # Nothing is left to rewrite, and a second pass changes nothing.
            self.assertEqual(make_static_reshapes(dec), 0)
            onnx.checker.check_model(dec)
            # Every node's output is used: the shape chains went with their Reshapes.
            used = {i for n in dec.graph.node for i in n.input} | {o.name for o in dec.graph.output}
            self.assertTrue(all(any(o in used for o in n.output) for n in dec.graph.node))
