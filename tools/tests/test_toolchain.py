"""Toolchain tests: scene grammar, tokenizer, safetensors, strict HF import, export round trip."""
from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F

from tools.blip import scenes
from tools.blip.bundle import BlipBundle
from tools.blip.export import export_folder
from tools.blip.onnx_weights import state_dict_from_folder
from tools.blip.quantize import quantize_folder, quantize_weight
from tools.probe_vision import per_object
from tools.blip.hf_import import (config_to_hf, load_checkpoint, read_safetensors, write_safetensors)
from tools.blip.model import (BlipConfig, BlipForConditionalGeneration, BlipForImageTextRetrieval,
                              BlipVisionModel, TextConfig, VisionConfig, init_weights)
from tools.blip.tokenizer import WordPieceTokenizer, scenes_vocab, tokenizer_json


def obj(shape, color, size="small", cx=0.5, cy=0.5):
    return scenes.Obj(shape, color, size, cx, cy, 0.12, 0, scenes.COLORS[color])


def word_decoder(tok):
    """Token ids -> their words, without [PAD], [CLS] and [SEP] (for reading training texts)."""
    inv = {i: w for w, i in tok.vocab.items()}
    return lambda ids: " ".join(inv[i] for i in ids if i not in (tok.pad, tok.cls, tok.sep) and i in inv)


def tiny_config(vocab=150):
    return BlipConfig(VisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   image_size=16, patch_size=8),
                      TextConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, max_position_embeddings=32, encoder_hidden_size=16), 8)


class SceneGrammar(unittest.TestCase):
    def test_queries_need_distinct_objects_and_exact_counts(self):
        s = scenes.Scene("black", (20, 20, 20), [obj("circle", "red", cx=0.2), obj("square", "blue", cx=0.8)])
        self.assertTrue(scenes.satisfies(s, {"objects": [{"color": "red", "shape": "circle"}]}))
        self.assertFalse(scenes.satisfies(s, {"objects": [{"shape": "circle"}, {"shape": "circle"}]}))
        self.assertTrue(scenes.satisfies(s, {"counts": [{"n": 2}]}))
        self.assertFalse(scenes.satisfies(s, {"counts": [{"n": 2, "shape": "circle"}]}))
        self.assertTrue(scenes.satisfies(s, {"objects": [{"color": "red", "hpos": "left"}], "background": "black"}))
        self.assertFalse(scenes.satisfies(s, {"objects": [{"color": "red", "hpos": "right"}]}))
        self.assertFalse(scenes.satisfies(s, {"objects": [{"color": "red"}], "background": "white"}))

    def test_caption_is_left_to_right_and_complete(self):
        s = scenes.Scene("white", (245, 245, 245), [obj("star", "green", "large", cx=0.8), obj("circle", "red", cx=0.2),
                                                    obj("square", "blue", cx=0.5)])
        self.assertEqual(scenes.caption(s), "a small red circle, a small blue square and a large green star on a white background")

    def test_training_scenes_never_hold_held_out_combinations(self):
        rng = random.Random(0)
        for _ in range(2000):
            s = scenes.sample_scene(rng, train=True)
            self.assertFalse(scenes.is_held_out(s))
            self.assertTrue(1 <= len(s.objects) <= 3)

    def test_sampled_queries_are_true_of_their_scene(self):
        rng = random.Random(1)
        for _ in range(500):
            s = scenes.sample_scene(rng, train=False)
            self.assertTrue(scenes.satisfies(s, scenes.sample_query(s, rng)))

    def test_extra_held_out_queries_name_their_combination_and_only_it(self):
        from tools.make_evalset import COMBINATIONS, held_out_template
        rng = random.Random(2)
        forms = set()
        for k in range(600):
            want = COMBINATIONS[k % 3]
            q = held_out_template(rng, want)
            self.assertEqual(scenes.held_out_on(q, q.get("background")), want, q)
            # a second object never makes another held-out combination
            named = [c for s in q["objects"] + q["counts"] if (c := scenes.held_out_combination(s, q.get("background")))]
            self.assertEqual(named, [want], q)
            forms.add((want, bool(q["counts"]), len(q["objects"]), bool(q.get("background"))))
            for s in q["objects"]:  # positions are those the renderer's thirds define
                self.assertIn(s.get("hpos"), (None, "left", "right"))
                self.assertIn(s.get("vpos"), (None, "top", "bottom"))
            if want == "yellow on white":
                self.assertEqual(q["background"], "white")
        # counts, one and two objects, with and without a ground, for each combination
        for want in COMBINATIONS[:2]:
            self.assertTrue({(want, True, 0, False), (want, False, 1, False), (want, False, 2, True)} <= forms, forms)

    def test_answers_follow_the_table(self):
        s = scenes.Scene("gray", (128, 128, 128), [obj("circle", "red", "large", cx=0.15), obj("star", "red", cx=0.85)])
        qa = {q: a for _, q, a in scenes.questions(s, random.Random(0))}
        self.assertEqual(qa["what color is the circle?"], "red")
        self.assertEqual(qa["is the circle large or small?"], "large")
        self.assertEqual(qa["how many shapes are there?"], "2")
        self.assertEqual(qa["what color is the background?"], "gray")
        self.assertEqual(qa["is the red circle on the left or the right?"], "left")
        self.assertNotIn("what shape is the red object?", qa)  # two red objects: not asked

    def test_box_reduced_training_renders_take_the_eval_renders_draws_and_differ_only_at_edges(self):
        # Training renders reduce supersampled canvases by box averaging, evaluation sets by Lanczos:
        # a seed must still draw the same sizes, rotations, blurs and JPEG qualities either way.
        boxed = 0
        for seed in range(24):
            s = scenes.sample_scene(random.Random(seed), train=True)
            lanczos_rng, box_rng = random.Random(100 + seed), random.Random(100 + seed)
            a = np.asarray(scenes.render_augmented(s, lanczos_rng), dtype=np.float64)
            b = np.asarray(scenes.render_augmented(s, box_rng, box=True), dtype=np.float64)
            self.assertEqual(lanczos_rng.getstate(), box_rng.getstate())
            self.assertEqual(a.shape, b.shape)
            self.assertLess(np.abs(a - b).mean(), 1.5)  # measured at most 1.1 levels: edges only
            boxed += not np.array_equal(a, b)
        self.assertGreater(boxed, 12)  # supersampled renders (3 draws in 4) do differ


class Tokenizer(unittest.TestCase):
    def test_wordpiece_and_specials(self):
        tj = tokenizer_json(scenes_vocab(scenes.WORDS))
        added = {a["content"]: a["id"] for a in tj["added_tokens"]}
        tok = WordPieceTokenizer(tj["model"]["vocab"], added)
        ids = tok.encode("Red  CIRCLE, zebra?")
        self.assertEqual(ids[0], tok.cls)
        self.assertEqual(ids[-1], tok.sep)
        self.assertEqual(tok.decode(ids), "red circle, zebra?")
        self.assertEqual(added["[DEC]"], len(tj["model"]["vocab"]))
        self.assertEqual(added["[ENC]"], len(tj["model"]["vocab"]) + 1)
        self.assertEqual(len(tok.encode("red " * 100, max_length=10)), 10)


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


class WeightsFromOnnx(unittest.TestCase):
    def test_recovers_every_parameter_of_an_exported_bundle(self):
        vocab = scenes_vocab(scenes.WORDS)
        tj = tokenizer_json(vocab)
        for share in (True, False):
            torch.manual_seed(3)
            bundle = BlipBundle(tiny_config(len(vocab) + 2), share_vision=share)
            with torch.no_grad():
                for p in bundle.parameters():  # biases and LayerNorms too, not just init_weights' values
                    p.normal_(0, 0.3)
            with tempfile.TemporaryDirectory() as d:
                export_folder(d, name="t", config=bundle.config, retrieval=bundle.retrieval, caption=bundle.caption,
                              vqa=bundle.vqa, tokenizer=tj, source="test", text_max_length=16)
                _, state, missing = state_dict_from_folder(d, tj)
            self.assertEqual(missing, [])
            want = bundle.state_dict()
            self.assertEqual(set(state), set(want))
            for k, v in want.items():
                self.assertTrue(torch.equal(state[k], v), f"share_vision={share}: {k}")
            BlipBundle(bundle.config, share_vision=share).load_state_dict(state)

    def test_refuses_a_folder_of_another_architecture(self):
        vocab = scenes_vocab(scenes.WORDS)
        tj = tokenizer_json(vocab)
        bundle = BlipBundle(tiny_config(len(vocab) + 2))
        with tempfile.TemporaryDirectory() as d:
            export_folder(d, name="t", config=bundle.config, retrieval=bundle.retrieval, caption=bundle.caption,
                          vqa=bundle.vqa, tokenizer=tj, source="test", text_max_length=16)
            manifest = json.loads((Path(d) / "manifest.json").read_text())
            manifest["config"]["text"]["intermediate_size"] *= 2  # the graphs no longer fit the config
            (Path(d) / "manifest.json").write_text(json.dumps(manifest))
            with self.assertRaisesRegex(ValueError, "initializer"):
                state_dict_from_folder(d, tj)


class AverageCheckpoints(unittest.TestCase):
    def test_a_weighted_average_of_two_checkpoints_of_one_config(self):
        from tools.average_checkpoints import average
        cfg = tiny_config()
        torch.manual_seed(4)
        a = {"model": BlipBundle(cfg).state_dict(), "config": cfg.to_dict(), "step": 9, "bag_head": {"weight": 1}}
        torch.manual_seed(5)
        b = {"model": BlipBundle(cfg).state_dict(), "config": cfg.to_dict(), "step": 3}
        key = next(k for k, v in a["model"].items() if v.is_floating_point() and not torch.equal(v, b["model"][k]))
        soup = average(a, b, 0.25)
        self.assertTrue(torch.allclose(soup["model"][key], 0.75 * a["model"][key] + 0.25 * b["model"][key], atol=1e-7))
        self.assertTrue(all(torch.equal(average(a, b, 0.0)["model"][k], v) for k, v in a["model"].items()))
        self.assertIsNone(soup["bag_head"])  # the heads read features the average no longer computes
        # the result loads into a model of that config, strictly
        BlipBundle(cfg).load_state_dict(soup["model"])
        other = tiny_config()
        other.text.num_hidden_layers += 1
        with self.assertRaises(SystemExit):
            average(a, dict(b, config=other.to_dict()), 0.5)


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


class VisionProbe(unittest.TestCase):
    def test_objects_are_scored_on_logits_averaged_over_their_patches(self):
        # one image, 4 patches: object rank 1 (shape 2) covers patches 0-1, rank 2 (shape 3) patch 3
        labels = torch.zeros(1, 4, 5, dtype=torch.long)
        labels[0, 0:2, 1], labels[0, 0:2, 3] = 2, 1
        labels[0, 3, 1], labels[0, 3, 3] = 3, 2
        logits = torch.zeros(1, 4, 5)
        logits[0, 0, 2], logits[0, 1, 4] = 1.0, 3.0  # patch 0 says 2, patch 1 says 4 more strongly
        logits[0, 3, 3] = 1.0
        logits[0, 2, 1] = 9.0  # a background patch's logits must not count
        self.assertEqual(per_object(logits, labels, 1), [(0, 1, 2, 4), (0, 2, 3, 3)])


