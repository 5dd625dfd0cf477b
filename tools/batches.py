"""Training batches drawn from the scene grammar: the texts (retrieval queries and their paraphrases,
one-attribute ITM negatives, captions, questions), the training-only labels (per patch and the
attribute bag), joint and vision-only batches, and the stream that draws them in DataLoader
worker processes while the model trains (tools.train)."""
from __future__ import annotations

import copy
import random

import numpy as np
import torch
from PIL import Image, ImageDraw

from tools.augment import VisionAugment, recolor, relight
from tools.blip import scenes
from tools.blip.export import CLIP_MEAN, CLIP_STD
from tools.blip.tokenizer import WordPieceTokenizer, scenes_vocab, tokenizer_json

MEAN = np.array(CLIP_MEAN, dtype=np.float32)
STD = np.array(CLIP_STD, dtype=np.float32)


def make_tokenizer() -> tuple[WordPieceTokenizer, dict]:
    tj = tokenizer_json(scenes_vocab(scenes.WORDS))
    added = {a["content"]: a["id"] for a in tj["added_tokens"]}
    return WordPieceTokenizer(tj["model"]["vocab"], added), tj


def to_pixels(img: Image.Image, size: int) -> np.ndarray:
    img = img.convert("RGB").resize((size, size), resample=Image.BICUBIC)
    a = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
    return a.transpose(2, 0, 1)


def caption_query(scene: scenes.Scene) -> dict:
    return {"objects": [{"size": o.size, "color": o.color, "shape": o.shape} for o in scene.objects],
            "counts": [{"n": len(scene.objects)}], "background": scene.background}


PREFIXES = ["", "", "", "", "a picture of ", "an image of ", "a photo of "]


def retrieval_text(scene: scenes.Scene, rng: random.Random) -> tuple[str, dict]:
    r = rng.random()
    if r < 0.15:
        return scenes.caption(scene), caption_query(scene)
    if r < 0.3:
        return scenes.caption_paraphrase(scene, rng), caption_query(scene)
    q = scenes.sample_query(scene, rng)
    return rng.choice(PREFIXES) + scenes.query_text(q, rng), q


def perturb(query: dict, scene: scenes.Scene, rng: random.Random, background: bool = True,
            confounded: bool = True) -> tuple[str, dict] | None:
    """Change one attribute so that the description no longer holds (a very hard ITM negative).
    background=False never names a background (a relit scene's is unknown); confounded=False never
    makes a held-out combination with the scene's ground (see make_batch)."""
    for _ in range(10):
        q = copy.deepcopy(query)
        choices = []
        if q.get("objects"):
            choices += ["obj"] * 3
        if q.get("counts"):
            choices.append("count")
        if background:
            choices.append("bg")
        kind = rng.choice(choices)
        if kind == "obj":
            spec = rng.choice(q["objects"])
            keys = [k for k in ("color", "shape", "size", "hpos") if spec.get(k)] or ["color"]
            k = rng.choice(keys)
            pool = {"color": list(scenes.COLORS), "shape": scenes.SHAPES, "size": list(scenes.SIZES),
                    "hpos": ["left", "right"]}[k]
            spec[k] = rng.choice([v for v in pool if v != spec.get(k)])
        elif kind == "count":
            c = rng.choice(q["counts"])
            c["n"] = rng.choice([n for n in (1, 2, 3) if n != c["n"]])
        else:
            q["background"] = rng.choice([b for b in scenes.BACKGROUNDS if b != scene.background])
        # a held-out combination would only ever be seen as a non-match: skip it
        if not confounded and (scenes.held_out_on(q, scene.background) or scenes.held_out_on(q, q.get("background"))):
            continue
        if not scenes.satisfies(scene, q) and not scenes.mentions_held_out(q):
            return scenes.query_text(q, rng), q
    return None


OPPOSITE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}


