"""Synthetic scenes, exactly as docs/scenes.md describes them: drawing, captions, partial
queries with a checker, questions and answers. Deterministic given a `random.Random`.

Everything a scene says is computed from its structured form (`Scene`), so any renderer that
follows the same grammar can be checked with the same `satisfies` / `answer` functions.
"""
from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFilter

BACKGROUNDS = {"white": (245, 245, 245), "gray": (128, 128, 128), "black": (20, 20, 20)}
COLORS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
    "yellow": (235, 210, 40), "purple": (140, 60, 180), "orange": (245, 140, 30),
}
SHAPES = ["circle", "square", "triangle", "star"]
SIZES = {"small": (0.10, 0.15), "large": (0.20, 0.27)}
NUM_WORDS = {0: "zero", 1: "one", 2: "two", 3: "three"}
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars",
          "shape": "shapes", "object": "objects"}


@dataclass
class Obj:
    shape: str
    color: str
    size: str
    cx: float  # centre, fraction of the canvas side
    cy: float
    r: float  # outer radius (half side for squares), fraction of the side
    rot: float  # degrees
    rgb: tuple

    @property
    def hpos(self) -> str | None:
        return "left" if self.cx < 1 / 3 else "right" if self.cx > 2 / 3 else None

    @property
    def vpos(self) -> str | None:
        return "top" if self.cy < 1 / 3 else "bottom" if self.cy > 2 / 3 else None

    def extent(self) -> float:
        """Radius of the circle that encloses the drawn shape."""
        return self.r * (math.sqrt(2) if self.shape == "square" else 1.0)


@dataclass
class Scene:
    background: str
    bg_rgb: tuple
    objects: list = field(default_factory=list)

    def sorted_objects(self) -> list:
        return sorted(self.objects, key=lambda o: o.cx)

    def has(self, color=None, shape=None, size=None) -> bool:
        return any(_obj_matches(o, {"color": color, "shape": shape, "size": size}) for o in self.objects)

    def to_json(self) -> dict:
        return {"background": self.background, "objects": [
            {"shape": o.shape, "color": o.color, "size": o.size, "cx": round(o.cx, 4), "cy": round(o.cy, 4),
             "r": round(o.r, 4), "rot": round(o.rot, 2), "hpos": o.hpos, "vpos": o.vpos} for o in self.sorted_objects()]}


# Held-out combinations (scenes.md): never in a training image.
def is_held_out(scene: Scene) -> bool:
    """Whether the scene holds a held-out combination (the rule itself is held_out_combination's)."""
    return mentions_held_out({"objects": [{"color": o.color, "shape": o.shape, "size": o.size} for o in scene.objects],
                              "background": scene.background})


def held_out_combination(spec: dict, background: str | None) -> str | None:
    """The held-out combination (scenes.md) that one object spec makes on the background, if any."""
    if spec.get("color") == "purple" and spec.get("shape") == "triangle":
        return "purple triangle"
    if spec.get("color") == "orange" and spec.get("shape") == "star" and spec.get("size") == "large":
        return "large orange star"
    if spec.get("color") == "yellow" and background == "white":
        return "yellow on white"
    return None


def held_out_on(query: dict, background: str | None) -> str | None:
    """The held-out combination that one of a query's object specs or counts makes on `background`
    (the query's own, or an image's), if any: "a yellow star" on a white image's ground."""
    for s in query.get("objects", []) + query.get("counts", []):
        combination = held_out_combination(s, background)
        if combination:
            return combination
    return None


def mentions_held_out(query: dict) -> bool:
    """Whether a query's words compose a held-out combination. Training texts must not: a text that
    only ever appears as a non-match (an ITM negative, a question answered "no") teaches the text
    side that the combination never holds, whatever the image shows."""
    return any(held_out_combination(s, query.get("background")) for s in query.get("objects", []))


def _jitter(rgb, amount, rng):
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)