class ReferenceKeys(unittest.TestCase):
    def test_state_dict_uses_hf_key_layout(self):
        keys = set(BlipForImageTextRetrieval(tiny_config()).state_dict())
        for k in ["vision_model.embeddings.class_embedding", "vision_model.embeddings.patch_embedding.weight",
                  "vision_model.encoder.layers.0.self_attn.qkv.weight", "vision_model.post_layernorm.bias",
                  "text_encoder.embeddings.word_embeddings.weight",
                  "text_encoder.encoder.layer.0.crossattention.self.key.weight",
                  "text_encoder.encoder.layer.0.attention.output.LayerNorm.weight", "itm_head.weight",
                  "vision_proj.bias", "text_proj.weight"]:
            self.assertIn(k, keys)

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

    def test_indexed_images_equal_repeated_images_in_values_and_gradients(self):
        # training passes each image once with an index per text (ITM pairs, several questions per
        # scene) instead of repeating the image rows: the same function, keys and values projected once
        torch.manual_seed(0)
        m = BlipForImageTextRetrieval(tiny_config())
        init_weights(m, std=0.2)
        ids = torch.randint(5, 100, (5, 6))
        mask = torch.ones_like(ids)
        mask[1, 4:] = 0
        index = torch.tensor([0, 1, 2, 0, 2])
        results = []
        for indexed in (False, True):
            m.zero_grad()
            emb = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(1), requires_grad=True)
            out = m.itm_logits(ids, mask, emb, image_index=index) if indexed else m.itm_logits(ids, mask, emb[index])
            (out ** 2).sum().backward()
            key_grad = m.text_encoder.encoder.layer[0].crossattention.self.key.weight.grad.clone()
            results.append((out.detach(), emb.grad.clone(), key_grad))
        for a, b in zip(*results):
            self.assertTrue(torch.allclose(a, b, atol=1e-5))
        self.assertGreater(float(results[0][1][1].abs().sum()), 0)  # image 1 did get a gradient


