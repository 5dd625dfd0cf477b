"""Scene language for the small BLIP-2 (tools/blip2/scenes_train.py): the scene grammar's questions
(tools/blip/scenes.py, docs/scenes.md) plus question forms BLIP's VQA head never saw, a small
byte-level BPE vocabulary for them, and the prompt texts.

New forms, answered in free text by the language model:
- "describe the picture" (and "describe the image", "what is in the picture?"): the canonical
  caption, objects left to right (scenes.caption).
- "where is the {colour} {shape}?" for an object no other shares colour and shape with: "on the
  left", "on the right" or "in the middle" (the thirds of the canvas that scenes.Obj.hpos uses).
"""
from __future__ import annotations

import random
import re

from tools.blip import scenes

from .export import PROMPT

DESCRIBE = ["describe the picture", "describe the image", "what is in the picture?"]
NEW_TYPES = ["describe", "where"]


def where_answer(o: scenes.Obj) -> str:
    return {"left": "on the left", "right": "on the right", None: "in the middle"}[o.hpos]


def new_questions(scene: scenes.Scene, rng: random.Random) -> list[tuple[str, str, str]]:
    """(type, question, answer) of the forms BLIP's VQA head never had."""
    out = [("describe", rng.choice(DESCRIBE), scenes.caption(scene))]
    for o in scene.objects:
        if sum(x.color == o.color and x.shape == o.shape for x in scene.objects) == 1:
            out.append(("where", f"where is the {o.color} {o.shape}?", where_answer(o)))
    return out


def all_questions(scene: scenes.Scene, rng: random.Random, train: bool) -> list[tuple[str, str, str]]:
    return scenes.questions(scene, rng, train=train) + new_questions(scene, rng)


def prompt(question: str) -> str:
    return PROMPT.format(question.strip())


def vocabulary_words(seed: int = 0, n: int = 3000) -> list[str]:
    """Every word the prompts, questions, answers and captions use (as the pre-tokenizer splits
    them), from n sampled scenes, plus the grammar's closed word list."""
    rng = random.Random(seed)
    words = set(scenes.WORDS) | {"Question", "Answer", "describe", "where", "middle", "picture", "image"}
    pat = re.compile(r"[^\W\d_]+|\d+")
    for _ in range(n):
        s = scenes.sample_scene(rng, train=False)
        texts = [scenes.caption(s), scenes.caption_paraphrase(s, rng)]
        for _t, q, a in all_questions(s, rng, train=False):
            texts += [q, a]
        for t in texts:
            words.update(pat.findall(t))
    return sorted(words)