def sample_scene(rng: random.Random, train: bool, n_objects: int | None = None) -> Scene:
    """A random scene obeying every rule; with train=True, never a held-out combination."""
    while True:
        bg = rng.choice(list(BACKGROUNDS))
        scene = Scene(bg, _jitter(BACKGROUNDS[bg], 12, rng))
        n = n_objects or rng.choice([1, 2, 2, 3, 3])
        ok = True
        for _ in range(n):
            placed = False
            for _attempt in range(60):
                size = rng.choice(list(SIZES))
                r = rng.uniform(*SIZES[size])
                shape = rng.choice(SHAPES)
                color = rng.choice(list(COLORS))
                rot = rng.uniform(-15, 15) if shape in ("square", "triangle", "star") else 0.0
                probe = Obj(shape, color, size, 0, 0, r, rot, (0, 0, 0))
                e = probe.extent()
                if 2 * e > 0.95:
                    continue
                probe.cx = rng.uniform(e + 0.01, 1 - e - 0.01)
                probe.cy = rng.uniform(e + 0.01, 1 - e - 0.01)
                if _clear_of(probe, scene.objects):
                    probe.rgb = _jitter(COLORS[color], 20, rng)
                    scene.objects.append(probe)
                    placed = True
                    break
            if not placed:
                ok = False
                break
        if not ok:
            continue
        if train and is_held_out(scene):
            continue
        return scene


def _clear_of(o: Obj, others: list) -> bool:
    """At least 4 px apart from every other object at the 128 px canvas: 4/128 of the side."""
    return all(math.hypot(o.cx - p.cx, o.cy - p.cy) >= o.extent() + p.extent() + 4 / 128 for p in others)


def _polygon(o: Obj, W: float) -> list:
    cx, cy, r = o.cx * W, o.cy * W, o.r * W
    th = math.radians(o.rot)
    if o.shape == "square":
        pts = [(-r, -r), (r, -r), (r, r), (-r, r)]
    elif o.shape == "triangle":
        pts = [(r * math.cos(math.radians(a)), -r * math.sin(math.radians(a))) for a in (90, 210, 330)]
    else:  # star: five points, inner radius 0.45 of the outer
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else 0.45 * r
            a = math.radians(90 + 36 * k)
            pts.append((rad * math.cos(a), -rad * math.sin(a)))
    c, s = math.cos(th), math.sin(th)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def draw_objects(d: ImageDraw.ImageDraw, scene: Scene, W: int, fill) -> None:
    """Fills each object's shape on a W x W canvas; fill(index, obj) gives its colour (an RGB
    triple for images, an index for training label maps)."""
    for k, o in enumerate(scene.objects):
        if o.shape == "circle":
            cx, cy, r = o.cx * W, o.cy * W, o.r * W
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill(k, o))
        else:
            d.polygon(_polygon(o, W), fill=fill(k, o))


def render(scene: Scene, size: int = 128, supersample: int = 4, box: bool = False) -> Image.Image:
    """Draw at `size` px; supersample>1 anti-aliases by drawing larger and reducing: with Lanczos,
    or with `box` by averaging each supersample x supersample block (Image.reduce), 7-12 times
    faster and as smooth an edge."""
    W = size * supersample
    img = Image.new("RGB", (W, W), scene.bg_rgb)
    draw_objects(ImageDraw.Draw(img), scene, W, lambda k, o: o.rgb)
    if supersample > 1:
        img = img.reduce(supersample) if box else img.resize((size, size), Image.LANCZOS)
    return img


def render_augmented(scene: Scene, rng: random.Random, box: bool = False) -> Image.Image:
    """A render as another renderer of the same grammar might make it: other canvas sizes,
    anti-aliased or not, light blur, small rotation, JPEG re-encoding. Training draws with `box`
    reduction: a 256 px canvas supersampled 4x rendered in 17 ms with Lanczos against 1.4 ms, and
    Lanczos made drawing a batch as slow as training on it on one AVX2 core. Evaluation sets keep
    Lanczos (the default), so they are the images earlier models were measured on; `box` takes
    the same random draws, so a seed draws the same scenes and augmentations either way."""
    size = rng.choice([96, 112, 128, 128, 128, 160, 192, 256])
    img = render(scene, size, rng.choice([1, 2, 4, 4]), box)
    if rng.random() < 0.3:
        angle = rng.uniform(-4, 4)
        img = img.rotate(angle, resample=Image.BILINEAR, fillcolor=scene.bg_rgb)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    if rng.random() < 0.4:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=rng.randint(40, 95))
        buf.seek(0)
        img = Image.open(buf).convert("RGB")
    return img


