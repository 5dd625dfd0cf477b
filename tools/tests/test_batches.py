"""Training batches (tools.batches, tools.augment): the labels, the texts and what each of the
recipe's options changes in a batch and leaves alone."""
from __future__ import annotations

import random
import unittest

import numpy as np
import torch

from tools.blip import scenes
from tools.tests.helpers import bundle_config, obj, word_decoder


class Batches(unittest.TestCase):
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

    def test_vision_batch_attribute_bags_keep_only_what_still_holds(self):
        from tools.augment import VisionAugment
        from tools.batches import BAG, make_vision_batch
        aug = VisionAugment(decolor=0.2, rehue=0.3, relight=0.5)  # the recipe's
        b = make_vision_batch(random.Random(11), 32, 300, 4, aug)
        color = [k for k, (kind, _) in enumerate(BAG) if kind == "color"]
        background = [k for k, (kind, _) in enumerate(BAG) if kind == "background"]
        others = [k for k in range(len(BAG)) if k not in background]
        seen = {"relit": 0, "recoloured": 0}
        for i in range(300):
            lab, mask = b["bag"][i].numpy(), b["bag_mask"][i].numpy()
            cols, ranks = b["patches"][i, :, 0].numpy(), b["patches"][i, :, 3].numpy()
            relit = mask[background].sum() == 0
            self.assertTrue((mask[background] == 1).all() or relit)  # all background columns, or none
            self.assertTrue((mask[others] == 1).all())  # colours, shapes and sizes always hold
            seen["relit"] += relit
            # the colours in the bag are those of the objects that kept their colour label
            # (colour id k is bag column k - 1): a recoloured object adds none
            kept = {int(k) - 1 for k in cols[cols > 0]}
            self.assertEqual({c for c in color if lab[c] == 1}, kept, i)
            seen["recoloured"] += bool(((cols == -100) & (ranks > 0)).any())
        self.assertGreater(seen["recoloured"], 50)
        self.assertTrue(100 < seen["relit"] < 200, seen)

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
        from tools.batches import BAG, make_batch, named_bag
        col = {a: k for k, a in enumerate(BAG)}
        lab = named_bag({"objects": [{"color": "yellow", "shape": "star"}], "counts": [{"n": 2, "color": "red"}]})
        self.assertEqual({BAG[k] for k in np.flatnonzero(lab)}, {("color", "yellow"), ("color", "red"), ("shape", "star")})
        lab = named_bag({"objects": [], "counts": [{"n": 0, "color": "blue"}], "background": "gray"})
        self.assertEqual(lab[col["background", "gray"]], 1.0)
        self.assertEqual(float(lab.sum()), 1.0)  # "zero blue shapes" does not name blue as present
        cfg, tok = bundle_config()
        words = word_decoder(tok)
        b = make_batch(random.Random(6), tok, cfg.vision.image_size, 12, 35, tok.added["[DEC]"],
                       cfg.vision.image_size // cfg.vision.patch_size, relit=0.3)
        for i, t in enumerate(b["text"][0].tolist()):
            text = words(t)
            for k in np.flatnonzero(b["text_bag"][i].numpy()):
                self.assertIn(BAG[k][1], text)  # every attribute labelled present is named
            if b["complete"][i]:  # a complete caption names what its image holds
                self.assertTrue(torch.equal(b["text_bag"][i], b["bag"][i]))

    def test_texts_without_images_name_any_combination_and_leave_the_rest_of_the_batch_as_drawn(self):
        from tools.batches import BAG, make_batch, text_only_batch
        cfg, tok = bundle_config()
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
        grid = cfg.vision.image_size // cfg.vision.patch_size
        plain = make_batch(random.Random(8), tok, cfg.vision.image_size, 6, 35, tok.added["[DEC]"], grid)
        both = make_batch(random.Random(8), tok, cfg.vision.image_size, 6, 35, tok.added["[DEC]"], grid, text_only=10)
        self.assertTrue(torch.equal(plain["pixels"], both["pixels"]) and torch.equal(plain["text"][0], both["text"][0]))
        self.assertEqual(both["text_only"][0].shape[0], 10)

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
        lab = named_where({"objects": [{"color": "purple", "shape": "triangle", "hpos": "right"}], "counts": []})
        self.assertEqual(held(lab), {("color", "purple", "right"), ("shape", "triangle", "right")})
        lab = named_where({"objects": [{"color": "yellow", "vpos": "bottom"}, {"shape": "star"}],
                           "counts": [{"n": 2, "shape": "circle"}]})
        self.assertEqual(held(lab), {("color", "yellow", "bottom")})  # no position, or a count: nothing

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
        from tools.batches import make_batch, make_tokenizer
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

    def test_batches_carry_the_positional_bag_under_the_bag_rules(self):
        from tools.augment import VisionAugment
        from tools.batches import WHERE, make_batch, make_tokenizer, make_vision_batch, text_only_batch, where_labels
        tok, _ = make_tokenizer()
        words = word_decoder(tok)
        b = make_batch(random.Random(12), tok, 32, 64, 35, tok.added["[DEC]"], 4, confounded=False)
        yellow = [k for k, (kind, v, _) in enumerate(WHERE) if kind == "color" and v == "yellow"]
        for i, scene in enumerate(b["scenes"]):
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
        # vision images: recoloured objects drop their own colour columns, and only those
        v = make_vision_batch(random.Random(14), 32, 200, 4, VisionAugment(decolor=0.3))
        color = [k for k, (kind, _, _) in enumerate(WHERE) if kind == "color"]
        self.assertTrue((v["where_mask"] == 1).all())  # no relit ground: every column holds
        self.assertTrue((v["where"][:, color] <= v["bag"][:, :6].repeat_interleave(4, dim=1)).all())  # seen colours only
        recoloured = [i for i in range(200) if (v["patches"][i, :, 0] == -100).any()]
        self.assertGreater(len(recoloured), 50)
        shapes_where = v["where"][:, len(color):].sum(1)
        self.assertTrue(any(v["where"][i, color].sum() < shapes_where[i] for i in recoloured))

    def test_the_recipes_first_batches_are_those_the_bundle_was_trained_on(self):
        """The first batch of each stage of tools/recipes, as data worker 0 draws it: scenes, texts,
        questions, labels and matches (not pixels, which depend on Pillow's resampling). The
        fingerprints are those of the code that trained the bundle (tools.batches before the
        rejected options were removed: the same batches, tensor for tensor, images included)."""
        import hashlib
        import json
        from tools.batches import BatchStream
        from tools.tests.helpers import ROOT
        from tools.train import batch_options, parse_args

        def fingerprint(batch):
            h = hashlib.sha256(json.dumps([s.to_json() for s in batch.get("scenes", [])], sort_keys=True).encode())
            for k in sorted(set(batch) - {"scenes", "pixels", "patches", "mix_pixels", "mix_patches"}):
                for t in batch[k] if isinstance(batch[k], (tuple, list)) else [batch[k]]:
                    h.update(k.encode())
                    h.update(json.dumps(t.tolist() if isinstance(t, torch.Tensor) else t).encode())
            return h.hexdigest()[:16]
        cfg, _ = bundle_config()
        for recipe, want in (("scenes_hour_vision.py", "f950bb5568acf435"), ("scenes_hour_joint.py", "253dc8aa2d84e5ca")):
            args = parse_args([str(ROOT / "tools/recipes" / recipe)])
            aug, joint = batch_options(args)
            stream = BatchStream(args.seed, cfg.vision.image_size, args.batch,
                                 cfg.vision.image_size // cfg.vision.patch_size, args.vision_only, aug, **joint)
            self.assertEqual(fingerprint(next(iter(stream))), want, recipe)


if __name__ == "__main__":
    unittest.main()
