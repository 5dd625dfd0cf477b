"""The scene BLIP-2's training (tools/blip2/scenes_train.py): the small scene vocabulary, the
Q-Former's stage-1 attention masks, and the whole recipe run briefly (every stage, then the export)
as tools/recipes/blip2_scenes.py runs it."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import torch

from tools.blip2 import scenes_data
from tools.blip2.export import export_folder
from tools.blip2.scenes_train import (OPTIONS, WINDOWS, QFormerTextSide, Texts, build, joint_forward, lm_batch,
                                      load_language_model, load_qformer, windows)
from tools.blip2.tokenizer import ByteLevelBpe, small_bpe_tokenizer
from tools.tests.helpers import ROOT

VISION = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 24,
          "patch_size": 12, "layer_norm_eps": 1e-5}


class SceneVocabulary(unittest.TestCase):
    def test_every_scene_word_is_one_token_and_prompts_round_trip(self):
        words = scenes_data.vocabulary_words(0, 200)
        tok, newline = small_bpe_tokenizer(words)
        vocab = tok["model"]["vocab"]
        self.assertEqual(sorted(vocab.values()), list(range(len(vocab))))
        self.assertLess(len(vocab), 1000)
        self.assertEqual(vocab["Ċ"], newline)
        bpe = ByteLevelBpe(tok)
        for w in ["circle", "purple", "describe", "where", "middle", "Answer"]:
            self.assertEqual(len(bpe.encode(" " + w)), 1, w)
        text = scenes_data.prompt("where is the red circle?") + " on the left"
        self.assertEqual(bpe.decode(bpe.encode(text)), text)

    def test_new_forms_answer_from_the_scene(self):
        from tools.blip import scenes
        from tools.tests.helpers import obj
        s = scenes.Scene("white", (245, 245, 245), [obj("circle", "red", cx=0.1), obj("star", "blue", cx=0.5)])
        qs = scenes_data.new_questions(s, random.Random(0))
        self.assertEqual(qs[0][2], scenes.caption(s))
        self.assertIn(("where", "where is the red circle?", "on the left"), qs)
        self.assertIn(("where", "where is the blue star?", "in the middle"), qs)


class DescriptionWindows(unittest.TestCase):
    def setUp(self):
        tok, _ = small_bpe_tokenizer(scenes_data.vocabulary_words(0, 200))
        self.texts = Texts(tok, bos=2, eos=2, pad=1)

    def test_each_object_and_the_background_has_its_window_so_bos_stands_where_it_will_after_the_queries(self):
        from tools.blip import scenes
        from tools.tests.helpers import obj
        s = scenes.Scene("white", (245, 245, 245), [obj("star", "blue", cx=0.5), obj("circle", "red", cx=0.1)])
        w = windows(s, self.texts, 8)
        self.assertEqual(len(w), WINDOWS * 8)
        read = [self.texts.bpe.decode([t for t in w[i:i + 8] if t != 1]) for i in range(0, len(w), 8)]
        self.assertEqual(read, ["a small red circle on the left", "a small blue star in the middle", "", "on a white background"])
        rng = random.Random(0)
        for _ in range(300):  # every scene fits: no phrase is cut
            self.assertEqual(len(windows(scenes.sample_scene(rng, train=False), self.texts, 8)), 32)
        with self.assertRaises(ValueError):
            windows(s, self.texts, 6)

    def test_pretraining_scores_only_the_answer_after_the_windows(self):
        ids, mask, scored = lm_batch(random.Random(0), self.texts, 6, 8)
        self.assertTrue(bool((ids[:, 32] == 2).all()))  # [BOS] right after the windows
        self.assertFalse(bool(scored[:, :33].any()))
        self.assertTrue(bool((scored.sum(1) >= 2).all()))  # an answer token and EOS at least
        self.assertTrue(bool((mask[:, :32] == 1).all()))

    def test_type_weights_pick_the_questions_drawn(self):
        def asked(weights):
            ids, _mask, _scored = lm_batch(random.Random(0), self.texts, 40, 8, weights)
            return [self.texts.bpe.decode([t for t in row[33:].tolist() if t > 3]) for row in ids]
        self.assertTrue(all("background" in q for q in asked({"background": 1e9})))
        self.assertLess(sum("background" in q for q in asked(None)), 20)


SMALL = dict(OPTIONS, qformer_hidden=16, qformer_ffn=32, qformer_layers=1, qformer_heads=2, window=1,
             llm_hidden=16, llm_ffn=32, llm_layers=2, llm_heads=2)


def exported_pair() -> tuple[dict, int, torch.nn.Module, torch.nn.Module]:
    """A tokenizer and its newline id, a SMALL BLIP-2 as after training (no two parameters equal: the
    exporter merges equal ones) and a fresh one of the same options and another seed."""
    tok, newline = small_bpe_tokenizer(scenes_data.vocabulary_words(0, 50))
    vocab = (len(tok["model"]["vocab"]) + 7) // 8 * 8
    trained = build(SMALL, VISION, vocab)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p))
    return tok, newline, trained, build(dict(SMALL, seed=7), VISION, vocab)


class LanguageModelFromFolder(unittest.TestCase):
    def test_an_exported_models_language_model_is_read_back_exactly(self):
        tok, newline, trained, fresh = exported_pair()
        with tempfile.TemporaryDirectory() as tmp:
            export_folder(tmp, name="t", model=trained, tokenizer=tok, newline_id=newline, source="test", decoder_external=False)
            load_language_model(fresh, tmp, tok)
            for (name, a), (_n, b) in zip(trained.language_model.state_dict().items(), fresh.language_model.state_dict().items()):
                torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)
            self.assertFalse(torch.equal(trained.query_tokens, fresh.query_tokens))  # only the LM is taken
            other = json.loads(json.dumps(tok))
            other["model"]["merges"] = other["model"]["merges"][:-1]  # another vocabulary
            with self.assertRaises(SystemExit):
                load_language_model(fresh, tmp, other)


class QFormerFromFolder(unittest.TestCase):
    def test_an_exported_models_queries_are_read_back_exactly(self):
        tok, newline, trained, fresh = exported_pair()
        img = torch.randn(2, 5, 16)
        self.assertFalse(torch.equal(fresh.query_embeds(img), trained.query_embeds(img)))
        with tempfile.TemporaryDirectory() as tmp:
            export_folder(tmp, name="t", model=trained, tokenizer=tok, newline_id=newline, source="test", decoder_external=False)
            load_qformer(fresh, tmp)
            # the prefix stage 2 trains: query tokens through the Q-Former and the projection
            torch.testing.assert_close(fresh.query_embeds(img), trained.query_embeds(img), rtol=0, atol=0)
            wider = build(dict(SMALL, qformer_ffn=64), VISION, trained.config.text.vocab_size)
            with self.assertRaises(SystemExit):
                load_qformer(wider, tmp)


class StageOneMasks(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)
        o = dict(OPTIONS, qformer_hidden=16, qformer_ffn=32, qformer_layers=2, qformer_heads=2, window=1,
                 llm_hidden=16, llm_ffn=32, llm_layers=1, llm_heads=2)
        self.model = build(o, VISION, 40)
        self.side = QFormerTextSide(self.model.config.qformer, 40, 20)
        self.img = torch.randn(2, 5, 16)
        self.ids = torch.randint(4, 40, (2, 6))
        self.mask = torch.ones(2, 6, dtype=torch.long)

    def test_queries_alone_are_the_exported_qformer(self):
        q, _ = joint_forward(self.model, self.side, self.img, None, None, "queries")
        expected = self.model.qformer(self.model.query_tokens.expand(2, -1, -1), self.img)
        torch.testing.assert_close(q, expected)

    def test_generation_mask_hides_the_text_from_the_queries_and_the_future_from_the_text(self):
        q1, t1 = joint_forward(self.model, self.side, self.img, self.ids, self.mask, "itg")
        other = self.ids.clone()
        other[:, 3:] = (other[:, 3:] + 1) % 40
        q2, t2 = joint_forward(self.model, self.side, self.img, other, self.mask, "itg")
        torch.testing.assert_close(q1, q2)
        torch.testing.assert_close(t1[:, :3], t2[:, :3])
        self.assertFalse(torch.allclose(t1[:, 3:], t2[:, 3:]))
        qm, _ = joint_forward(self.model, self.side, self.img, other, self.mask, "itm")
        self.assertFalse(torch.allclose(q1, qm))  # matching: the queries see the text


class RecipeRunsEndToEnd(unittest.TestCase):
    def test_a_few_steps_of_every_stage_then_a_blip2_folder(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "blip2"
            subprocess.run([sys.executable, "-m", "tools.blip2.scenes_train", str(ROOT / "tools/recipes/blip2_scenes.py"),
                            "--out", str(out), "--lm-steps", "3", "--stage1-steps", "3", "--stage2-steps", "3",
                            "--pool", "16", "--lm-batch", "4", "--stage1-batch", "4", "--stage2-batch", "2",
                            "--log-every", "1", "--lm-reading-min", "0"], cwd=ROOT, check=True, capture_output=True, timeout=600)
            manifest = json.loads((out / "manifest.json").read_text())
            self.assertEqual(manifest["family"], "blip2")
            self.assertEqual(set(manifest["graphs"]), {"vision_encoder", "qformer", "llm_decoder"})
            self.assertEqual(manifest["text"]["vocabSize"] % 8, 0)
            self.assertEqual(manifest["config"]["vision"]["hidden_size"], 128)  # the bundled BLIP's ViT
            training = json.loads((out / "training.json").read_text())
            self.assertEqual(training["steps"], {"lm": 3, "stage1": 3, "stage2": 3})
            self.assertTrue(all(v == v for v in [training["loss"]["lm"], training["loss"]["stage2"],
                                                 *training["loss"]["stage1"].values()]))
            # stage 2 goes on from that folder: nothing pretrained again, its history kept
            more = Path(tmp) / "more"
            subprocess.run([sys.executable, "-m", "tools.blip2.scenes_train", str(ROOT / "tools/recipes/blip2_scenes.py"),
                            "--out", str(more), "--qformer-from", str(out), "--stage2-steps", "2", "--pool", "16",
                            "--stage2-batch", "2", "--log-every", "1", "--lm-reading-min", "0"], cwd=ROOT, check=True,
                           capture_output=True, timeout=600)
            training = json.loads((more / "training.json").read_text())
            self.assertEqual(training["steps"], {"lm": 0, "stage1": 0, "stage2": 2})
            self.assertEqual(training["continues"]["steps"], {"lm": 3, "stage1": 3, "stage2": 3})
            self.assertIn("stage 2 generative (3 steps, then 2 more)", json.loads((more / "manifest.json").read_text())["source"])

    def test_a_language_model_under_the_reading_target_stops_the_run_before_stage_1(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "blip2"
            run = subprocess.run([sys.executable, "-m", "tools.blip2.scenes_train", str(ROOT / "tools/recipes/blip2_scenes.py"),
                                  "--out", str(out), "--lm-steps", "3", "--lm-batch", "4", "--pool", "16", "--log-every", "1"],
                                 cwd=ROOT, capture_output=True, text=True, timeout=600)
            self.assertNotEqual(run.returncode, 0)
            self.assertIn("under lm_reading_min 0.9: stopped before stage 1", run.stderr)
            self.assertNotIn("stage1 0", run.stdout)
            self.assertFalse(out.exists())


if __name__ == "__main__":
    unittest.main()
