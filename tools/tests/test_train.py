"""tools.train: the losses, the training-only heads, the command line, and the recipes of
tools/recipes run end to end (train both stages briefly, then export)."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import torch
import torch.nn.functional as F

from tools.blip.bundle import BlipBundle
from tools.blip.model import BlipForImageTextRetrieval, init_weights
from tools.tests.helpers import (ROOT, bundle_config, changed_keys, joint_batch_and_model, random_start, tiny_config,
                                 train, word_decoder)


class Losses(unittest.TestCase):
    def test_texts_without_images_train_only_the_attribute_bag(self):
        from tools.batches import BAG, AUX_CLASSES, make_batch
        from tools.train import step_losses
        cfg, tok = bundle_config()
        grid = cfg.vision.image_size // cfg.vision.patch_size
        plain = make_batch(random.Random(8), tok, cfg.vision.image_size, 6, 35, tok.added["[DEC]"], grid)
        both = make_batch(random.Random(8), tok, cfg.vision.image_size, 6, 35, tok.added["[DEC]"], grid, text_only=10)
        torch.manual_seed(0)
        model = BlipBundle(cfg).eval()
        bag_head = torch.nn.Linear(cfg.image_text_hidden_size, len(BAG))

        def losses(batch, head=bag_head):
            torch.manual_seed(1)
            return [float(x) for x in step_losses(model, batch, torch.tensor(0.07), random.Random(1),
                                                  aux_head=torch.nn.Linear(cfg.vision.hidden_size, sum(AUX_CLASSES)), bag_head=head)]
        a, c = losses(plain), losses(both)
        self.assertEqual(a[:5], c[:5])  # ITC, ITM, captions, answers and the per-patch loss never see them
        self.assertNotAlmostEqual(a[5], c[5], places=5)
        flipped = dict(both, text_only_bag=1 - both["text_only_bag"])
        self.assertNotAlmostEqual(losses(flipped)[5], c[5], places=3)

    def test_vision_mix_images_train_only_the_per_patch_loss(self):
        from tools.augment import VisionAugment
        from tools.batches import AUX_CLASSES, make_batch
        from tools.train import step_losses
        cfg, tok = bundle_config()
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
            return [float(x) for x in step_losses(model, b, torch.tensor(0.07), random.Random(1), aux_head=head)]
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
            return float(step_losses(model, b, torch.tensor(0.07), random.Random(1), aux_head=head, bag_head=bag_head,
                                     bag_mix=on)[5])
        self.assertAlmostEqual(bag(mixed, False), bag(plain, False), places=5)
        self.assertAlmostEqual(bag(dict(mixed, mix_bag_mask=torch.zeros_like(mixed["mix_bag_mask"])), True),
                               bag(plain, False), places=5)
        self.assertNotAlmostEqual(bag(mixed, True), bag(plain, False), places=3)

    def test_aux_bag_text_trains_the_bag_on_every_text_over_every_column(self):
        from tools.batches import BAG
        from tools.train import step_losses
        b, model, head = joint_batch_and_model(6, 12, relit=0.3)
        cfg, _ = bundle_config()
        bag_head = torch.nn.Linear(cfg.image_text_hidden_size, len(BAG))
        partial = int((~b["complete"]).nonzero()[0, 0])

        def bag(batch, every_text):
            torch.manual_seed(1)
            return float(step_losses(model, batch, torch.tensor(0.07), random.Random(1), aux_head=head,
                                     bag_head=bag_head, bag_text=every_text)[5])
        flip = lambda cols: dict(b, text_bag=b["text_bag"].clone().index_put_(
            (torch.tensor([partial] * len(cols)), torch.tensor(cols)), 1 - b["text_bag"][partial, cols]))
        named = b["text_bag"][partial].nonzero()[:, 0].tolist()
        unnamed = (b["text_bag"][partial] == 0).nonzero()[:, 0].tolist()
        # without the option only complete captions train it: a partial text's labels do not count
        self.assertAlmostEqual(bag(flip(named), False), bag(b, False), places=5)
        # with it, what a text names counts, and so does what it does not name (absent)
        self.assertNotAlmostEqual(bag(flip(named), True), bag(b, True), places=3)
        self.assertNotAlmostEqual(bag(flip(unnamed[:1]), True), bag(b, True), places=4)

    def test_itm_pairs_each_text_with_its_image_and_one_true_non_match_each_way(self):
        from tools.train import step_losses
        b, model, head = joint_batch_and_model(7, 10, relit=0.4)
        seen = []
        real = model.retrieval.itm_logits

        def spy(ids, mask, emb, image_index):
            seen.append((ids, image_index))
            return real(ids, mask, emb, image_index=image_index)
        model.retrieval.itm_logits = spy
        torch.manual_seed(1)
        step_losses(model, b, torch.tensor(0.07), random.Random(1), aux_head=head)
        ids, images = seen[0]
        B, M, known = 10, b["match"], b["known"]
        strip = lambda row: [x for x in row.tolist() if x != 0]
        texts = [strip(t) for t in b["text"][0]]
        self.assertEqual(images[:B].tolist(), list(range(B)))  # positives: each text with its own image
        self.assertEqual([strip(r) for r in ids[:B]], texts)
        drawable = [j for j in range(B) if ((M[:, j] == 0) & known[:, j]).any()]
        self.assertEqual(len(images), B + len(drawable) + B)  # every image here has a negative text
        for k, j in enumerate(drawable):  # each text's negative image: a known true non-match
            i = int(images[B + k])
            self.assertEqual(strip(ids[B + k]), texts[j])
            self.assertTrue(M[i, j] == 0 and known[i, j], (i, j))
        for k in range(B):  # each image's negative text: its perturbation, or another text false of it
            i, text = int(images[B + len(drawable) + k]), strip(ids[B + len(drawable) + k])
            self.assertEqual(i, k)
            others = [j for j in range(B) if texts[j] == text]
            self.assertTrue(text == b["perturbed"][i] or any(M[i, j] == 0 and known[i, j] for j in others), i)

    def test_the_total_is_the_weighted_sum_and_a_vision_only_stage_trains_the_per_patch_loss_alone(self):
        from types import SimpleNamespace
        from tools.train import batch_losses
        b, model, head = joint_batch_and_model(5, 8)
        args = SimpleNamespace(vision_only=False, word_noise=0.0, aux_bag_mix=False, aux_bag_text=False,
                               aux_bag_where=False, aux_patch=0.5, aux_bag=0.0)
        torch.manual_seed(1)
        itc, itm, lm, vqa, aux, bag, total = (float(x) for x in batch_losses(args, model, b, torch.tensor(0.07),
                                                                             random.Random(1), head, None))
        self.assertTrue(min(itc, itm, lm, vqa, aux) > 0.1 and bag == 0.0)
        self.assertAlmostEqual(total, itc + itm + lm + vqa + 0.5 * aux, places=4)
        vision_only = SimpleNamespace(**{**vars(args), "vision_only": True})
        vision = [float(x) for x in batch_losses(vision_only, model, b, torch.tensor(0.07), random.Random(1), head, None)]
        self.assertEqual(vision[:4] + vision[5:6], [0.0] * 5)
        self.assertEqual(vision[6], vision[4])
        self.assertGreater(vision[4], 0.1)

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

    def test_relit_scenes_train_no_caption_and_no_background_in_the_attribute_bag(self):
        from tools.batches import BAG, AUX_CLASSES, make_batch
        from tools.train import lm_loss, step_losses
        cfg, tok = bundle_config()
        b = make_batch(random.Random(4), tok, cfg.vision.image_size, 8, 35, tok.added["[DEC]"],
                       cfg.vision.image_size // cfg.vision.patch_size, relit=0.5)
        relit = sorted(set(range(8)) - set(b["caption_image"].tolist()))
        self.assertTrue(0 < len(relit) < 8)
        torch.manual_seed(0)
        model = BlipBundle(cfg).eval()
        bag_head = torch.nn.Linear(cfg.image_text_hidden_size, len(BAG))

        def losses(batch):
            torch.manual_seed(1)
            return [float(x) for x in step_losses(model, batch, torch.tensor(0.07), random.Random(1),
                                                  aux_head=torch.nn.Linear(cfg.vision.hidden_size, sum(AUX_CLASSES)), bag_head=bag_head)]
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

    def test_positional_bag_joins_the_bag_loss_only_with_its_flag(self):
        from tools.batches import BAG, WHERE, AUX_CLASSES, make_batch
        from tools.train import step_losses
        cfg, tok = bundle_config()
        grid = cfg.vision.image_size // cfg.vision.patch_size
        b = make_batch(random.Random(15), tok, cfg.vision.image_size, 8, 35, tok.added["[DEC]"], grid, text_only=8)
        torch.manual_seed(0)
        model = BlipBundle(cfg).eval()
        narrow = torch.nn.Linear(cfg.image_text_hidden_size, len(BAG))
        wide = torch.nn.Linear(cfg.image_text_hidden_size, len(BAG) + len(WHERE))

        def bag(batch, head, where):
            torch.manual_seed(1)
            return float(step_losses(model, batch, torch.tensor(0.07), random.Random(1),
                                     aux_head=torch.nn.Linear(cfg.vision.hidden_size, sum(AUX_CLASSES)), bag_head=head,
                                     bag_text=True, bag_where=where)[5])
        flips = [dict(b, **{k: 1 - b[k]}) for k in ("where", "text_where", "text_only_where")]
        for flipped in flips:
            self.assertAlmostEqual(bag(flipped, narrow, False), bag(b, narrow, False), places=5)
            self.assertNotAlmostEqual(bag(flipped, wide, True), bag(b, wide, True), places=3)

    def test_itc_moved_adds_counterfactuals_to_the_images_softmax_only(self):
        from tools.batches import AUX_CLASSES, OPPOSITE, make_batch
        from tools.train import step_losses
        cfg, tok = bundle_config()
        words = word_decoder(tok)
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
            return [float(x) for x in step_losses(model, batch, torch.tensor(0.07), random.Random(1), aux_head=head)]
        without = {k: v for k, v in b.items() if not k.startswith("moved")}
        base, extra = losses(without), losses(b)
        self.assertNotAlmostEqual(extra[0], base[0], places=4)  # ITC reads them ...
        for k in (1, 2, 3, 4):
            self.assertAlmostEqual(extra[k], base[k], places=5)  # ... and nothing else does
        unknown = dict(b, moved_known=torch.zeros_like(b["moved_known"]), moved_match=torch.zeros_like(b["moved_match"]))
        self.assertAlmostEqual(losses(unknown)[0], base[0], places=5)  # pairs not known are left out

    def test_bf16_autocast_gives_float32_losses_and_gradients_close_to_float32(self):
        from tools.batches import AUX_CLASSES, make_batch
        from tools.train import float_layer_norms, step_losses
        cfg, tok = bundle_config()
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
                losses = step_losses(model, b, torch.tensor(0.07), random.Random(1), aux_head=head)
            sum(losses).backward()
            return losses, probe.grad.clone()
        (full, g32), (half, g16) = run(False), run(True)
        for a, h in zip(full, half):
            self.assertEqual(h.dtype, torch.float32)
            self.assertLess(abs(float(h) - float(a)), 0.02 * abs(float(a)) + 1e-3, (float(a), float(h)))
        self.assertGreater(float(F.cosine_similarity(g32.flatten(), g16.flatten(), dim=0)), 0.98)
        self.assertFalse(torch.equal(g32, g16))  # it did run in bfloat16

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


class CommandLine(unittest.TestCase):
    VISION = str(ROOT / "tools/recipes/scenes_hour_vision.py")
    JOINT = str(ROOT / "tools/recipes/scenes_hour_joint.py")

    def test_the_recipes_train_both_stages_from_their_files_and_export_a_model_folder(self):
        """The shipped recipe end to end, only shorter and smaller, and in float32 (a CPU without
        bfloat16 instructions would take minutes): each stage from its file, through its data
        worker, then tools.export_scenes."""
        cfg, _ = bundle_config()
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            out = train(self.VISION, "--steps", "2", "--batch", "8", "--no-bf16", "--log-every", "1", out=d / "a.pt")
            self.assertIn("step 2 ", out)
            a = torch.load(d / "a.pt")
            torch.manual_seed(51)  # the recipe's seed: what the stage started from
            init = BlipBundle(cfg).state_dict()
            changed = {k for k in init if not torch.equal(init[k], a["model"][k])}
            self.assertIn("retrieval.vision_model.encoder.layers.0.self_attn.qkv.weight", changed)
            self.assertEqual([k for k in changed if ".vision_model." not in k], [])  # the image encoder alone
            self.assertEqual(a["aux_head"]["weight"].shape[0], 27)  # colour 7 + shape 5 + size 3 + rank, thirds 4 each
            self.assertIsNone(a["bag_head"])
            out = train(self.JOINT, "--steps", "2", "--vision-mix", "2", "--text-only", "4", "--no-bf16", "--log-every",
                        "1", resume=d / "a.pt", out=d / "b.pt")
            self.assertIn("per-patch head resumed", out)
            self.assertIn("step 2 ", out)
            b = torch.load(d / "b.pt")
            self.assertEqual(b["bag_head"]["weight"].shape[0], 15 + 40)  # BAG's columns, then WHERE's
            changed = changed_keys(a["model"], d / "b.pt")
            for k in ("retrieval.vision_model.encoder.layers.0.self_attn.qkv.weight", "retrieval.text_proj.weight",
                      "caption.text_decoder.cls.predictions.transform.dense.weight",
                      "vqa.text_encoder.encoder.layer.0.crossattention.self.query.weight"):
                self.assertIn(k, changed)
            subprocess.run([sys.executable, "-m", "tools.export_scenes", "--checkpoint", str(d / "b.pt"),
                            "--out", str(d / "model"), "--model-only"], check=True, capture_output=True, cwd=ROOT)
            m = json.loads((d / "model/manifest.json").read_text())
        bundled = json.loads((ROOT / "models/blip-scenes/manifest.json").read_text())
        for key in ("config", "dims", "text", "image", "tasks", "generation"):
            self.assertEqual(m[key], bundled[key], key)
        self.assertEqual(sorted(m["graphs"]), sorted(bundled["graphs"]))
        self.assertIn("(2 steps)", m["source"])

    def test_flags_after_a_recipe_override_it(self):
        from tools.train import parse_args
        args = parse_args([self.JOINT])
        self.assertEqual((args.steps, args.seed, args.batch, args.bf16, args.confounded_negatives, args.itc_moved),
                         (4253, 52, 48, True, False, 1.0))
        args = parse_args([self.JOINT, "--steps", "7", "--no-bf16", "--resume", "x.pt"])
        self.assertEqual((args.steps, args.bf16, args.resume, args.seed), (7, False, "x.pt", 52))
        vision = parse_args([self.VISION])
        self.assertEqual((vision.steps, vision.seed, vision.vision_only, vision.out),
                         (5340, 51, True, "tools/checkpoints/hour-a.pt"))
        self.assertEqual(parse_args([self.JOINT]).resume, vision.out)  # the second stage starts from the first

    def test_bad_call_a_recipe_naming_no_option_is_refused_with_the_options(self):
        from tools.train import parse_args
        with tempfile.TemporaryDirectory() as d:
            bad = Path(d) / "bad.py"
            bad.write_text("steps = 3\nlearning_rate = 1e-3\n")
            with self.assertRaises(SystemExit) as refused:
                parse_args([str(bad)])
        self.assertIn("learning_rate not options of tools.train", str(refused.exception.code))
        self.assertIn("lr", str(refused.exception.code))

    def test_bad_call_options_that_cannot_go_together_are_refused_with_the_reason(self):
        from tools.train import parse_args
        for flags, says in ((["--vision-only", "--aux-bag", "1"], "joint stages only"),
                            (["--vision-only", "--no-confounded-negatives"], "joint stages only"),
                            (["--vision-only", "--aux-patch", "0"], "--aux-patch must be > 0"),
                            (["--rehue", "0.5"], "--vision-mix images only"),
                            (["--aux-bag-text"], "needs --aux-bag > 0"),
                            (["--aux-bag", "1", "--aux-bag-mix"], "needs --vision-mix > 0"),
                            (["--aux-bag", "1", "--aux-bag-where"], "needs --aux-bag-text"),
                            (["--aux-bag", "1", "--text-only-placed", "0.5"], "needs them")):
            with self.assertRaises(SystemExit) as refused:
                parse_args(flags)
            self.assertIn(says, str(refused.exception.code), flags)

    def test_help_formats_every_option(self):
        # argparse %-formats every help string when it prints them: a bare "%" breaks --help alone
        from tools.train import arg_parser
        text = arg_parser().format_help()
        for flag in ("--aux-bag-where", "--no-confounded-negatives", "--no-bf16", "--threads", "--itc-moved"):
            self.assertIn(flag, text)

    def test_a_resumed_stage_keeps_the_training_only_heads_of_the_stage_before(self):
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            start, _ = random_start(d)
            self.assertNotIn("head resumed", train("--vision-only", "--steps", "1", resume=start, out=d / "first.pt"))
            aux = torch.load(d / "first.pt")["aux_head"]
            # a joint stage starts from that head (at lr 0 it comes back unchanged) and a fresh bag head
            out = train("--steps", "1", "--aux-bag", "1", "--lr", "0", resume=d / "first.pt", out=d / "second.pt")
            self.assertIn("per-patch head resumed", out)
            self.assertNotIn("attribute-bag head resumed", out)
            second = torch.load(d / "second.pt")
            self.assertTrue(torch.equal(second["aux_head"]["weight"], aux["weight"]))
            self.assertEqual(second["bag_head"]["weight"].shape[0], 15)  # 6 colours, 4 shapes, 2 sizes, 3 grounds
            # --aux-bag-where adds 40 positional columns after BAG's: those 15 carry on, the rest start
            # fresh; the whole bag path, through a data worker
            out = train("--steps", "2", "--log-every", "1", "--workers", "1", "--aux-bag", "1", "--aux-bag-text",
                        "--aux-bag-where", "--text-only", "4", "--text-only-placed", "0.5", "--lr", "0",
                        resume=d / "second.pt", out=d / "third.pt")
            self.assertIn("attribute-bag head resumed, 40 columns fresh", out)
            self.assertIn("step 2 ", out)
            wide = torch.load(d / "third.pt")["bag_head"]
            self.assertEqual(wide["weight"].shape[0], 15 + 40)  # (6 colours + 4 shapes) x 4 positions
            self.assertTrue(torch.equal(wide["weight"][:15], second["bag_head"]["weight"]))

    def test_a_bf16_vision_only_stage_trains_the_image_encoder_and_nothing_else(self):
        with tempfile.TemporaryDirectory() as d:
            start, before = random_start(Path(d))
            train("--bf16", "--vision-only", "--decolor", "0.5", "--steps", "2", resume=start, out=Path(d) / "out.pt")
            changed = changed_keys(before, Path(d) / "out.pt")
        self.assertIn("retrieval.vision_model.encoder.layers.0.self_attn.qkv.weight", changed)
        self.assertEqual([k for k in changed if ".vision_model." not in k], [])


if __name__ == "__main__":
    unittest.main()