def moved(text: str, query: dict, scene: scenes.Scene, rng: random.Random) -> tuple[str, dict] | None:
    """The text with one of its placed objects sent to the opposite third (left <-> right, top <->
    bottom), when that no longer holds of the scene; None when the text places nothing or the move
    is still true. A contrastive hard negative that differs from a true text only where it puts an
    object, as NegCLIP (Yuksekgonul et al., ICLR 2023) adds them to CLIP's batches against its
    bag-of-words texts (--itc-moved). The text itself is edited where it can be, so that no other
    word tells the two apart."""
    placed = [(spec, k) for spec in query.get("objects", []) for k in ("hpos", "vpos") if spec.get(k)]
    if not placed:
        return None
    spec, key = rng.choice(placed)
    q = copy.deepcopy(query)
    q["objects"][query["objects"].index(spec)][key] = OPPOSITE[spec[key]]
    if scenes.satisfies(scene, q):
        return None
    prep = "on the" if key == "hpos" else "at the"
    before, after = f"{prep} {spec[key]}", f"{prep} {OPPOSITE[spec[key]]}"
    return (text.replace(before, after) if text.count(before) == 1 else scenes.query_text(q, rng)), q


COLOR_IDS = {c: i + 1 for i, c in enumerate(scenes.COLORS)}
SHAPE_IDS = {s: i + 1 for i, s in enumerate(scenes.SHAPES)}
SIZE_IDS = {s: i + 1 for i, s in enumerate(scenes.SIZES)}
# Classes of each per-patch label (0 = background): colour, shape, size, rank from the left,
# horizontal third, vertical third.
AUX_CLASSES = [len(COLOR_IDS) + 1, len(SHAPE_IDS) + 1, len(SIZE_IDS) + 1, 4, 4, 4]


# Columns of the attribute-bag labels: each colour, shape and size present, and the background.
BAG = ([("color", c) for c in scenes.COLORS] + [("shape", s) for s in scenes.SHAPES] +
       [("size", s) for s in scenes.SIZES] + [("background", b) for b in scenes.BACKGROUNDS])


def bag_labels(scene: scenes.Scene) -> np.ndarray:
    """Which of the BAG attributes the scene holds (1) or not (0). Single attributes only: a pair
    such as (purple, triangle) would be 0 in every training scene for the held-out ones."""
    have = {("background", scene.background)}
    for o in scene.objects:
        have |= {("color", o.color), ("shape", o.shape), ("size", o.size)}
    return np.array([float(a in have) for a in BAG], dtype=np.float32)


def named_bag(query: dict) -> np.ndarray:
    """The BAG attributes a text names (1); what it does not name is 0, so "a yellow star" encodes
    no ground and no size (--aux-bag-text). A count of zero names what is absent, so it names
    nothing here."""
    have = set()
    if query.get("background"):
        have.add(("background", query["background"]))
    for spec in query.get("objects", []) + [c for c in query.get("counts", []) if c.get("n", 1) > 0]:
        have |= {(k, spec[k]) for k in ("color", "shape", "size") if spec.get(k)}
    return np.array([float(a in have) for a in BAG], dtype=np.float32)


# Columns of the positional attribute bag (--aux-bag-where): a colour, or a shape, in the left /
# right / top / bottom third (scenes.md's positions), each bound to where it is. BAG is not: "a purple
# triangle on the right" and "... at the bottom" read the same there, and stage 24's text encoder
# gave those two texts the same eight best images, all ignoring the position (a held-out pair is
# out of its distribution, and the position word is what it dropped). Reading positions back
# from texts without images that name held-out pairs keeps them in the ITC text feature.
POSITIONS = ("left", "right", "top", "bottom")
WHERE = ([("color", c, p) for c in scenes.COLORS for p in POSITIONS] +
         [("shape", s, p) for s in scenes.SHAPES for p in POSITIONS])


def where_labels(scene: scenes.Scene, recolored: list[int] = ()) -> np.ndarray:
    """Which WHERE columns the scene holds: each object's colour and shape in the thirds its centre
    lies in (none for the middle one). Objects of the ranks from the left in `recolored` show their
    shape but none of the named colours."""
    have = set()
    for rank, o in enumerate(scene.sorted_objects(), start=1):
        for p in (o.hpos, o.vpos):
            if p:
                have.add(("shape", o.shape, p))
                if rank not in recolored:
                    have.add(("color", o.color, p))
    return np.array([float(a in have) for a in WHERE], dtype=np.float32)