# --------------------------------------------------------------------------------------------
# Language
# --------------------------------------------------------------------------------------------

def obj_phrase(o: Obj) -> str:
    return f"a {o.size} {o.color} {o.shape}"


def join_phrases(parts: list[str]) -> str:
    """"a", "a and b", "a, b and c": how captions list their objects."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def caption(scene: Scene) -> str:
    """Canonical caption: objects left to right, every size, colour and shape, and the background."""
    parts = [obj_phrase(o) for o in scene.sorted_objects()]
    body = join_phrases(parts)
    return f"{body} on a {scene.background} background"


def caption_paraphrase(scene: Scene, rng: random.Random) -> str:
    objs = scene.sorted_objects()
    parts = [obj_phrase(o) for o in objs]
    if rng.random() < 0.5:
        rng.shuffle(parts)
    body = join_phrases(parts)
    n = len(objs)
    form = rng.randrange(4)
    if form == 0:
        return f"there is {body} on a {scene.background} background"
    if form == 1 and n > 1:
        return f"{NUM_WORDS[n]} shapes: {body} on a {scene.background} background"
    if form == 2:
        return f"a {scene.background} background with {body}"
    return f"{body} on a {scene.background} background"


def _obj_matches(o: Obj, spec: dict) -> bool:
    for k in ("size", "color", "shape"):
        if spec.get(k) and getattr(o, k) != spec[k]:
            return False
    if spec.get("hpos") and o.hpos != spec["hpos"]:
        return False
    if spec.get("vpos") and o.vpos != spec["vpos"]:
        return False
    return True


def satisfies(scene: Scene, query: dict) -> bool:
    """query = {objects: [spec], counts: [{n, color?, shape?, size?}], background?}.
    Object specs must hold for distinct objects; counts are exact."""
    if query.get("background") and scene.background != query["background"]:
        return False
    for c in query.get("counts", []):
        if sum(_obj_matches(o, c) for o in scene.objects) != c["n"]:
            return False
    specs = query.get("objects", [])
    objs = scene.objects

    def assign(i: int, used: set) -> bool:
        if i == len(specs):
            return True
        return any(j not in used and _obj_matches(objs[j], specs[i]) and assign(i + 1, used | {j})
                   for j in range(len(objs)))

    return assign(0, set())


def spec_phrase(spec: dict, article: bool = True) -> str:
    words = [w for w in (spec.get("size"), spec.get("color")) if w]
    noun = spec.get("shape") or spec.get("noun", "shape")
    text = " ".join(words + [noun])
    if article:
        text = "a " + text
    if spec.get("hpos"):
        text += f" on the {spec['hpos']}"
    elif spec.get("vpos"):
        text += f" at the {spec['vpos']}"
    return text


def query_text(query: dict, rng: random.Random | None = None) -> str:
    parts = []
    for c in query.get("counts", []):
        words = [w for w in (c.get("size"), c.get("color")) if w]
        noun = c.get("shape") or c.get("noun", "shape")
        n = c["n"]
        parts.append(" ".join([NUM_WORDS[n]] + words + [PLURAL[noun] if n != 1 else noun]))
    article = rng.random() < 0.7 if rng else True
    for s in query.get("objects", []):
        parts.append(spec_phrase(s, article))
    text = " and ".join(parts)
    if query.get("background"):
        text = f"{text} on a {query['background']} background" if text else f"a {query['background']} background"
    return text


def sample_query(scene: Scene, rng: random.Random) -> dict:
    """A partial description that is true of `scene`."""
    kind = rng.random()
    objs = scene.objects
    q: dict = {"objects": [], "counts": []}
    if kind < 0.18:
        # a count: of all shapes, of a colour, or of a shape
        mode = rng.randrange(3)
        if mode == 0:
            q["counts"].append({"n": len(objs), "noun": rng.choice(["shape", "object"])})
        else:
            o = rng.choice(objs)
            key = "color" if mode == 1 else "shape"
            val = getattr(o, key)
            n = sum(getattr(x, key) == val for x in objs)
            c = {"n": n, key: val}
            if key == "color":
                c["noun"] = rng.choice(["shape", "object"])
            q["counts"].append(c)
    else:
        k = 1 if len(objs) == 1 or rng.random() < 0.6 else rng.randint(2, len(objs))
        for o in rng.sample(objs, k):
            spec: dict = {}
            r = rng.random()
            if r < 0.45:
                spec.update(color=o.color, shape=o.shape)
            elif r < 0.6:
                spec.update(color=o.color, noun=rng.choice(["shape", "object"]))
            elif r < 0.7:
                spec.update(shape=o.shape)
            else:
                spec.update(color=o.color, shape=o.shape, size=o.size)
            if k == 1 and rng.random() < 0.2:
                if o.hpos and rng.random() < 0.7:
                    spec["hpos"] = o.hpos
                elif o.vpos:
                    spec["vpos"] = o.vpos
            q["objects"].append(spec)
    if rng.random() < 0.25:
        q["background"] = scene.background
    return q


# --------------------------------------------------------------------------------------------
# Questions and answers (table in scenes.md)
# --------------------------------------------------------------------------------------------

QUESTION_TYPES = ["color_of_shape", "shape_of_color", "count_all", "count_color", "count_shape",
                  "exists", "background", "size_of_shape", "side_of"]


def questions(scene: Scene, rng: random.Random, train: bool = False) -> list[tuple[str, str, str]]:
    """Every askable (type, question, answer) for the scene; random choices where a form takes one.
    With train=True no question names a held-out combination (see mentions_held_out)."""
    objs = scene.objects
    out = []
    shape_counts = {s: sum(o.shape == s for o in objs) for s in SHAPES}
    color_counts = {c: sum(o.color == c for o in objs) for c in COLORS}
    for s, n in shape_counts.items():
        if n == 1:
            o = next(o for o in objs if o.shape == s)
            out.append(("color_of_shape", f"what color is the {s}?", o.color))
            out.append(("size_of_shape", f"is the {s} large or small?", o.size))
    for c, n in color_counts.items():
        if n == 1:
            o = next(o for o in objs if o.color == c)
            out.append(("shape_of_color", f"what shape is the {c} object?", o.shape))
    out.append(("count_all", "how many shapes are there?", str(len(objs))))
    c = rng.choice([o.color for o in objs] + list(COLORS))
    out.append(("count_color", f"how many {c} objects are there?", str(color_counts[c])))
    s = rng.choice([o.shape for o in objs] + SHAPES)
    out.append(("count_shape", f"how many {PLURAL[s]} are there?", str(shape_counts[s])))
    if rng.random() < 0.5:
        o = rng.choice(objs)
        col, shp = o.color, o.shape
    else:
        col, shp = rng.choice(list(COLORS)), rng.choice(SHAPES)
        if train and mentions_held_out({"objects": [{"color": col, "shape": shp}]}):
            o = rng.choice(objs)  # a training scene's own objects are never held out
            col, shp = o.color, o.shape
    out.append(("exists", f"is there a {col} {shp}?", "yes" if scene.has(col, shp) else "no"))
    out.append(("background", "what color is the background?", scene.background))
    for o in objs:
        if sum(x.color == o.color and x.shape == o.shape for x in objs) == 1 and o.hpos:
            out.append(("side_of", f"is the {o.color} {o.shape} on the left or the right?", o.hpos))
    return out


# The closed vocabulary (plus letters and digits, so any other text still tokenizes).
WORDS = sorted(set(
    list(BACKGROUNDS) + list(COLORS) + SHAPES + list(SIZES) + list(PLURAL.values()) +
    list(NUM_WORDS.values()) + [str(i) for i in range(10)] +
    "a an the on of and with is are there what how many or left right top bottom at in background "
    "shape object yes no color colour picture image photo big tiny".split()))
