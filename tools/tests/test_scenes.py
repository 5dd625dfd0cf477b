"""The scene grammar of docs/scenes.md: what scenes hold, what texts say of them, how they are drawn."""
from __future__ import annotations

import random
import unittest

import numpy as np

from tools.blip import scenes
from tools.tests.helpers import obj


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


if __name__ == "__main__":
    unittest.main()