def named_where(query: dict) -> np.ndarray:
    """The WHERE columns a text names (1): each object spec's colour and shape at its position,
    as named_bag's. Counts have no position."""
    have = set()
    for spec in query.get("objects", []):
        for p in (spec.get("hpos"), spec.get("vpos")):
            if p:
                have |= {(k, spec[k], p) for k in ("color", "shape") if spec.get(k)}
    return np.array([float(a in have) for a in WHERE], dtype=np.float32)


def patch_labels(scene: scenes.Scene, grid: int, sub: int = 4) -> np.ndarray:
    """Per patch (row-major, as the ViT flattens them), of the object that covers most of the patch
    (0 = background), by majority over a sub x sub raster of the patch: colour, shape, size, the
    object's rank from the left (what caption order and "left or right" questions need), and the
    horizontal and vertical thirds its centre lies in."""
    W = grid * sub
    mask = Image.new("L", (W, W), 0)
    scenes.draw_objects(ImageDraw.Draw(mask), scene, W, lambda k, o: k + 1)
    m = np.asarray(mask).reshape(grid, sub, grid, sub).transpose(0, 2, 1, 3).reshape(grid * grid, sub * sub)
    counts = np.stack([(m == k).sum(1) for k in range(len(scene.objects) + 1)], 1)
    counts[:, 0] = np.where(counts[:, 1:].sum(1) > 0, -1, counts[:, 0])  # any object pixels: not background
    winner = counts.argmax(1)
    rank = {id(o): i + 1 for i, o in enumerate(scene.sorted_objects())}
    table = np.array([[0] * len(AUX_CLASSES)] + [[COLOR_IDS[o.color], SHAPE_IDS[o.shape], SIZE_IDS[o.size], rank[id(o)],
                                                  min(2, int(o.cx * 3)) + 1, min(2, int(o.cy * 3)) + 1]
                                                 for o in scene.objects])
    return table[winner]