class TrainingLabels(unittest.TestCase):
    def test_patch_labels_name_the_object_under_each_patch(self):
        from tools.batches import COLOR_IDS, SHAPE_IDS, SIZE_IDS, patch_labels
        scene = scenes.Scene("white", scenes.BACKGROUNDS["white"])
        big = scenes.Obj("square", "blue", "large", 0.75, 0.5, 0.22, 0, scenes.COLORS["blue"])
        small = scenes.Obj("circle", "red", "small", 0.2, 0.2, 0.12, 0, scenes.COLORS["red"])
        scene.objects += [big, small]  # drawn right one first: ranks must follow x, not list order
        lab = patch_labels(scene, grid=8).reshape(8, 8, 6)
        # the patch at the square's centre (x 0.75, y 0.5 -> column 6, row 4) and the circle's (1, 1)
        self.assertEqual(lab[4, 6].tolist(), [COLOR_IDS["blue"], SHAPE_IDS["square"], SIZE_IDS["large"], 2, 3, 2])
        self.assertEqual(lab[1, 1].tolist(), [COLOR_IDS["red"], SHAPE_IDS["circle"], SIZE_IDS["small"], 1, 1, 1])
        self.assertEqual(lab[7, 0].tolist(), [0, 0, 0, 0, 0, 0])  # bottom-left corner: background
        # coverage: the square (side 0.44 of the canvas) covers about 0.19 of the patches
        self.assertAlmostEqual(float((lab[..., 0] == COLOR_IDS["blue"]).mean()), 0.44 ** 2, delta=0.07)


    def test_several_questions_per_scene_are_of_distinct_types_and_point_at_their_image(self):
        from tools.batches import make_batch, make_tokenizer
        tok, _ = make_tokenizer()
        words = word_decoder(tok)
        spelled = lambda text: words(tok.encode(text, 35))
        b = make_batch(random.Random(3), tok, 96, 6, 35, tok.added["[DEC]"], 8, questions=3)
        q_ids, _ = b["question"]
        a_ids, _ = b["answer"]
        img = b["question_image"].tolist()
        self.assertEqual(len(img), 18)  # every scene has at least three question types
        for i, scene in enumerate(b["scenes"]):
            # every question this scene can be asked (random forms drawn often enough to see them all)
            table = {spelled(q): (t, spelled(a)) for k in range(400) for t, q, a in scenes.questions(scene, random.Random(k))}
            asked = [(words(q_ids[k].tolist()), words(a_ids[k].tolist())) for k in range(len(img)) if img[k] == i]
            self.assertEqual(len(asked), 3)
            for q, a in asked:
                self.assertEqual(table[q][1], a, q)  # the answer is this image's, not another scene's
            self.assertEqual(len({table[q][0] for q, _ in asked}), 3)  # of three distinct types

    def test_training_texts_never_name_held_out_combinations(self):
        """Not even as non-matches: a text seen only as an ITM negative or a question answered "no"
        teaches the text side that the combination never holds (4.9% of perturbed negatives did)."""
        import re
        from tools.batches import make_batch, make_tokenizer
        tok, _ = make_tokenizer()
        words = word_decoder(tok)
        held = re.compile(r"purple triangle|large orange star|yellow .*white background")
        texts = []
        for k in range(12):
            b = make_batch(random.Random(k), tok, 16, 40, 35, tok.added["[DEC]"], 4, questions=3)
            texts += [words(t) for t in b["text"][0].tolist() + b["question"][0].tolist() + b["caption"][0].tolist()]
            texts += [words(p) for p in b["perturbed"] if p is not None]
            self.assertGreater(sum(p is not None for p in b["perturbed"]), 36)  # negatives are still made
        self.assertEqual([t for t in texts if held.search(t)], [])
        # evaluation questions may name them: the same draw, not restricted
        s = scenes.Scene("gray", (128, 128, 128), [obj("circle", "red")])
        asked = {q for k in range(300) for _, q, _ in scenes.questions(s, random.Random(k))}
        self.assertIn("is there a purple triangle?", asked)
        asked = {q for k in range(300) for _, q, _ in scenes.questions(s, random.Random(k), train=True)}
        self.assertNotIn("is there a purple triangle?", asked)
        self.assertIn("is there a red circle?", asked)

    def test_decolored_objects_are_gray_and_their_colour_labels_ignored(self):
        from tools.augment import VisionAugment
        from tools.batches import MEAN, SHAPE_IDS, STD, make_vision_batch
        b = make_vision_batch(random.Random(5), 96, 40, 8, VisionAugment(decolor=0.5))
        lab = b["patches"].numpy()  # [B, 64, 6]
        on_object = lab[..., 3] > 0
        ignored = on_object & (lab[..., 0] == -100)
        # about half the objects lose their colour label, and only objects (never background) do
        self.assertGreater(ignored.sum() / on_object.sum(), 0.3)
        self.assertLess(ignored.sum() / on_object.sum(), 0.7)
        self.assertFalse(((lab[..., 3] == 0) & (lab[..., 0] == -100)).any())
        # their shape labels stay: the point is to learn shape without colour
        self.assertTrue(np.isin(lab[ignored][:, 1], list(SHAPE_IDS.values())).all())
        # and they are drawn gray: within a patch of an ignored object (which may be mostly its
        # neutral background), no pixel is far from R = G = B; a patch of a labelled object has one
        pix = (b["pixels"].numpy().transpose(0, 2, 3, 1) * np.array(STD) + np.array(MEAN)) * 255
        spread = pix.max(-1) - pix.min(-1)  # [B, 96, 96]
        most = spread.reshape(40, 8, 12, 8, 12).max((2, 4)).reshape(40, 64)  # the most colourful pixel per patch
        self.assertLess(np.median(most[ignored]), 30)
        self.assertGreater(np.median(most[on_object & (lab[..., 0] > 0)]), 90)

    def test_rehued_objects_take_hues_of_no_named_colour_and_lose_their_colour_labels(self):
        import colorsys
        from tools.augment import HUE_MARGIN, NAMED_HUES, VisionAugment, recolor
        from tools.batches import SHAPE_IDS, make_vision_batch
        hue = lambda rgb: colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0] * 360
        gap = lambda h: min(min(abs(h - n), 360 - abs(h - n)) for n in NAMED_HUES)
        # the named colours, jittered as the grammar draws them, stay within the margin of their hue
        rng = random.Random(0)
        drawn = [scenes.sample_scene(rng, train=True) for _ in range(300)]
        self.assertLess(max(gap(hue(o.rgb)) for s in drawn for o in s.objects), HUE_MARGIN)
        hues, n_objects = [], 0
        for s in drawn:
            out, ranks = recolor(s, rng, 0.0, 0.5)
            n_objects += len(s.objects)
            for r in ranks:
                o = out.sorted_objects()[r - 1]
                self.assertGreaterEqual(gap(hue(o.rgb)), HUE_MARGIN - 1)  # -1: rounding to whole channel values
                hues.append(hue(o.rgb))
            unchanged = [o.rgb for k, o in enumerate(out.sorted_objects(), 1) if k not in ranks]
            self.assertEqual(unchanged, [o.rgb for k, o in enumerate(s.sorted_objects(), 1) if k not in ranks])
        self.assertTrue(0.4 < len(hues) / n_objects < 0.6)
        self.assertGreater(np.ptp(hues), 250)  # all round the wheel, not one stand-in colour
        b = make_vision_batch(random.Random(5), 96, 40, 8, VisionAugment(rehue=0.5))
        lab = b["patches"].numpy()
        on_object = lab[..., 3] > 0
        ignored = on_object & (lab[..., 0] == -100)
        self.assertTrue(0.3 < ignored.sum() / on_object.sum() < 0.7)
        self.assertTrue(np.isin(lab[ignored][:, 1], list(SHAPE_IDS.values())).all())  # shape labels stay

    def test_relit_backgrounds_vary_but_never_put_yellow_on_white(self):
        from tools.augment import YELLOW_MAX_BACKGROUND, VisionAugment, relight
        from tools.batches import MEAN, STD, make_vision_batch
        rng = random.Random(3)
        with_yellow, without = [], []
        for _ in range(3000):
            s = scenes.sample_scene(rng, train=True)
            out = relight(s, rng)
            self.assertEqual([o.rgb for o in out.objects], [o.rgb for o in s.objects])
            self.assertEqual(len(set(out.bg_rgb)), 1)  # a gray
            (with_yellow if s.has(color="yellow") else without).append(out.bg_rgb[0])
        self.assertLessEqual(max(with_yellow), YELLOW_MAX_BACKGROUND)
        self.assertLess(YELLOW_MAX_BACKGROUND, scenes.BACKGROUNDS["white"][0] - 12 - 15)  # well below white's jitter
        self.assertGreater(max(without), 240)
        self.assertLess(min(with_yellow), 15)
        # yellow objects do meet grounds as bright as they are (luminance about 200)
        self.assertGreater(sum(v > 190 for v in with_yellow), 0.05 * len(with_yellow))
        # in batches: about the asked share of images shows a ground of none of the three levels
        def off_grammar(aug):
            pix = make_vision_batch(random.Random(5), 96, 200, 8, aug)["pixels"][:, :, 1, 1].numpy()
            level = (pix * np.array(STD) + np.array(MEAN)).mean(1) * 255  # the ground next to a corner
            return np.mean([min(abs(v - b[0]) for b in scenes.BACKGROUNDS.values()) > 25 for v in level])
        self.assertLess(off_grammar(VisionAugment()), 0.02)
        self.assertTrue(0.2 < off_grammar(VisionAugment(relight=0.5)) < 0.5)

    def test_vision_mix_images_train_only_the_per_patch_loss(self):
        from tools.blip.bundle import scenes_config
        from tools.augment import VisionAugment
        from tools.batches import AUX_CLASSES, make_batch, make_tokenizer
        from tools.train import step_losses
        tok, _ = make_tokenizer()
        cfg = scenes_config(len(tok.vocab) + 2, tok.sep, tok.added["[DEC]"])
        size, grid = cfg.vision.image_size, cfg.vision.image_size // cfg.vision.patch_size
        draw = lambda mix: make_batch(random.Random(7), tok, size, 6, 35, tok.added["[DEC]"], grid, 1, mix,
                                      VisionAugment(rehue=0.5, relight=0.5))
        plain, mixed = draw(0), draw(5)
        # the joint part is drawn as without a mix (earlier stages' commands still reproduce)
        for k in ("pixels", "match", "patches", "bag"):
            self.assertTrue(torch.equal(plain[k], mixed[k]), k)
        self.assertNotIn("mix_pixels", plain)
        self.assertEqual(tuple(mixed["mix_pixels"].shape), (5, 3, size, size))
        self.assertEqual(tuple(mixed["mix_patches"].shape), (5, grid * grid, 6))
        torch.manual_seed(0)
        model = BlipBundle(cfg).eval()  # eval: no dropout, so the losses are comparable
        head = torch.nn.Linear(cfg.vision.hidden_size, sum(AUX_CLASSES))
        def losses(b):
            torch.manual_seed(1)  # the same ITM negatives each time
            return [float(x) for x in step_losses(model, b, torch.tensor(0.07), random.Random(1), 0.0, head)]
        base = losses(plain)
        ignored = dict(mixed, mix_patches=torch.full_like(mixed["mix_patches"], -100))
        # mix images whose labels are all ignored change nothing; labelled ones change the per-patch
        # loss and only it (ITC, ITM, captions and VQA see the joint scenes alone)
        for a, b in zip(base, losses(ignored)):
            self.assertAlmostEqual(a, b, places=4)
        with_mix = losses(mixed)
        self.assertNotAlmostEqual(with_mix[4], base[4], places=3)
        for k in (0, 1, 2, 3, 5):
            self.assertAlmostEqual(with_mix[k], base[k], places=4)
        # with --aux-bag-mix the attribute-bag loss reads the mix images' ITC features too, over
        # the columns their mask keeps (none kept: as without the mix)
        bag_head = torch.nn.Linear(cfg.image_text_hidden_size, 15)

        def bag(b, on):
            torch.manual_seed(1)
            return float(step_losses(model, b, torch.tensor(0.07), random.Random(1), 0.0, head, bag_head=bag_head,
                                     bag_mix=on)[5])
        self.assertAlmostEqual(bag(mixed, False), bag(plain, False), places=5)
        self.assertAlmostEqual(bag(dict(mixed, mix_bag_mask=torch.zeros_like(mixed["mix_bag_mask"])), True),
                               bag(plain, False), places=5)
        self.assertNotAlmostEqual(bag(mixed, True), bag(plain, False), places=3)

    def test_itm_negatives_draws_distinct_non_matching_images_per_text(self):
        from tools.train import step_losses
        b, model, head = self.joint_batch_and_model(7, 8)
        seen = []
        real = model.retrieval.itm_logits
        def spy(ids, mask, emb, image_index):
            seen.append((ids, image_index))
            return real(ids, mask, emb, image_index=image_index)
        model.retrieval.itm_logits = spy

        def pairs(n):
            seen.clear()
            torch.manual_seed(1)
            step_losses(model, b, torch.tensor(0.07), random.Random(1), 0.0, head, itm_negatives=n)
            return seen[0]
        B, M = b["pixels"].shape[0], b["match"]
        one_ids, one_img = pairs(1)
        ids, img = pairs(3)
        # three negative images per text where three non-matches exist, the negative texts unchanged
        extra = sum(min(3, int((M[:, j] == 0).sum())) for j in range(B)) - sum(int((M[:, j] == 0).any()) for j in range(B))
        self.assertGreater(extra, 0)
        self.assertEqual(len(img), len(one_img) + extra)
        text_ids, _ = b["text"]
        by_text: dict[int, list[int]] = {}
        for k in range(B, len(img) - (len(one_img) - B - sum(int((M[:, j] == 0).any()) for j in range(B)))):
            j = next(t for t in range(B) if torch.equal(ids[k][:text_ids.shape[1]], text_ids[t]))
            by_text.setdefault(j, []).append(int(img[k]))
        for j, images in by_text.items():
            self.assertEqual(len(images), len(set(images)), "drawn without replacement")
            self.assertTrue(all(M[i, j] == 0 for i in images), "only true non-matches")
        self.assertTrue(any(len(v) == 3 for v in by_text.values()))

    def test_vision_batch_attribute_bags_keep_only_what_still_holds(self):
        from tools.augment import VisionAugment
        from tools.batches import BAG, bag_labels, make_vision_batch
        aug = VisionAugment(gray=0.2, decolor=0.2, rehue=0.3, relight=0.5)
        b = make_vision_batch(random.Random(11), 32, 300, 4, aug)
        color = [k for k, (kind, _) in enumerate(BAG) if kind == "color"]
        background = [k for k, (kind, _) in enumerate(BAG) if kind == "background"]
        others = [k for k in range(len(BAG)) if k not in color + background]
        seen = {"relit": 0, "gray": 0, "recoloured": 0}
        for i in range(300):
            lab, mask = b["bag"][i].numpy(), b["bag_mask"][i].numpy()
            cols, ranks = b["patches"][i, :, 0].numpy(), b["patches"][i, :, 3].numpy()
            grayscale, relit = mask[color].sum() == 0, mask[background].sum() == 0
            self.assertTrue((mask[color] == 1).all() or grayscale)  # all colour columns, or none
            self.assertTrue((mask[background] == 1).all() or relit)
            self.assertTrue((mask[others] == 1).all())  # shapes and sizes always hold
            seen["gray"] += grayscale
            seen["relit"] += relit
            if not grayscale:
                # the colours in the bag are those of the objects that kept their colour label
                # (colour id k is bag column k - 1): a recoloured object adds none
                kept = {int(k) - 1 for k in cols[cols > 0]}
                self.assertEqual({c for c in color if lab[c] == 1}, kept, i)
                seen["recoloured"] += bool(((cols == -100) & (ranks > 0)).any())
        self.assertGreater(seen["recoloured"], 50)
        self.assertTrue(60 < seen["gray"] < 100 and 100 < seen["relit"] < 200, seen)

    def test_relit_joint_scenes_are_described_only_by_what_they_still_show(self):
        from tools.batches import BAG, make_batch, make_tokenizer
        tok, _ = make_tokenizer()
        words = word_decoder(tok)
        draw = lambda relit: make_batch(random.Random(9), tok, 16, 64, 35, tok.added["[DEC]"], 4, 3, relit=relit)
        plain = draw(0.0)
        self.assertTrue(plain["known"].all() and (plain["bag_mask"] == 1).all())
        self.assertEqual(plain["caption_image"].tolist(), list(range(64)))
        b = draw(0.4)
        relit = sorted(set(range(64)) - set(b["caption_image"].tolist()))  # relit scenes have no caption
        self.assertTrue(12 < len(relit) < 40, len(relit))
        self.assertEqual(b["caption"][0].shape[0], 64 - len(relit))
        texts = [words(t) for t in b["text"][0].tolist()]
        names_bg = torch.tensor(["background" in t for t in texts])
        self.assertTrue(names_bg.any())
        background = [k for k, (kind, _) in enumerate(BAG) if kind == "background"]
        questions = [words(q) for q in b["question"][0].tolist()]
        asked = {i: [q for q, j in zip(questions, b["question_image"].tolist()) if j == i] for i in range(64)}
        self.assertTrue(any("background" in q for i in range(64) if i not in relit for q in asked[i]))
        for i in range(64):
            if i in relit:
                # its texts name no background; it and a text that does are neither match nor non-match
                self.assertFalse(names_bg[i], texts[i])
                self.assertTrue(torch.equal(b["known"][i], ~names_bg))
                self.assertEqual(float(b["match"][i][names_bg].sum()), 0.0)
                self.assertTrue(b["perturbed"][i] is None or "background" not in words(b["perturbed"][i]))
                self.assertFalse(any("background" in q for q in asked[i]), asked[i])
                self.assertEqual(b["bag_mask"][i, background].tolist(), [0.0] * len(background))
                self.assertEqual(float(b["bag_mask"][i].sum()), len(BAG) - len(background))
            else:
                self.assertTrue(b["known"][i].all() and (b["bag_mask"][i] == 1).all())
            self.assertEqual(float(b["match"][i, i]), 1.0)  # every scene's own text holds

    def test_recolored_joint_scenes_are_described_without_colours(self):
        from tools.augment import OFF_PALETTE, VisionAugment
        from tools.batches import BAG, make_batch, make_tokenizer, without_colors
        tok, _ = make_tokenizer()
        words = word_decoder(tok)
        colour_words = set(scenes.COLORS)
        b = make_batch(random.Random(12), tok, 16, 64, 35, tok.added["[DEC]"], 4, 3,
                       aug=VisionAugment(decolor=0.2, rehue=0.3), recolored=0.5)
        recolored = [i for i, s in enumerate(b["scenes"]) if any(o.color == OFF_PALETTE for o in s.objects)]
        self.assertTrue(10 < len(recolored) < 40, len(recolored))
        texts = [words(t) for t in b["text"][0].tolist()]
        qs = [(words(q), words(a), j) for q, a, j in zip(b["question"][0].tolist(), b["answer"][0].tolist(),
                                                          b["question_image"].tolist())]
        self.assertTrue(any(colour_words & set(q.split()) for q, _, j in qs if j not in recolored))
        color_cols = [k for k, (kind, _) in enumerate(BAG) if kind == "color"]
        for i in recolored:
            s = b["scenes"][i]
            self.assertFalse(colour_words & set(texts[i].split()), texts[i])
            self.assertNotIn(i, b["caption_image"].tolist())
            for q, a, j in qs:
                if j == i:
                    self.assertFalse(colour_words & set((q + " " + a).split()), (q, a))
            # colour patches of a recoloured object are ignored; those of the others stay
            ranks = [r for r, o in enumerate(s.sorted_objects(), start=1) if o.color == OFF_PALETTE]
            lab = b["patches"][i].numpy()
            on_recolored = np.isin(lab[:, 3], ranks)
            self.assertTrue((lab[on_recolored, 0] == -100).all() and (lab[~on_recolored, 0] >= 0).all())
            named = {o.color for o in s.objects if o.color != OFF_PALETTE}
            self.assertEqual({BAG[k][1] for k in color_cols if b["bag"][i, k] == 1}, named)
            self.assertEqual(float(b["match"][i, i]), 1.0)
        # a text that names a colour is false of an object recoloured out of the palette
        s = scenes.Scene("gray", (128, 128, 128), [obj("triangle", "orange")])
        s.objects[0].color = OFF_PALETTE
        self.assertFalse(scenes.satisfies(s, {"objects": [{"color": "orange", "shape": "triangle"}]}))
        q = without_colors({"objects": [{"color": "orange", "noun": "object"}], "counts": [{"n": 1, "color": "orange"}]}, s)
        self.assertTrue(scenes.satisfies(s, q))
        self.assertEqual(scenes.query_text(q), "one shape and a object")

    def test_relit_scenes_train_no_caption_and_no_background_in_the_attribute_bag(self):
        from tools.blip.bundle import scenes_config
        from tools.batches import BAG, AUX_CLASSES, make_batch, make_tokenizer
        from tools.train import lm_loss, step_losses
        tok, _ = make_tokenizer()
        cfg = scenes_config(len(tok.vocab) + 2, tok.sep, tok.added["[DEC]"])
        b = make_batch(random.Random(4), tok, cfg.vision.image_size, 8, 35, tok.added["[DEC]"],
                       cfg.vision.image_size // cfg.vision.patch_size, relit=0.5)
        relit = sorted(set(range(8)) - set(b["caption_image"].tolist()))
        self.assertTrue(0 < len(relit) < 8)
        torch.manual_seed(0)
        model = BlipBundle(cfg).eval()
        bag_head = torch.nn.Linear(cfg.image_text_hidden_size, len(BAG))

        def losses(batch):
            torch.manual_seed(1)
            return [float(x) for x in step_losses(model, batch, torch.tensor(0.07), random.Random(1), 0.0,
                                                  torch.nn.Linear(cfg.vision.hidden_size, sum(AUX_CLASSES)), bag_head=bag_head)]
        base = losses(b)
        # the captioning loss is that of the captioned (not relit) images alone
        emb = model.retrieval.vision_model(b["pixels"][b["caption_image"]])
        ones = torch.ones(emb.shape[:2], dtype=torch.long)
        self.assertAlmostEqual(base[2], float(lm_loss(model.caption.text_decoder, *b["caption"], emb, ones)), places=4)
        # a relit image's background labels are not trained; another image's are
        background = [k for k, (kind, _) in enumerate(BAG) if kind == "background"]
        flip = lambda rows: dict(b, bag=b["bag"].clone().index_put_(
            (torch.tensor(rows)[:, None], torch.tensor(background)[None, :]), 1 - b["bag"][rows][:, background]))
        self.assertAlmostEqual(losses(flip(relit))[5], base[5], places=5)
        self.assertNotAlmostEqual(losses(flip(b["caption_image"][:1].tolist()))[5], base[5], places=3)

    def test_texts_that_would_make_a_held_out_combination_with_an_images_ground_are_no_negatives_of_it(self):
        from tools.batches import BAG, make_batch, make_tokenizer
        tok, _ = make_tokenizer()
        words = word_decoder(tok)
        draw = lambda confounded: make_batch(random.Random(21), tok, 16, 64, 35, tok.added["[DEC]"], 4,
                                             confounded=confounded)
        plain, b = draw(True), draw(False)
        self.assertTrue(plain["known"].all() and (plain["bag_mask"] == 1).all())
        self.assertTrue(torch.equal(plain["text"][0], b["text"][0]))  # the same scenes and texts
        white = torch.tensor([s.background == "white" for s in b["scenes"]])
        yellow = torch.tensor(["yellow" in words(t) for t in b["text"][0].tolist()])
        self.assertTrue(white.any() and yellow.any())
        self.assertTrue(torch.equal(b["known"], ~(white[:, None] & yellow[None, :])))
        self.assertEqual(float(b["match"][~b["known"]].sum()), 0.0)  # they were non-matches: no yellow on white
        col = BAG.index(("color", "yellow"))
        self.assertTrue(torch.equal(b["bag_mask"][:, col] == 0, white))
        self.assertEqual(float((b["bag_mask"] == 0).sum()), float(white.sum()))  # nothing else is left out
        for i in range(64):
            p = b["perturbed"][i]
            if white[i] and p is not None:
                self.assertNotIn("yellow", words(p))
        self.assertTrue(any(p is not None and "yellow" in words(p)
                            for i, p in enumerate(plain["perturbed"]) if white[i]))
        q = {"objects": [{"shape": "star"}], "counts": [{"n": 2, "color": "yellow", "noun": "shape"}]}
        self.assertEqual(scenes.held_out_on(q, "white"), "yellow on white")
        self.assertIsNone(scenes.held_out_on(q, "gray"))
        self.assertIsNone(scenes.mentions_held_out(q) or None)

    def test_contrastive_loss_and_negatives_leave_unknown_pairs_out(self):
        from tools.train import itc_loss, negative_weights
        torch.manual_seed(0)
        n = 8
        match = torch.eye(n)
        match[0, 3] = match[3, 0] = 1.0
        known = torch.ones(n, n, dtype=torch.bool)
        known[2, 5] = known[6, 1] = known[6, 4] = False
        sim = torch.randn(n, n) * 3
        base = itc_loss(sim, match, known)
        self.assertTrue(torch.isfinite(base))
        moved = sim.clone()
        moved[~known] += torch.tensor([40.0, -40.0, 25.0])
        self.assertAlmostEqual(float(itc_loss(moved, match, known)), float(base), places=5)
        moved = sim.clone()
        moved[2, 4] += 5.0  # a known non-match does count
        self.assertGreater(float(itc_loss(moved, match, known)), float(base) + 1e-3)
        self.assertAlmostEqual(float(itc_loss(sim, match)), float(itc_loss(sim, match, torch.ones_like(known))), places=6)
        w = negative_weights(sim, match, known)
        self.assertTrue((w[~known] == 0).all() and (w[match > 0] == 0).all())
        self.assertTrue((w[known & (match == 0)] > 0).all())
        self.assertTrue(torch.allclose(w[6], negative_weights(moved, match, known)[6]))  # row 6 untouched by moved

    def test_t2i_softmax_draws_a_texts_negative_image_by_its_own_softmax_over_images(self):
        import tools.train as train
        n = 6
        match = torch.eye(n)
        # image 0 is close to every text but far closer to its own: the default weights (each
        # image's softmax over texts) make it the least drawable negative of texts 1-5, the
        # text's own softmax over images (BLIP's weights_t2i) the most
        sim = torch.ones(n, n) + torch.eye(n)
        sim[0] = 3.0
        sim[0, 0] = 10.0
        by_image, by_text = train.negative_weights(sim, match), train.negative_weights(sim, match, dim=0)
        for j in range(1, n):
            others = [i for i in range(n) if i != j]  # text j's non-matching images
            self.assertEqual(others[int(by_image[others, j].argmin())], 0)
            self.assertEqual(others[int(by_text[others, j].argmax())], 0)
            expected = torch.softmax(sim[others, j], 0)
            self.assertTrue(torch.allclose(by_text[others, j] / by_text[others, j].sum(), expected, atol=1e-6))
        known = torch.ones(n, n, dtype=torch.bool)
        known[4, 2] = False
        w = train.negative_weights(sim, match, known, dim=0)
        self.assertEqual(float(w[4, 2]), 0.0)
        self.assertTrue((w[known & (match == 0)] > 0).all())
        # step_losses asks for the text-side softmax only with the flag
        b, model, head = self.joint_batch_and_model(7, 6)
        dims, real = [], train.negative_weights
        def spy(sim, match, known=None, dim=1):
            dims.append(dim)
            return real(sim, match, known, dim)
        train.negative_weights = spy
        try:
            for flag in (False, True):
                dims.clear()
                train.step_losses(model, b, torch.tensor(0.07), random.Random(1), 0.0, head, t2i_softmax=flag)
                self.assertEqual(dims, [1, 0] if flag else [1])
        finally:
            train.negative_weights = real
        with tempfile.TemporaryDirectory() as d:
            start, _ = self.random_start(Path(d))
            with self.assertRaises(subprocess.CalledProcessError) as refused:
                self.train("--steps", "1", "--vision-only", "--t2i-softmax", resume=start, out=Path(d) / "x.pt")
            self.assertIn("joint stages only", refused.exception.stderr)
            out = self.train("--steps", "1", "--log-every", "1", "--t2i-softmax", resume=start, out=Path(d) / "x.pt")
            self.assertIn("step 1 ", out)

    def test_probe_mining_reads_how_sharp_each_draw_is(self):
        from tools.probe_mining import draw_stats
        n = 5
        match = torch.eye(n)
        flat = draw_stats(torch.zeros(n, n), match, None, 0)
        self.assertEqual(len(flat), n)
        for top, rank, choices in flat:  # uniform over the four non-matches
            self.assertAlmostEqual(top, 0.25, places=5)
            self.assertAlmostEqual(rank, 2.5, places=5)
            self.assertAlmostEqual(choices, 4.0, places=4)
        sharp = torch.arange(n * n, dtype=torch.float32).reshape(n, n).t() * 10  # image n-1 nearest every text
        for top, rank, choices in draw_stats(sharp, match, None, 0)[:-1]:
            self.assertGreater(top, 0.99)
            self.assertLess(rank, 1.01)
            self.assertLess(choices, 1.05)
        known = torch.ones(n, n, dtype=torch.bool)
        known[:4, 0] = False  # text 0 keeps one drawable image (4): left out
        self.assertEqual(len(draw_stats(torch.zeros(n, n), match, known, 0)), n - 1)

    def test_palette_options_apply_only_to_images_that_no_text_describes(self):
        with tempfile.TemporaryDirectory() as d:
            start, _ = self.random_start(Path(d))
            with self.assertRaises(subprocess.CalledProcessError) as refused:
                self.train("--steps", "1", "--rehue", "0.5", resume=start, out=Path(d) / "x.pt")
            self.assertIn("--vision-mix images only", refused.exception.stderr)
            # through the DataLoader workers, with the attribute-bag head beside the mix
            out = self.train("--steps", "2", "--log-every", "1", "--workers", "1", "--vision-mix", "2", "--rehue", "0.5",
                             "--relight", "0.5", "--decolor", "0.2", "--aux-bag", "1", "--aux-bag-mix", resume=start, out=Path(d) / "x.pt")
            self.assertIn("step 2 ", out)
            self.assertEqual(torch.load(Path(d) / "x.pt")["step"], 2)


    def test_joint_relight_and_recolor_run_through_the_workers_and_the_head_warmup_leaves_the_model_alone(self):
        with tempfile.TemporaryDirectory() as d:
            start, before = self.random_start(Path(d))
            out = Path(d) / "x.pt"
            with self.assertRaises(subprocess.CalledProcessError) as refused:
                self.train("--steps", "1", "--vision-only", "--joint-relight", "0.5", resume=start, out=out)
            self.assertIn("not with --vision-only", refused.exception.stderr)
            with self.assertRaises(subprocess.CalledProcessError) as refused:
                self.train("--steps", "1", "--vqa-only", "--head-warmup", "1", resume=start, out=out)
            self.assertIn("has neither", refused.exception.stderr)
            with self.assertRaises(subprocess.CalledProcessError) as refused:
                self.train("--steps", "1", "--joint-recolor", "0.5", resume=start, out=out)
            self.assertIn("with --decolor or --rehue", refused.exception.stderr)
            flags = ("--workers", "1", "--joint-relight", "0.5", "--joint-recolor", "0.5", "--rehue", "0.5",
                     "--no-confounded-negatives", "--aux-bag", "1", "--log-every", "1")
            self.assertIn("step 2 ", self.train("--steps", "2", "--head-warmup", "2", *flags, resume=start, out=out))
            saved = torch.load(out)
            # two steps of heads alone: the model (and so every exported graph) is as it was
            self.assertEqual([k for k in before if not torch.equal(before[k], saved["model"][k])], [])
            self.assertIsNotNone(saved["bag_head"])
            self.train("--steps", "2", "--head-warmup", "1", *flags, resume=start, out=out)
            after = torch.load(out)["model"]
            self.assertIn("retrieval.vision_model.encoder.layers.0.self_attn.qkv.weight",
                          [k for k in before if not torch.equal(before[k], after[k])])

    def test_text_lr_scale_scales_every_weight_outside_the_image_encoder_and_only_those(self):
        from tools.train import param_groups
        from tools.blip.bundle import scenes_config
        from tools.batches import make_tokenizer
        tok, _ = make_tokenizer()
        model = BlipBundle(scenes_config(len(tok.vocab) + 2, tok.sep, tok.added["[DEC]"]))
        temp, head = torch.nn.Parameter(torch.tensor(0.07)), torch.nn.Linear(2, 2)
        trained = list(model.parameters()) + [temp]
        groups = param_groups(model.retrieval.vision_model, trained, list(head.parameters()), 3.0)
        self.assertEqual([(g["role"], g["scale"]) for g in groups], [("vision", 1.0), ("text", 3.0), ("heads", 1.0)])
        # each weight in exactly one group; the shared image encoder (every task's) only at 1
        self.assertEqual(sorted(id(p) for g in groups for p in g["params"]),
                         sorted(id(p) for p in trained + list(head.parameters())))
        vision = {id(p) for p in model.vqa.vision_model.parameters()} | {id(p) for p in model.retrieval.vision_model.parameters()}
        self.assertEqual({id(p) for p in groups[0]["params"]}, vision)
        text = {id(p) for p in groups[1]["params"]}
        self.assertIn(id(temp), text)
        self.assertTrue({id(p) for p in model.retrieval.text_encoder.parameters()} <= text)
        # a vision-only stage trains one group
        self.assertEqual([g["role"] for g in param_groups(model.retrieval.vision_model,
                                                          list(model.retrieval.vision_model.parameters()), [], 3.0)],
                         ["vision"])
        with tempfile.TemporaryDirectory() as d:
            start, before = self.random_start(Path(d))
            out = Path(d) / "x.pt"
            with self.assertRaises(subprocess.CalledProcessError) as refused:
                self.train("--steps", "1", "--vision-only", "--text-lr-scale", "2", resume=start, out=out)
            self.assertIn("joint stages only", refused.exception.stderr)
            # one step at a vanishing text-side lr: the image encoder moves as Adam's first step
            # does (about lr), the text side a millionth of that
            self.train("--steps", "1", "--lr", "1e-3", "--warmup", "1", "--text-lr-scale", "1e-6", resume=start, out=out)
            after = torch.load(out)["model"]
            moved = lambda k: float((after[k] - before[k]).abs().max())
            self.assertGreater(moved("retrieval.vision_model.encoder.layers.0.self_attn.qkv.weight"), 5e-4)
            self.assertLess(moved("retrieval.text_encoder.encoder.layer.0.attention.self.query.weight"), 1e-8)

    def test_itm_weight_scales_the_itm_loss_in_the_total_and_only_in_joint_stages(self):
        from types import SimpleNamespace
        from tools.batches import AUX_CLASSES
        from tools.train import batch_losses
        b, model, head = self.joint_batch_and_model(5, 8)

        def losses(weight):
            args = SimpleNamespace(vision_only=False, vqa_only=False, word_noise=0.0, aux_bag_mix=False,
                                   aux_bag_text=None, aux_bag_where=False, itm_negatives=1, t2i_softmax=False,
                                   itc_counterfactual=False, itm_weight=weight,
                                   aux_patch=0.5, aux_bag=0.0)
            torch.manual_seed(1)
            return [float(x) for x in batch_losses(args, model, b, torch.tensor(0.07), random.Random(1), head,
                                                   AUX_CLASSES, None)]
        one, three = losses(1.0), losses(3.0)
        self.assertEqual(one[:6], three[:6])  # the same losses, drawn from the same negatives
        itc, itm, lm, vqa, aux, _, _ = one
        self.assertGreater(itm, 0.1)
        self.assertAlmostEqual(one[6], itc + itm + lm + vqa + 0.5 * aux, places=4)
        self.assertAlmostEqual(three[6] - one[6], 2 * itm, places=4)
        with tempfile.TemporaryDirectory() as d:
            start, _ = self.random_start(Path(d))
            for flags, says in ((("--vision-only", "--itm-weight", "2"), "joint stages only"),
                                (("--itm-weight", "0"), "positive")):
                with self.assertRaises(subprocess.CalledProcessError) as refused:
                    self.train("--steps", "1", *flags, resume=start, out=Path(d) / "x.pt")
                self.assertIn(says, refused.exception.stderr)

    def test_word_noise_replaces_only_teacher_forced_scene_words(self):
        from tools.train import lm_loss
        seen = []

        def decoder(inp, mask, enc, enc_mask):  # records what it is fed; its loss depends on the targets only
            seen.append(inp.clone())
            return torch.arange(40.0).expand(*inp.shape, 40) / 4

        words = (10, 30)
        ids = torch.tensor([[5] + list(range(10, 30)) + [2, 0, 0]] * 64)  # [DEC], words, [SEP], padding
        mask = (ids > 0).long()
        target_loss = lm_loss(decoder, ids, mask, None, None, noise=0.0, word_ids=words)
        self.assertTrue(torch.equal(seen[0], ids[:, :-1]))
        torch.manual_seed(0)
        self.assertAlmostEqual(float(lm_loss(decoder, ids, mask, None, None, noise=0.5, word_ids=words)),
                               float(target_loss))  # targets stay the true words
        noisy, clean = seen[1], ids[:, :-1]
        is_word = (clean >= words[0]) & (clean <= words[1])
        self.assertTrue(torch.equal(noisy[~is_word], clean[~is_word]))  # [DEC], [SEP], padding kept
        changed = (noisy != clean)[is_word].float().mean()
        self.assertGreater(changed, 0.35)  # 0.5 drawn, minus replacements that drew the same word
        self.assertLess(changed, 0.6)
        self.assertTrue(((noisy[is_word] >= words[0]) & (noisy[is_word] <= words[1])).all())  # by scene words

    def test_a_resumed_stage_keeps_the_per_patch_head_of_the_stage_before(self):
        with tempfile.TemporaryDirectory() as d:
            start, _ = self.random_start(Path(d))
            first, second = Path(d) / "first.pt", Path(d) / "second.pt"
            run = lambda resume, out, *flags: self.train("--vision-only", "--steps", "1", *flags, resume=resume, out=out)
            self.assertNotIn("head resumed", run(start, first, "--aux-labels", "position"))
            head = torch.load(first)["aux_head"]
            self.assertEqual(head["weight"].shape[0], 27)  # colour 7 + shape 5 + size 3 + rank, thirds 4 each
            # a stage with the same labels starts from that head (lr 0: it must come back unchanged)
            self.assertIn("head resumed", run(first, second, "--aux-labels", "position", "--lr", "0"))
            self.assertTrue(torch.equal(torch.load(second)["aux_head"]["weight"], head["weight"]))
            # other labels mean another head: a fresh one
            self.assertNotIn("head resumed", run(first, second, "--aux-labels", "order"))

    def test_attribute_bag_labels_and_which_texts_share_them(self):
        from tools.batches import BAG, bag_labels, make_batch, make_tokenizer
        s = scenes.Scene("white", (245, 245, 245), [obj("star", "green", "large", cx=0.2), obj("circle", "red", cx=0.8)])
        held = {BAG[i] for i, v in enumerate(bag_labels(s)) if v == 1}
        self.assertEqual(held, {("color", "green"), ("color", "red"), ("shape", "star"), ("shape", "circle"),
                                ("size", "large"), ("size", "small"), ("background", "white")})
        tok, _ = make_tokenizer()
        words = word_decoder(tok)
        b = make_batch(random.Random(5), tok, 16, 64, 35, tok.added["[DEC]"], 4)
        texts = [words(t) for t in b["text"][0].tolist()]
        complete = b["complete"].tolist()
        self.assertTrue(5 < sum(complete) < 40)  # about 30% of retrieval texts are (paraphrased) captions
        for i, (t, c, scene) in enumerate(zip(texts, complete, b["scenes"])):
            objs_named = sum(f"{o.size} {o.color} {o.shape}" in t for o in scene.objects)
            # a complete text names every object in full and the background; a partial one does not
            self.assertEqual(c, objs_named == len(scene.objects) and f"{scene.background} background" in t, t)
            self.assertTrue(torch.equal(b["bag"][i], torch.from_numpy(bag_labels(scene))))

    def test_every_text_names_its_attributes_to_the_bag(self):
        from tools.blip.bundle import scenes_config
        from tools.batches import BAG, AUX_CLASSES, make_batch, make_tokenizer, named_bag
        col = {a: k for k, a in enumerate(BAG)}
        lab, mask = named_bag({"objects": [{"color": "yellow", "shape": "star"}], "counts": [{"n": 2, "color": "red"}]})
        self.assertEqual({BAG[k] for k in np.flatnonzero(lab)}, {("color", "yellow"), ("color", "red"), ("shape", "star")})
        self.assertEqual({BAG[k][0] for k in np.flatnonzero(mask)}, {"color", "shape"})  # sizes, grounds unsaid
        lab, mask = named_bag({"objects": [], "counts": [{"n": 0, "color": "blue"}], "background": "gray"})
        self.assertEqual(lab[col["background", "gray"]], 1.0)
        self.assertEqual(float(lab.sum()), 1.0)  # "zero blue shapes" does not name blue as present
        self.assertEqual({BAG[k][0] for k in np.flatnonzero(mask)}, {"background"})
        tok, _ = make_tokenizer()
        words = word_decoder(tok)
        cfg = scenes_config(len(tok.vocab) + 2, tok.sep, tok.added["[DEC]"])
        b = make_batch(random.Random(6), tok, cfg.vision.image_size, 12, 35, tok.added["[DEC]"],
                       cfg.vision.image_size // cfg.vision.patch_size, relit=0.3, recolored=0.3)
        for i, t in enumerate(b["text"][0].tolist()):
            text = words(t)
            for k in np.flatnonzero(b["text_bag"][i].numpy()):
                self.assertIn(BAG[k][1], text)  # every attribute labelled present is named
            for k in np.flatnonzero(b["text_bag_mask"][i].numpy() == 0):
                kind = BAG[k][0]  # a masked kind is not named at all
                self.assertFalse(any(v in text.split() for (kd, v) in BAG if kd == kind), (text, kind))
            if b["complete"][i]:  # a complete caption names what its image holds
                self.assertTrue(torch.equal(b["text_bag"][i], b["bag"][i]))
        # with --aux-bag-text the loss reads every text, without it only the complete captions
        torch.manual_seed(0)
        model = BlipBundle(cfg).eval()
        bag_head = torch.nn.Linear(cfg.image_text_hidden_size, len(BAG))
        partial = (~b["complete"]).nonzero()[0, 0]

        def bag(batch, on):
            torch.manual_seed(1)
            return float(step_losses(model, batch, torch.tensor(0.07), random.Random(1), 0.0,
                                     torch.nn.Linear(cfg.vision.hidden_size, sum(AUX_CLASSES)), bag_head=bag_head,
                                     bag_text=on)[5])
        from tools.train import step_losses
        flipped = dict(b, text_bag=b["text_bag"].clone().index_put_((partial,), 1 - b["text_bag"][partial]))
        self.assertAlmostEqual(bag(flipped, None), bag(b, None), places=5)
        self.assertNotAlmostEqual(bag(flipped, "named"), bag(b, "named"), places=3)
        # "named" trains only the kinds a text names, "all" every column
        unmasked = dict(b, text_bag_mask=torch.zeros_like(b["text_bag_mask"]))
        self.assertAlmostEqual(bag(dict(unmasked, text_bag=1 - b["text_bag"]), "named"), bag(unmasked, "named"), places=5)
        self.assertNotAlmostEqual(bag(dict(unmasked, text_bag=1 - b["text_bag"]), "all"), bag(unmasked, "all"), places=3)

    def test_texts_without_images_name_any_combination_and_train_only_the_attribute_bag(self):
        from tools.blip.bundle import scenes_config
        from tools.batches import BAG, AUX_CLASSES, make_batch, make_tokenizer, text_only_batch
        from tools.train import step_losses
        tok, _ = make_tokenizer()
        words = word_decoder(tok)
        b = text_only_batch(random.Random(7), tok, 400, 35)
        texts = [words(t) for t in b["text_only"][0].tolist()]
        self.assertEqual(b["text_only_bag"].shape, (400, len(BAG)))
        for t, lab in zip(texts, b["text_only_bag"]):
            self.assertEqual({BAG[k][1] for k in np.flatnonzero(lab.numpy())},
                             {v for _, v in BAG if v in t.split() or v + "s" in t.split()} - {"zero"}, t)
        # test-set scenes: held-out combinations are named among them
        self.assertTrue(any("purple triangle" in t for t in texts))
        self.assertTrue(any("yellow" in t and "white background" in t for t in texts))
        cfg = scenes_config(len(tok.vocab) + 2, tok.sep, tok.added["[DEC]"])
        grid = cfg.vision.image_size // cfg.vision.patch_size
        plain = make_batch(random.Random(8), tok, cfg.vision.image_size, 6, 35, tok.added["[DEC]"], grid)
        both = make_batch(random.Random(8), tok, cfg.vision.image_size, 6, 35, tok.added["[DEC]"], grid, text_only=10)
        self.assertTrue(torch.equal(plain["pixels"], both["pixels"]) and torch.equal(plain["text"][0], both["text"][0]))
        self.assertEqual(both["text_only"][0].shape[0], 10)
        torch.manual_seed(0)
        model = BlipBundle(cfg).eval()
        bag_head = torch.nn.Linear(cfg.image_text_hidden_size, len(BAG))

        def losses(batch, head=bag_head):
            torch.manual_seed(1)
            return [float(x) for x in step_losses(model, batch, torch.tensor(0.07), random.Random(1), 0.0,
                                                  torch.nn.Linear(cfg.vision.hidden_size, sum(AUX_CLASSES)), bag_head=head)]
        a, c = losses(plain), losses(both)
        self.assertEqual(a[:5], c[:5])  # ITC, ITM, captions, answers and the per-patch loss never see them
        self.assertNotAlmostEqual(a[5], c[5], places=5)
        flipped = dict(both, text_only_bag=1 - both["text_only_bag"])
        self.assertNotAlmostEqual(losses(flipped)[5], c[5], places=3)

    def test_a_resumed_stage_keeps_the_attribute_bag_head(self):
        with tempfile.TemporaryDirectory() as d:
            start, _ = self.random_start(Path(d))
            first, second = Path(d) / "first.pt", Path(d) / "second.pt"
            self.assertNotIn("bag head resumed", self.train("--steps", "1", "--aux-bag", "1", resume=start, out=first))
            head = torch.load(first)["bag_head"]
            self.assertEqual(head["weight"].shape[0], 15)  # 6 colours, 4 shapes, 2 sizes, 3 backgrounds
            out = self.train("--steps", "1", "--aux-bag", "1", "--lr", "0", resume=first, out=second)
            self.assertIn("bag head resumed", out)
            self.assertTrue(torch.equal(torch.load(second)["bag_head"]["weight"], head["weight"]))
            self.train("--steps", "1", resume=first, out=second)  # without the flag: no head to carry on
            self.assertIsNone(torch.load(second)["bag_head"])
            # --aux-bag-where adds 40 positional columns after BAG's: those 15 carry on, the rest start fresh
            out = self.train("--steps", "1", "--aux-bag", "1", "--aux-bag-text", "all", "--aux-bag-where", "--lr", "0",
                             resume=first, out=second)
            self.assertIn("bag head resumed, 40 columns fresh", out)
            wide = torch.load(second)["bag_head"]
            self.assertEqual(wide["weight"].shape[0], 15 + 40)  # (6 colours + 4 shapes) x 4 positions
            self.assertTrue(torch.equal(wide["weight"][:15], head["weight"]))
            for flags, says in ((("--aux-bag", "1", "--aux-bag-where"), "needs --aux-bag-text"),
                                (("--aux-bag", "1", "--text-only-placed", "0.5"), "needs them")):
                with self.assertRaises(subprocess.CalledProcessError) as refused:
                    self.train("--steps", "1", *flags, resume=first, out=second)
                self.assertIn(says, refused.exception.stderr)
            # the whole path, through a DataLoader worker
            out = self.train("--steps", "2", "--log-every", "1", "--workers", "1", "--aux-bag", "1", "--aux-bag-text", "all",
                             "--aux-bag-where", "--text-only", "4", "--text-only-placed", "0.5", resume=second, out=first)
            self.assertIn("step 2 ", out)
            self.assertIn("bag head resumed", out)

    def test_positional_bag_binds_each_colour_and_shape_to_its_third(self):
        from tools.batches import WHERE, named_where, where_labels
        s = scenes.Scene("gray", (128, 128, 128), [obj("star", "green", cx=0.2, cy=0.8), obj("circle", "red", cx=0.5, cy=0.5),
                                                    obj("triangle", "purple", cx=0.9, cy=0.1)])
        held = lambda lab: {WHERE[k] for k in np.flatnonzero(lab)}
        self.assertEqual(held(where_labels(s)), {("color", "green", "left"), ("shape", "star", "left"),
                                                 ("color", "green", "bottom"), ("shape", "star", "bottom"),
                                                 ("color", "purple", "right"), ("shape", "triangle", "right"),
                                                 ("color", "purple", "top"), ("shape", "triangle", "top")})  # centre: none
        # a recoloured object (rank 3 from the left) still shows its shape where it is, not its colour
        self.assertEqual(held(where_labels(s)) - held(where_labels(s, [3])),
                         {("color", "purple", "right"), ("color", "purple", "top")})
        lab, mask = named_where({"objects": [{"color": "purple", "shape": "triangle", "hpos": "right"}], "counts": []})
        self.assertEqual(held(lab), {("color", "purple", "right"), ("shape", "triangle", "right")})
        self.assertEqual({WHERE[k][0] for k in np.flatnonzero(mask)}, {"color", "shape"})
        lab, mask = named_where({"objects": [{"color": "yellow", "vpos": "bottom"}, {"shape": "star"}],
                                 "counts": [{"n": 2, "shape": "circle"}]})
        self.assertEqual(held(lab), {("color", "yellow", "bottom")})  # no position, or a count: nothing
        self.assertEqual({WHERE[k][0] for k in np.flatnonzero(mask)}, {"color"})

    @staticmethod
    def placed_texts(seed: int, n: int = 300):
        """n scenes as test sets draw them, each with a placed text (batches.placed_text), and the rng."""
        from tools.batches import placed_text
        rng = random.Random(seed)
        for _ in range(n):
            s = scenes.sample_scene(rng, train=False)
            yield (s, *placed_text(s, rng), rng)

    def test_a_placed_text_names_one_object_of_its_scene_where_it_is(self):
        named = 0
        for s, text, q, _ in self.placed_texts(16):
            self.assertTrue(scenes.satisfies(s, q), text)
            if any(o.hpos or o.vpos for o in s.objects):
                (spec,) = q["objects"]
                self.assertEqual(len([k for k in ("hpos", "vpos") if spec.get(k)]), 1)
                self.assertTrue(spec["color"] in text and spec["shape"] in text and "background" not in text, text)
                named += 1
        self.assertGreater(named, 250)

    def test_joint_placed_texts_are_the_scenes_own_texts_for_itc(self):
        from tools.batches import WHERE, make_batch, make_tokenizer
        tok, _ = make_tokenizer()
        words = word_decoder(tok)
        draw = lambda p: make_batch(random.Random(17), tok, 16, 48, 35, tok.added["[DEC]"], 4, joint_placed=p)
        self.assertTrue(torch.equal(draw(0.0)["text"][0], make_batch(random.Random(17), tok, 16, 48, 35,
                                                                     tok.added["[DEC]"], 4)["text"][0]))
        b = draw(1.0)
        placed = 0
        for i, scene in enumerate(b["scenes"]):
            text = words(b["text"][0][i].tolist())
            self.assertEqual(float(b["match"][i, i]), 1.0, text)  # a true text of its own image
            if any(o.hpos or o.vpos for o in scene.objects):
                self.assertTrue(any(p in text.split() for p in ("left", "right", "top", "bottom")), text)
                self.assertEqual(int(b["text_where"][i].sum()), 2, text)  # its colour and shape, there
                placed += 1
        self.assertGreater(placed, 40)

    def test_a_moved_text_is_its_text_with_the_object_in_the_opposite_third(self):
        from tools.batches import OPPOSITE, moved
        made = 0
        for s, text, q, rng in self.placed_texts(18):
            m = moved(text, q, s, rng)
            if not any(o.hpos or o.vpos for o in s.objects):
                self.assertIsNone(m, text)  # a text that places nothing has no counterfactual
                continue
            if m is None:  # the move is still true: another object of that kind lies there
                continue
            self.assertFalse(scenes.satisfies(s, m[1]), m[0])
            diff = [(a, b) for a, b in zip(text.split(), m[0].split()) if a != b]
            self.assertEqual(len(text.split()), len(m[0].split()))
            self.assertEqual(len(diff), 1, (text, m[0]))  # no other word tells them apart
            self.assertEqual(OPPOSITE[diff[0][0]], diff[0][1])
            made += 1
        self.assertGreater(made, 200)
        self.assertIsNone(moved("a red circle", {"objects": [{"color": "red", "shape": "circle"}], "counts": []},
                                scenes.sample_scene(rng, train=True), rng))

    def test_train_help_formats_every_option(self):
        # argparse %-formats every help string when it prints them: a bare "%" breaks --help alone
        out = subprocess.run([sys.executable, "-m", "tools.train", "--help"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[2])
        self.assertEqual(out.returncode, 0, out.stderr[-500:])
        for flag in ("--itm-counterfactual", "--itc-counterfactual", "--t2i-softmax", "--threads"):
            self.assertIn(flag, out.stdout)

    def test_a_counterfactual_scene_changes_one_thing_of_one_object_so_its_text_fails(self):
        from tools.batches import counterfactual, retrieval_text
        rng = random.Random(23)
        made, tried, kinds = 0, 0, set()
        for _ in range(400):
            s = scenes.sample_scene(rng, train=True)
            _, q = retrieval_text(s, rng)
            cf = counterfactual(s, q, rng)
            tried += 1
            if cf is None:
                continue
            self.assertTrue(scenes.satisfies(s, q))
            self.assertFalse(scenes.satisfies(cf, q), q)
            self.assertFalse(scenes.is_held_out(cf))
            self.assertTrue(scenes.placed_by_the_rules(cf))
            self.assertEqual(cf.background, s.background)
            changed = [(a, b) for a, b in zip(s.objects, cf.objects)
                       if (a.color, a.shape, a.size) != (b.color, b.shape, b.size)]
            self.assertEqual(len(changed), 1)
            a, b = changed[0]
            what = [k for k in ("color", "shape", "size") if getattr(a, k) != getattr(b, k)]
            self.assertEqual(len(what), 1)
            kinds.add(what[0])
            self.assertEqual((a.cx, a.cy), (b.cx, b.cy))  # in the same place
            lo, hi = scenes.SIZES[b.size]
            self.assertTrue(lo - 1e-9 <= b.r <= hi + 1e-9)
            if what[0] == "color":  # the drawn colour's jitter is kept
                self.assertTrue(all(abs((x - y) - (u - v)) <= 0 or x in (0, 255) for x, y, u, v in
                                    zip(b.rgb, scenes.COLORS[b.color], a.rgb, scenes.COLORS[a.color])))
            for o, p in zip(s.objects, cf.objects):
                if o is not a:
                    self.assertEqual((o.color, o.shape, o.size, o.r, o.rgb), (p.color, p.shape, p.size, p.r, p.rgb))
            made += 1
        self.assertGreater(made, 0.8 * tried)
        self.assertEqual(kinds, {"color", "shape", "size"})
        # a text only about the ground holds whatever is done to the objects
        s = scenes.sample_scene(rng, train=True)
        self.assertIsNone(counterfactual(s, {"objects": [], "counts": [], "background": s.background}, rng))
        # nor may a change make a held-out combination: a purple square can only become another colour,
        # size or a circle or star, never a triangle
        purple = scenes.Scene("gray", (128, 128, 128), [obj("square", "purple")])
        for _ in range(50):
            cf = counterfactual(purple, {"objects": [{"color": "purple", "shape": "square"}], "counts": []}, rng)
            self.assertFalse(cf.objects[0].color == "purple" and cf.objects[0].shape == "triangle")

    def test_itm_counterfactual_images_are_their_texts_negatives_rendered_alike(self):
        from tools.batches import make_batch, make_tokenizer
        from tools.train import step_losses
        b0, model, head = self.joint_batch_and_model(7, 10)
        tok, _ = make_tokenizer()
        size, grid = b0["pixels"].shape[-1], int(b0["patches"].shape[1] ** 0.5)
        b = make_batch(random.Random(7), tok, size, 10, 35, tok.added["[DEC]"], grid, 1, itm_counterfactual=1.0)
        self.assertNotIn("cf_pixels", b0)
        self.assertTrue(torch.equal(b0["pixels"], b["pixels"]) and torch.equal(b0["text"][0], b["text"][0]))
        C, B = b["cf_pixels"].shape[0], 10
        self.assertGreater(C, 6)
        self.assertEqual(tuple(b["cf_patches"].shape), tuple(b["patches"][:C].shape))
        for c, j in enumerate(b["cf_text"].tolist()):
            same = (b["cf_pixels"][c] == b["pixels"][j]).all(0).float().mean()
            self.assertTrue(0.5 < same < 1.0, float(same))  # one object differs; the same augmentation draws
            self.assertFalse(torch.equal(b["cf_patches"][c], b["patches"][j]))
        seen = []
        real = model.retrieval.itm_logits

        def spy(ids, mask, emb, image_index):
            seen.append((emb.shape[0], image_index.tolist()))
            return real(ids, mask, emb, image_index=image_index)
        model.retrieval.itm_logits = spy

        def losses(batch):
            seen.clear()
            torch.manual_seed(1)
            out = [float(x) for x in step_losses(model, batch, torch.tensor(0.07), random.Random(1), 0.0, head)]
            return out, seen[0]
        (base, (n0, pairs0)), (with_cf, (n1, pairs1)) = losses(b0), losses(b)
        self.assertEqual((n0, n1), (B, B + C))  # the counterfactuals' keys and values join the images'
        self.assertEqual(len(pairs0), len(pairs1))  # in place of drawn negatives, not as more pairs
        negatives = pairs1[B:B + B]  # one negative image per text, in text order (every text has one here)
        for c, j in enumerate(b["cf_text"].tolist()):
            self.assertEqual(negatives[j], B + c)
        others = [negatives[j] for j in range(B) if j not in b["cf_text"].tolist()]
        self.assertTrue(all(i < B for i in others))
        for k in (0, 2, 3):  # ITC, captions and VQA do not see them; ITM and the per-patch loss do
            self.assertAlmostEqual(with_cf[k], base[k], places=5)
        self.assertNotAlmostEqual(with_cf[1], base[1], places=4)
        self.assertNotAlmostEqual(with_cf[4], base[4], places=4)

    def test_itc_counterfactual_adds_the_counterfactual_images_to_the_texts_softmax_only(self):
        from tools.batches import make_batch, make_tokenizer
        from tools.train import itc_loss, step_losses
        _, model, head = self.joint_batch_and_model(7, 10)
        tok, _ = make_tokenizer()
        b = make_batch(random.Random(8), tok, 96, 10, 35, tok.added["[DEC]"], 8, 1, itm_counterfactual=1.0,
                       confounded=False)
        C = b["cf_pixels"].shape[0]
        for c, j in enumerate(b["cf_text"].tolist()):
            self.assertEqual(float(b["cf_match"][c, j]), 0.0)  # it fails the text it was made for
            self.assertTrue(bool(b["cf_known"][c, j]))
        self.assertEqual(tuple(b["cf_match"].shape), (C, 10))

        def losses(batch, on):
            torch.manual_seed(1)
            return [float(x) for x in step_losses(model, batch, torch.tensor(0.07), random.Random(1), 0.0, head,
                                                  itc_counterfactual=on)]
        off, on = losses(b, False), losses(b, True)
        self.assertGreater(on[0], off[0] + 1e-4)  # more negatives in each text's softmax: a larger loss
        for k in (1, 2, 3, 4):
            self.assertAlmostEqual(on[k], off[k], places=5)
        # rows only: with every added pair unknown, the loss is the one without them
        sim = torch.randn(4, 4)
        match, known = torch.eye(4), torch.ones(4, 4, dtype=torch.bool)
        base = itc_loss(sim, match, known)
        rows = (torch.randn(3, 4) + 5, torch.zeros(3, 4), torch.zeros(3, 4, dtype=torch.bool))
        self.assertAlmostEqual(float(itc_loss(sim, match, known, extra_images=rows)), float(base), places=5)
        hard = (rows[0], rows[1], torch.ones(3, 4, dtype=torch.bool))
        self.assertGreater(float(itc_loss(sim, match, known, extra_images=hard)), float(base) + 1.0)

    def test_itc_moved_adds_counterfactuals_to_the_images_softmax_only(self):
        from tools.blip.bundle import scenes_config
        from tools.batches import AUX_CLASSES, OPPOSITE, make_batch, make_tokenizer
        from tools.train import step_losses
        tok, _ = make_tokenizer()
        words = word_decoder(tok)
        cfg = scenes_config(len(tok.vocab) + 2, tok.sep, tok.added["[DEC]"])
        grid = cfg.vision.image_size // cfg.vision.patch_size
        draw = lambda m: make_batch(random.Random(19), tok, cfg.vision.image_size, 12, 35, tok.added["[DEC]"], grid,
                                    joint_placed=1.0, itc_moved=m)
        plain, b = draw(0.0), draw(1.0)
        self.assertNotIn("moved", plain)
        self.assertTrue(torch.equal(plain["pixels"], b["pixels"]) and torch.equal(plain["text"][0], b["text"][0]))
        texts = [words(t.tolist()) for t in b["text"][0]]
        n = b["moved"][0].shape[0]
        self.assertGreater(n, 6)
        self.assertEqual(tuple(b["moved_match"].shape), (12, n))
        for k in range(n):
            m = words(b["moved"][0][k].tolist()).split()
            sources = [i for i, t in enumerate(texts) if len(t.split()) == len(m) and
                       [(x, y) for x, y in zip(t.split(), m) if x != y] in ([(w, OPPOSITE[w])] for w in OPPOSITE)]
            self.assertTrue(sources, m)
            self.assertTrue(any(b["moved_match"][i, k] == 0 and b["match"][i, i] == 1 for i in sources), m)
        torch.manual_seed(0)
        model = BlipBundle(cfg).eval()
        head = torch.nn.Linear(cfg.vision.hidden_size, sum(AUX_CLASSES))

        def losses(batch):
            torch.manual_seed(1)
            return [float(x) for x in step_losses(model, batch, torch.tensor(0.07), random.Random(1), 0.0, head)]
        without = {k: v for k, v in b.items() if not k.startswith("moved")}
        base, extra = losses(without), losses(b)
        self.assertNotAlmostEqual(extra[0], base[0], places=4)  # ITC reads them ...
        for k in (1, 2, 3, 4):
            self.assertAlmostEqual(extra[k], base[k], places=5)  # ... and nothing else does
        unknown = dict(b, moved_known=torch.zeros_like(b["moved_known"]), moved_match=torch.zeros_like(b["moved_match"]))
        self.assertAlmostEqual(losses(unknown)[0], base[0], places=5)  # pairs not known are left out

    def test_bf16_autocast_gives_float32_losses_and_gradients_close_to_float32(self):
        from tools.blip.bundle import scenes_config
        from tools.batches import AUX_CLASSES, make_batch, make_tokenizer
        from tools.train import float_layer_norms, step_losses
        tok, _ = make_tokenizer()
        cfg = scenes_config(len(tok.vocab) + 2, tok.sep, tok.added["[DEC]"])
        grid = cfg.vision.image_size // cfg.vision.patch_size
        b = make_batch(random.Random(23), tok, cfg.vision.image_size, 12, 35, tok.added["[DEC]"], grid, questions=2,
                       joint_placed=1.0, itc_moved=1.0)
        torch.manual_seed(0)
        model = BlipBundle(cfg)
        head = torch.nn.Linear(cfg.vision.hidden_size, sum(AUX_CLASSES))
        float_layer_norms(model)
        probe = model.retrieval.vision_model.encoder.layers[0].self_attn.qkv.weight

        def run(bf16):
            model.zero_grad()
            torch.manual_seed(1)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                losses = step_losses(model, b, torch.tensor(0.07), random.Random(1), 0.0, head)
            sum(losses).backward()
            return losses, probe.grad.clone()
        (full, g32), (half, g16) = run(False), run(True)
        for a, h in zip(full, half):
            self.assertEqual(h.dtype, torch.float32)
            self.assertLess(abs(float(h) - float(a)), 0.02 * abs(float(a)) + 1e-3, (float(a), float(h)))
        self.assertGreater(float(F.cosine_similarity(g32.flatten(), g16.flatten(), dim=0)), 0.98)
        self.assertFalse(torch.equal(g32, g16))  # it did run in bfloat16

    def test_batches_carry_the_positional_bag_under_the_bag_rules(self):
        from tools.augment import VisionAugment
        from tools.batches import WHERE, make_batch, make_tokenizer, make_vision_batch, text_only_batch, where_labels
        tok, _ = make_tokenizer()
        words = word_decoder(tok)
        b = make_batch(random.Random(12), tok, 32, 64, 35, tok.added["[DEC]"], 4, recolored=0.3, confounded=False)
        yellow = [k for k, (kind, v, _) in enumerate(WHERE) if kind == "color" and v == "yellow"]
        for i, scene in enumerate(b["scenes"]):
            # recoloured objects are off the palette in the scene shown: no colour column of theirs
            self.assertTrue(torch.equal(b["where"][i], torch.from_numpy(where_labels(scene))))
            masked = set(np.flatnonzero(b["where_mask"][i].numpy() == 0))
            self.assertEqual(masked, set(yellow) if scene.background == "white" else set())  # held out on white
        texts = [words(t) for t in b["text"][0].tolist()]
        self.assertTrue(any(b["text_where"][i].sum() > 0 for i in range(64)))
        for t, lab in zip(texts, b["text_where"]):
            for k in np.flatnonzero(lab.numpy()):
                kind, value, where = WHERE[k]
                self.assertIn(f"{value} ", t + " ")
                self.assertIn(where, t)
        # texts without images (--text-only-placed): held-out pairs with a position are among them, read as placed
        t = text_only_batch(random.Random(13), tok, 600, 35, placed=0.5)
        texts = [words(ids) for ids in t["text_only"][0].tolist()]
        self.assertTrue(250 < sum(any(p in x.split() for p in ("left", "right", "top", "bottom")) for x in texts) < 350)
        phrase = {p: f"purple triangle {'on' if p in ('left', 'right') else 'at'} the {p}" for p in ("left", "right", "top", "bottom")}
        placed = [(x, lab) for x, lab in zip(texts, t["text_only_where"]) if any(v in x for v in phrase.values())]
        self.assertGreater(len(placed), 5)
        for text, lab in placed:
            side = next(p for p, v in phrase.items() if v in text)
            self.assertEqual(float(lab[WHERE.index(("shape", "triangle", side))]), 1.0, text)
            self.assertEqual(float(lab[WHERE.index(("color", "purple", side))]), 1.0, text)
        # without the option, the draws of the stages before it repeat
        self.assertTrue(torch.equal(text_only_batch(random.Random(13), tok, 50, 35)["text_only"][0],
                                    text_only_batch(random.Random(13), tok, 50, 35, placed=0.0)["text_only"][0]))
        # vision images: grayscale ones drop every colour column, recoloured objects their own
        v = make_vision_batch(random.Random(14), 32, 200, 4, VisionAugment(gray=0.3, decolor=0.3))
        color = [k for k, (kind, _, _) in enumerate(WHERE) if kind == "color"]
        gray = [i for i in range(200) if v["where_mask"][i, color].sum() == 0]
        self.assertTrue(30 < len(gray) < 100, len(gray))
        for i in range(200):
            self.assertTrue((v["where_mask"][i, len(color):] == 1).all())  # shapes always hold
            self.assertTrue((v["where"][i, color] <= v["bag"][i, :6].repeat_interleave(4)).all())  # seen colours only

    def test_positional_bag_joins_the_bag_loss_only_with_its_flag(self):
        from tools.blip.bundle import scenes_config
        from tools.batches import BAG, WHERE, AUX_CLASSES, make_batch, make_tokenizer
        from tools.train import step_losses
        tok, _ = make_tokenizer()
        cfg = scenes_config(len(tok.vocab) + 2, tok.sep, tok.added["[DEC]"])
        grid = cfg.vision.image_size // cfg.vision.patch_size
        b = make_batch(random.Random(15), tok, cfg.vision.image_size, 8, 35, tok.added["[DEC]"], grid, text_only=8)
        torch.manual_seed(0)
        model = BlipBundle(cfg).eval()
        narrow = torch.nn.Linear(cfg.image_text_hidden_size, len(BAG))
        wide = torch.nn.Linear(cfg.image_text_hidden_size, len(BAG) + len(WHERE))

        def bag(batch, head, where):
            torch.manual_seed(1)
            return float(step_losses(model, batch, torch.tensor(0.07), random.Random(1), 0.0,
                                     torch.nn.Linear(cfg.vision.hidden_size, sum(AUX_CLASSES)), bag_head=head,
                                     bag_text="all", bag_where=where)[5])
        flips = [dict(b, **{k: 1 - b[k]}) for k in ("where", "text_where", "text_only_where")]
        for flipped in flips:
            self.assertAlmostEqual(bag(flipped, narrow, False), bag(b, narrow, False), places=5)
            self.assertNotAlmostEqual(bag(flipped, wide, True), bag(b, wide, True), places=3)

    @staticmethod
    def joint_batch_and_model(seed: int, scenes: int):
        """A joint batch of `scenes` at the bundle's size (seed `seed`), a randomly initialised bundle
        (torch seed 0) and a per-patch head for it, as step_losses takes them."""
        from tools.blip.bundle import scenes_config
        from tools.batches import AUX_CLASSES, make_batch, make_tokenizer
        tok, _ = make_tokenizer()
        cfg = scenes_config(len(tok.vocab) + 2, tok.sep, tok.added["[DEC]"])
        grid = cfg.vision.image_size // cfg.vision.patch_size
        b = make_batch(random.Random(seed), tok, cfg.vision.image_size, scenes, 35, tok.added["[DEC]"], grid, 1)
        torch.manual_seed(0)
        model = BlipBundle(cfg).eval()
        return b, model, torch.nn.Linear(cfg.vision.hidden_size, sum(AUX_CLASSES))

    @staticmethod
    def random_start(d: Path) -> tuple[Path, dict]:
        """A checkpoint of a randomly initialised bundle in d, as tools.train --resume reads it."""
        from tools.blip.bundle import scenes_config
        from tools.batches import make_tokenizer
        tok, _ = make_tokenizer()
        cfg = scenes_config(len(tok.vocab) + 2, tok.sep, tok.added["[DEC]"])
        torch.manual_seed(0)
        state = BlipBundle(cfg).state_dict()
        torch.save({"model": state, "config": cfg.to_dict(), "step": 0}, d / "start.pt")
        return d / "start.pt", state

    @staticmethod
    def train(*flags: str, resume: Path, out: Path) -> str:
        """Runs `tools.train FLAGS` on batches of 4 scenes; returns what it printed."""
        return subprocess.run([sys.executable, "-m", "tools.train", "--batch", "4", *flags, "--resume", str(resume),
                               "--out", str(out)], check=True, capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[2]).stdout

    @classmethod
    def changed_by_training(cls, *flags: str) -> set[str]:
        """State-dict keys that two steps of `tools.train FLAGS` change in a random bundle."""
        with tempfile.TemporaryDirectory() as d:
            start, before = cls.random_start(Path(d))
            cls.train(*flags, "--steps", "2", resume=start, out=Path(d) / "out.pt")
            after = torch.load(Path(d) / "out.pt")["model"]
        return {k for k in before if not torch.equal(before[k], after[k])}

    def test_vision_only_stage_trains_the_image_encoder_and_nothing_else(self):
        changed = self.changed_by_training("--vision-only", "--aux-labels", "position", "--gray", "0.5")
        self.assertIn("retrieval.vision_model.encoder.layers.0.self_attn.qkv.weight", changed)
        self.assertEqual([k for k in changed if ".vision_model." not in k], [])

    def test_kept_patches_are_every_object_patch_first_and_encode_as_in_the_whole_image(self):
        from tools.train import encode_kept, kept_patches
        torch.manual_seed(0)
        labels = torch.zeros(3, 16, 6, dtype=torch.long)
        touched = [[0, 5, 6], [15], list(range(10))]
        for i, ps in enumerate(touched):
            labels[i, ps, 1] = 2
            labels[i, ps, 0] = -100  # a recoloured object: no colour label, a shape all the same
        idx = kept_patches(labels, 12)
        self.assertEqual(idx.shape, (3, 12))
        for i, ps in enumerate(touched):
            self.assertTrue(set(ps) <= set(idx[i].tolist()), i)
            self.assertEqual(len(set(idx[i].tolist())), 12)
        self.assertNotEqual(idx[0].tolist(), kept_patches(labels, 12)[0].tolist())  # the background draw is random
        # Keeping all 16 patches in any order encodes each patch as the whole image does: positions
        # are added before the pick, and attention does not care about order.
        vision = BlipVisionModel(VisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                              num_attention_heads=2, image_size=32, patch_size=8)).eval()
        pixels = torch.randn(3, 3, 32, 32)
        perm = torch.stack([torch.randperm(16) for _ in range(3)])
        whole = vision(pixels)
        kept = encode_kept(vision, pixels, perm)
        torch.testing.assert_close(kept[:, 0], whole[:, 0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(kept[:, 1:], torch.stack([whole[i, 1:][perm[i]] for i in range(3)]),
                                   atol=1e-5, rtol=1e-5)
        # Fewer patches: the CLS token sees only those kept
        self.assertFalse(torch.allclose(encode_kept(vision, pixels, perm[:, :8])[:, 0], whole[:, 0], atol=1e-3))

    def test_keep_patches_trains_only_the_image_encoder_and_only_in_vision_only_stages(self):
        changed = self.changed_by_training("--vision-only", "--aux-labels", "position", "--keep-patches", "20")
        self.assertIn("retrieval.vision_model.encoder.layers.0.self_attn.qkv.weight", changed)
        self.assertEqual([k for k in changed if ".vision_model." not in k], [])
        with tempfile.TemporaryDirectory() as d:
            start, _ = self.random_start(Path(d))
            with self.assertRaises(subprocess.CalledProcessError) as e:
                self.train("--keep-patches", "20", "--steps", "1", resume=start, out=Path(d) / "out.pt")
            self.assertIn("--keep-patches", e.exception.stderr)
            with self.assertRaises(subprocess.CalledProcessError) as e:
                self.train("--vision-only", "--keep-patches", "65", "--steps", "1", resume=start, out=Path(d) / "out.pt")
            self.assertIn("an image has 64 patches", e.exception.stderr)

    def test_bf16_warning_reads_the_bfloat16_instruction_flags_of_proc_cpuinfo(self):
        from tools.train import cpu_bf16_flags
        self.assertEqual(cpu_bf16_flags("flags\t\t: fpu sse avx avx2 fma\n"), set())
        self.assertEqual(cpu_bf16_flags("flags : avx2 avx512f avx512_bf16 avx512_vnni\n"), {"avx512_bf16"})
        self.assertEqual(cpu_bf16_flags("flags : avx2 amx_tile amx_bf16 amx_int8\n"), {"amx_bf16"})
        self.assertEqual(cpu_bf16_flags("flags : avx512_bf16x\n"), set())  # whole words only

    def test_data_workers_lower_their_own_priority_and_leave_the_training_loop_as_it_was(self):
        import multiprocessing
        import os
        from tools.train import WORKER_NICE, lower_priority

        def child(q):
            lower_priority(0)
            q.put(os.nice(0))

        before = os.nice(0)
        fork = multiprocessing.get_context("fork")
        q = fork.Queue()
        p = fork.Process(target=child, args=(q,))
        p.start()
        p.join(30)
        self.assertEqual(q.get(timeout=5), min(19, before + WORKER_NICE))
        self.assertEqual(os.nice(0), before)
        self.assertGreater(WORKER_NICE, 0)

    def test_bf16_stages_run_from_the_command_line_and_train_what_their_stage_trains(self):
        changed = self.changed_by_training("--bf16", "--vision-only", "--aux-labels", "position")
        self.assertIn("retrieval.vision_model.encoder.layers.0.self_attn.qkv.weight", changed)
        self.assertEqual([k for k in changed if ".vision_model." not in k], [])
        changed = self.changed_by_training("--bf16", "--questions", "2", "--aux-bag", "1", "--aux-bag-text", "all")
        self.assertIn("retrieval.text_proj.weight", changed)
        self.assertIn("caption.text_decoder.cls.predictions.transform.dense.weight", changed)

    def test_weight_ema_averages_each_shared_weight_once_under_every_key(self):
        from tools.ema import WeightEma, ema_path
        a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
        b.weight = a.weight  # shared, as the bundle's tasks share one vision encoder
        model = torch.nn.ModuleDict({"a": a, "b": b, "norm": torch.nn.BatchNorm1d(2)})
        ema = WeightEma(model, 0.9)
        start = a.weight.detach().clone()
        rates = []
        for k in range(3):
            rates.append(ema.rate())
            with torch.no_grad():
                a.weight.add_(1.0)  # what an optimiser step would do, once, to the shared tensor
            ema.update()
        self.assertEqual(rates, [1 / 10, 2 / 11, 3 / 12])  # short at first, then toward 0.9
        expect = start.clone()
        for k, d in enumerate(rates):
            expect = d * expect + (1 - d) * (start + k + 1)
        sd = ema.state_dict(model)
        self.assertEqual(set(sd), set(model.state_dict()))
        torch.testing.assert_close(sd["a.weight"], expect)
        torch.testing.assert_close(sd["b.weight"], expect)
        self.assertFalse(torch.allclose(sd["a.weight"], a.weight))
        self.assertEqual(sd["norm.num_batches_tracked"].dtype, torch.long)  # buffers as they are
        self.assertEqual(ema_path("tools/checkpoints/w.pt"), Path("tools/checkpoints/w.ema.pt"))
        with self.assertRaises(ValueError):
            WeightEma(model, 1.0)

    def test_ema_flag_saves_the_average_beside_the_unchanged_trained_weights(self):
        with tempfile.TemporaryDirectory() as d:
            start, before = self.random_start(Path(d))
            self.train("--vision-only", "--aux-labels", "position", "--steps", "3", "--ema", "0.5",
                       resume=start, out=Path(d) / "out.pt")
            trained = torch.load(Path(d) / "out.pt")["model"]
            averaged = torch.load(Path(d) / "out.ema.pt")
            self.assertEqual(averaged["ema"], 0.5)
            self.assertEqual(set(averaged["model"]), set(trained))
            qkv = "retrieval.vision_model.encoder.layers.0.self_attn.qkv.weight"
            # the average lies between the start and the end, and equals neither
            self.assertFalse(torch.equal(averaged["model"][qkv], trained[qkv]))
            self.assertFalse(torch.equal(averaged["model"][qkv], before[qkv]))
            # what the stage does not train stays the start's in both
            txt = "retrieval.text_proj.weight"
            torch.testing.assert_close(averaged["model"][txt], before[txt])
            torch.testing.assert_close(trained[txt], before[txt])
            with self.assertRaises(subprocess.CalledProcessError) as e:
                self.train("--steps", "1", "--ema", "1", resume=start, out=Path(d) / "bad.pt")
            self.assertIn("--ema 1.0", e.exception.stderr)

    def test_vqa_only_stage_trains_the_question_stack_and_nothing_else(self):
        changed = self.changed_by_training("--vqa-only", "--questions", "9")
        self.assertIn("vqa.text_encoder.encoder.layer.0.crossattention.self.query.weight", changed)
        self.assertIn("vqa.text_decoder.cls.predictions.transform.dense.weight", changed)
        self.assertEqual([k for k in changed if not k.startswith(("vqa.text_encoder.", "vqa.text_decoder."))], [])


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
