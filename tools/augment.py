"""Training images outside the grammar's palette, which no text describes: objects recoloured in
grays or in hues of no named colour, grounds relit to any gray (never near-white behind yellow).
They teach the image encoder colour apart from the ground's lightness, and shape apart from
colour, without showing a held-out combination (docs/history/models-log.md, stages 8-10 and 15-16).
Vision-only batches and the --vision-mix images of joint batches use them with no text; relit
joint scenes (--joint-relight) with texts kept to what still holds (tools.batches)."""
from __future__ import annotations

import colorsys
import copy
import random
from dataclasses import dataclass

from tools.blip import scenes


@dataclass
class VisionAugment:
    """How the images of vision-only batches (and of --vision-mix images) leave the grammar's palette.
    Per object: `decolor` a random gray, `rehue` a random hue away from the named ones (colour label
    ignored for both); per image: `relight` a random gray background level (per-patch labels stay,
    as backgrounds have none; the attribute bag drops its background columns)."""
    decolor: float = 0.0
    rehue: float = 0.0
    relight: float = 0.0


def _hue(rgb) -> float:
    return colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0] * 360


NAMED_HUES = [_hue(rgb) for rgb in scenes.COLORS.values()]
# Hues this far (degrees) from every named colour's are unambiguously "none of the six": the
# grammar's colours are jittered by +-20 per channel, which moves their hue by up to about 20
# (purple and green, the least saturated). What is left: yellow-greens, green-cyans and cyans,
# a sliver of blue-violet, magentas and pinks.
HUE_MARGIN = 25


def random_hue_rgb(rng: random.Random) -> tuple:
    while True:
        h = rng.uniform(0, 360)
        if min(min(abs(h - n), 360 - abs(h - n)) for n in NAMED_HUES) >= HUE_MARGIN:
            r, g, b = colorsys.hsv_to_rgb(h / 360, rng.uniform(0.55, 1.0), rng.uniform(0.5, 1.0))
            return round(r * 255), round(g * 255), round(b * 255)


def recolor(scene: scenes.Scene, rng: random.Random, gray: float, hue: float = 0.0) -> tuple[scenes.Scene, list[int]]:
    """A copy of the scene in which each object, with probability `gray`, is filled with a random
    gray level (kept apart from the background's) or, with probability `hue`, with a random hue
    away from the six named ones; and the ranks from the left of those objects. Their shape must
    then be read from geometry alone: a held-out purple triangle otherwise looks, to an encoder
    that never saw one, more like the purple stars it did see (a shape that colour predicts in
    training is partly learned from colour). Recoloured objects show no held-out combination."""
    scene = copy.deepcopy(scene)
    bg = sum(scene.bg_rgb) / 3
    ranks = []
    for r, o in enumerate(scene.sorted_objects(), start=1):
        u = rng.random()  # one draw per object: with hue = 0 the draws of the gray-only stages repeat
        if u < gray:
            v = rng.choice([x for x in range(0, 256, 4) if abs(x - bg) > 50])
            o.rgb = (v, v, v)
            ranks.append(r)
        elif u < gray + hue:
            o.rgb = random_hue_rgb(rng)
            ranks.append(r)
    return scene, ranks


# Brightest background behind a yellow object when relighting: the grammar's white is 245 +- 12,
# and yellow on white is held out.
YELLOW_MAX_BACKGROUND = 215


def relight(scene: scenes.Scene, rng: random.Random) -> scenes.Scene:
    """A copy of the scene on a gray background of random level. In the grammar yellow is always
    brighter than its background (yellow on white is held out), orange is darker than white: an
    encoder learns "warm and darker than the ground = orange" and reads held-out yellow-on-white
    objects as orange (docs/history/models-log.md, stages 15-16). Levels up to 215 put yellow (luminance
    about 200) on grounds as bright as itself and brighter, never on white."""
    scene = copy.deepcopy(scene)
    top = YELLOW_MAX_BACKGROUND if any(o.color == "yellow" for o in scene.objects) else 255
    v = rng.randint(0, top)
    scene.bg_rgb = (v, v, v)
    return scene