def pad(seqs: list[list[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    return ids, (ids != pad_id).long()


def pick_questions(items: list[tuple[str, str, str]], rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    """Up to n questions of distinct types (each type equally likely, whatever its number of forms)."""
    types = sorted({t for t, _, _ in items})
    chosen = rng.sample(types, min(n, len(types)))
    return [rng.choice([x for x in items if x[0] == t]) for t in chosen]


def pair_labels(shown: list, drawn: list, relit: list[bool], queries: list[dict], confounded: bool):
    """[image, text] match (0 where not known) and known of the images `shown` against `queries`. A pair
    is unknown where a relit image meets a text that names a background, and, unless `confounded`,
    where the text pairs with the image's drawn background (`drawn`, before relighting) into a held-out
    combination: ITC and ITM leave unknown pairs out."""
    known = ~(torch.tensor(relit)[:, None] & torch.tensor([bool(q.get("background")) for q in queries])[None, :])
    if not confounded:
        known &= torch.tensor([[not scenes.held_out_on(q, s.background) for q in queries] for s in drawn])
    match = torch.tensor([[float(scenes.satisfies(s, q)) for q in queries] for s in shown])
    return match * known, known


def make_batch(rng: random.Random, tok: WordPieceTokenizer, size: int, bsz: int, max_len: int, dec: int, grid: int,
               questions: int = 1, mix: int = 0, aug: VisionAugment | None = None, relit: float = 0.0,
               confounded: bool = True, text_only: int = 0, text_only_placed: float = 0.0, joint_placed: float = 0.0,
               itc_moved: float = 0.0):
    """A joint batch of bsz scenes, each with a retrieval text, a one-attribute perturbation of it
    (an ITM negative), its caption and `questions` questions of distinct types; with mix > 0, also
    `mix` images drawn as make_vision_batch draws them (augmented as `aug` says), for the
    training-only heads alone (--vision-mix): no text describes them.

    With relit > 0, that fraction of the scenes is shown on a random gray ground (augment.relight)
    and described only by what it still shows (--joint-relight): retrieval texts that name no
    background, no caption (every caption names one), no background question, no background
    column in the attribute bag. A relit image and a text that names a background are neither a
    match nor a non-match (`known` is False): ITC and ITM leave the pair out.

    With confounded=False (--no-confounded-negatives), a text and an image on whose ground the text
    would make a held-out combination ("a yellow star", a white image) are neither match nor
    non-match either, and the attribute bag does not train that colour on that ground: no training
    image shows yellow on white, so every white image is a true non-match of every text naming
    yellow, and ITC learnt "white ground, not yellow" from exactly those pairs.

    With joint_placed > 0 (--joint-placed), that share of the scenes' own texts names one object and
    the third it lies in (placed_text): ITC then has to tell positions apart itself, where a
    retrieval text names one in 19 times.

    With itc_moved > 0 (--itc-moved), that share of the scenes' texts that place an object gets a
    counterfactual (moved): the same text with the object in the opposite third, an extra ITC
    column ("moved", "moved_match", "moved_known") matched, like any text, against every image.

    With text_only > 0 (--text-only), that many more texts, of scenes drawn as test sets draw them
    (held-out combinations allowed) and with no image at all, for the attribute bag alone: see
    text_only_batch.

    Each option draws from `rng` only when it is on, and the mix and the texts without images are
    drawn last, so turning one on leaves the rest of the batch as it was."""
    sc = [scenes.sample_scene(rng, train=True) for _ in range(bsz)]
    is_relit = [relit > 0 and rng.random() < relit for _ in sc]
    shown = [relight(s, rng) if r else s for s, r in zip(sc, is_relit)]
    pix = torch.from_numpy(np.stack([to_pixels(scenes.render_augmented(s, rng, box=True), size) for s in shown]))
    texts, queries = [], []
    for s, r in zip(sc, is_relit):
        t, q = placed_text(s, rng) if joint_placed > 0 and rng.random() < joint_placed else retrieval_text(s, rng)
        if r and q.get("background"):
            q = {key: v for key, v in q.items() if key != "background"}
            t = scenes.query_text(q, rng)
        texts.append(t)
        queries.append(q)
    counterfactuals = []
    if itc_moved > 0:
        for t, q, s in zip(texts, queries, shown):
            m = moved(t, q, s, rng) if rng.random() < itc_moved else None
            if m:
                counterfactuals.append(m)
    # full captions (and their paraphrases) state every attribute: the bag labels hold for them too
    complete = torch.tensor([q == caption_query(s) for q, s in zip(queries, sc)])
    match, known = pair_labels(shown, sc, is_relit, queries, confounded)
    perturbed = [perturb(q, s, rng, background=not r, confounded=confounded)
                 for q, s, r in zip(queries, shown, is_relit)]
    captioned = [i for i, r in enumerate(is_relit) if not r]
    caps = [[dec] + tok.encode(scenes.caption(sc[i]), max_len)[1:] for i in captioned]
    qa, qa_image = [], []
    for i, (s, r) in enumerate(zip(sc, is_relit)):
        items = [x for x in scenes.questions(s, rng, train=True) if not (r and x[0] == "background")]
        picked = pick_questions(items, rng, questions)
        qa += picked
        qa_image += [i] * len(picked)
    bag_mask = np.ones((bsz, len(BAG)), dtype=np.float32)
    bag_mask[np.ix_(np.flatnonzero(is_relit), [k for k, (kind, _) in enumerate(BAG) if kind == "background"])] = 0.0
    where_mask = np.ones((bsz, len(WHERE)), dtype=np.float32)
    if not confounded:
        for i, s in enumerate(sc):
            held = {c for c in scenes.COLORS if scenes.held_out_combination({"color": c}, s.background)}
            bag_mask[i, [k for k, (kind, v) in enumerate(BAG) if kind == "color" and v in held]] = 0.0
            where_mask[i, [k for k, (kind, v, _) in enumerate(WHERE) if kind == "color" and v in held]] = 0.0
    batch = {
        "scenes": shown, "pixels": pix, "match": match, "known": known,
        "patches": torch.from_numpy(np.stack([patch_labels(s, grid) for s in sc])).long(),
        "bag": torch.from_numpy(np.stack([bag_labels(s) for s in shown])), "bag_mask": torch.from_numpy(bag_mask),
        "complete": complete,
        "text_bag": torch.from_numpy(np.stack([named_bag(q) for q in queries])),
        # the positional bag's columns (--aux-bag-where), under the same keys with "where" for "bag"
        "where": torch.from_numpy(np.stack([where_labels(s) for s in shown])),
        "where_mask": torch.from_numpy(where_mask),
        "text_where": torch.from_numpy(np.stack([named_where(q) for q in queries])),
        "text": pad([tok.encode(t, max_len) for t in texts]),
        "perturbed": [None if p is None else tok.encode(p[0], max_len) for p in perturbed],
        "caption": pad(caps), "caption_image": torch.tensor(captioned, dtype=torch.long),
        "question": pad([tok.encode(q, max_len) for _, q, _ in qa]),
        "question_image": torch.tensor(qa_image),
        "answer": pad([[dec] + tok.encode(a, max_len)[1:] for _, _, a in qa]),
    }
    if counterfactuals:
        c_match, c_known = pair_labels(shown, sc, is_relit, [q for _, q in counterfactuals], confounded)
        batch.update(moved=pad([tok.encode(t, max_len) for t, _ in counterfactuals]), moved_known=c_known,
                     moved_match=c_match)
    if mix > 0:
        v = make_vision_batch(rng, size, mix, grid, aug or VisionAugment())
        batch.update(mix_pixels=v["pixels"], mix_patches=v["patches"], mix_bag=v["bag"], mix_bag_mask=v["bag_mask"],
                     mix_where=v["where"], mix_where_mask=v["where_mask"])
    if text_only > 0:
        batch.update(text_only_batch(rng, tok, text_only, max_len, text_only_placed))
    return batch


def text_only_batch(rng: random.Random, tok: WordPieceTokenizer, n: int, max_len: int, placed: float = 0.0) -> dict:
    """Texts without images, of any scene (held-out combinations allowed), with the BAG attributes
    they name (named_bag; what they do not name is absent). The text side's counterpart of BERT's
    pre-training in the real BLIP: its text encoder had read "a purple triangle" in books long before
    any image. No training text names a held-out combination beside an image, so the text encoder
    learnt that "yellow" never comes with "white" ("a yellow star on a white background" read as
    black 0.8, white under 0.1 by the attribute-bag head, stage 20) and composes nothing there.
    Only the attribute-bag loss reads these: no ITC, no ITM, no image is shown with them, so no
    image of a held-out combination is trained on and none is called a non-match.

    With placed > 0 (--text-only-placed), that fraction of the texts names one object of the scene
    and the third it lies in (placed_text): one retrieval text in 19 names a position (one in 425
    a held-out pair with one), too few for the positional bag (--aux-bag-where) to teach the text
    encoder to keep the position beside a pair it never saw with an image."""
    drawn = [placed_text(scenes.sample_scene(rng, train=False), rng) if placed > 0 and rng.random() < placed
             else retrieval_text(scenes.sample_scene(rng, train=False), rng) for _ in range(n)]
    return {"text_only": pad([tok.encode(t, max_len) for t, _ in drawn]),
            "text_only_bag": torch.from_numpy(np.stack([named_bag(q) for _, q in drawn])),
            "text_only_where": torch.from_numpy(np.stack([named_where(q) for _, q in drawn]))}


def placed_text(scene: scenes.Scene, rng: random.Random) -> tuple[str, dict]:
    """A text naming one object of the scene by colour and shape (and its size, half the time) and
    the third its centre lies in, horizontal or vertical (scenes.md's "on the left", "at the top"),
    and its query; a scene with every object in the middle thirds gives a retrieval text instead."""
    options = [(o, k, getattr(o, k)) for o in scene.objects for k in ("hpos", "vpos") if getattr(o, k)]
    if not options:
        return retrieval_text(scene, rng)
    o, key, where = rng.choice(options)
    spec = {"color": o.color, "shape": o.shape, key: where}
    if rng.random() < 0.5:
        spec["size"] = o.size
    q = {"objects": [spec], "counts": []}
    return scenes.query_text(q, rng), q


def make_vision_batch(rng: random.Random, size: int, bsz: int, grid: int, aug: VisionAugment = VisionAugment()):
    """Images and their labels, for --vision-only and --vision-mix, augmented as `aug` says: per patch
    (patch_labels), and the attribute bag (bag_labels) with a mask of the columns that still hold:
    recoloured objects have none of the named colours, a relit ground none of the named
    backgrounds."""
    pix, labels, bags, masks, wheres, where_masks = [], [], [], [], [], []
    for _ in range(bsz):
        s = scenes.sample_scene(rng, train=True)
        lab = patch_labels(s, grid)
        ranks, relit = [], False
        if aug.decolor > 0 or aug.rehue > 0:
            s, ranks = recolor(s, rng, aug.decolor, aug.rehue)
            for r in ranks:
                lab[lab[:, 3] == r, 0] = -100
        if aug.relight > 0 and rng.random() < aug.relight:
            s, relit = relight(s, rng), True
        img = scenes.render_augmented(s, rng, box=True)
        # One draw per image that decided grayscale images (rejected: docs/history/training.md), kept
        # so that the recipe's batches stay those its model was trained on.
        rng.random()
        named = [o for r, o in enumerate(s.sorted_objects(), start=1) if r not in ranks]
        bag = bag_labels(s)
        bag[:len(scenes.COLORS)] = [float(any(o.color == c for o in named)) for c in scenes.COLORS]
        dropped = {"background"} if relit else set()
        mask = np.array([0.0 if kind in dropped else 1.0 for kind, _ in BAG], dtype=np.float32)
        pix.append(to_pixels(img, size))
        labels.append(lab)
        bags.append(bag)
        masks.append(mask)
        wheres.append(where_labels(s, ranks))
        where_masks.append(np.array([0.0 if kind in dropped else 1.0 for kind, _, _ in WHERE], dtype=np.float32))
    return {"pixels": torch.from_numpy(np.stack(pix)), "patches": torch.from_numpy(np.stack(labels)).long(),
            "bag": torch.from_numpy(np.stack(bags)), "bag_mask": torch.from_numpy(np.stack(masks)),
            "where": torch.from_numpy(np.stack(wheres)), "where_mask": torch.from_numpy(np.stack(where_masks))}


class BatchStream(torch.utils.data.IterableDataset):
    """Endless training batches. Each DataLoader worker draws from its own seeded stream, so the
    scenes are drawn and rendered in other processes while the model trains."""

    def __init__(self, seed: int, size: int, bsz: int, grid: int, vision_only: bool = False,
                 aug: VisionAugment = VisionAugment(), **joint):
        """`joint`: make_batch's options after `grid` (questions, mix, relit, ...), as keywords."""
        self.seed, self.size, self.bsz, self.grid = seed, size, bsz, grid
        self.vision_only, self.aug, self.joint = vision_only, aug, joint

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = random.Random(self.seed * 1000 + (info.id if info else 0))
        tok, _ = make_tokenizer()
        while True:
            if self.vision_only:
                yield make_vision_batch(rng, self.size, self.bsz, self.grid, self.aug)
            else:
                yield make_batch(rng, tok, self.size, self.bsz, 35, tok.added["[DEC]"], self.grid, aug=self.aug,
                                 **self.joint)


def to_device(batch: dict, dev: torch.device) -> dict:
    out = dict(batch)
    for k in ("pixels", "match", "known", "patches", "bag", "bag_mask", "complete", "caption_image", "question_image",
              "text_bag", "text_only_bag", "mix_pixels", "mix_patches", "mix_bag", "mix_bag_mask",
              "where", "where_mask", "text_where", "text_only_where", "mix_where", "mix_where_mask",
              "moved_match", "moved_known"):
        if k in batch:
            out[k] = batch[k].to(dev, non_blocking=True)
    for k in ("text", "caption", "question", "answer", "text_only", "moved"):
        if k in batch:
            out[k] = tuple(t.to(dev, non_blocking=True) for t in batch[k])
    return out
