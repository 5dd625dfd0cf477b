"""BERT uncased WordPiece, enough to produce the same ids as Hugging Face tokenizers for a
`tokenizer.json` of type WordPiece with BertNormalizer + BertPreTokenizer.

Written by hand because there is no `tokenizers`/`transformers` Python package on these machines
(no PyPI). The TypeScript side uses a real tokenizer library on the same tokenizer.json, and the
golden tests compare the two.
"""
from __future__ import annotations

import json
import unicodedata
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


# CJK ideograph blocks: BertNormalizer(handle_chinese_chars=True) makes each such character a word.
_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _normalize(text: str) -> str:
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
            continue
        if any(lo <= cp <= hi for lo, hi in _CJK):
            out.append(f" {ch} ")
            continue
        out.append(" " if ch.isspace() else ch)
    text = "".join(out).lower()
    text = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in text if unicodedata.category(ch) != "Mn")


def _pre_tokenize(text: str) -> list[str]:
    words, cur = [], []
    for ch in text:
        if ch.isspace():
            if cur:
                words.append("".join(cur))
                cur = []
        elif _is_punct(ch):
            if cur:
                words.append("".join(cur))
                cur = []
            words.append(ch)
        else:
            cur.append(ch)
    if cur:
        words.append("".join(cur))
    return words


class WordPieceTokenizer:
    def __init__(self, vocab: dict[str, int], added: dict[str, int]):
        self.vocab = vocab
        self.added = added
        self.inv = {i: t for t, i in {**vocab, **added}.items()}
        self.unk = vocab["[UNK]"]
        self.cls = vocab["[CLS]"]
        self.sep = vocab["[SEP]"]
        self.pad = vocab["[PAD]"]

    @staticmethod
    def from_file(path: str | Path) -> "WordPieceTokenizer":
        j = json.loads(Path(path).read_text())
        vocab = j["model"]["vocab"]
        added = {t["content"]: t["id"] for t in j.get("added_tokens", [])}
        return WordPieceTokenizer(vocab, added)

    def _wordpiece(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end, cur = len(word), None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    cur = self.vocab[piece]
                    break
                end -= 1
            if cur is None:
                return [self.unk]
            ids.append(cur)
            start = end
        return ids

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        ids = []
        for w in _pre_tokenize(_normalize(text)):
            ids.extend(self._wordpiece(w))
        if max_length is not None:
            ids = ids[: max_length - 2]
        return [self.cls] + ids + [self.sep]

    def decode(self, ids, skip_special=True) -> str:
        special = set(self.added.values()) | {self.vocab[s] for s in SPECIALS if s in self.vocab}
        toks = [self.inv[i] for i in ids if not (skip_special and i in special)]
        text = " ".join(toks).replace(" ##", "")
        for p in [" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"]:
            text = text.replace(p, p.strip() if p != " ' " else "'")
        return text


def tokenizer_json(vocab_tokens: list[str], dec: str = "[DEC]", enc: str = "[ENC]") -> dict:
    """A Hugging Face tokenizers file for BERT uncased WordPiece over `vocab_tokens` (index = id),
    with [DEC] and [ENC] appended after the vocabulary as BLIP's init_tokenizer does."""
    vocab = {t: i for i, t in enumerate(vocab_tokens)}
    n = len(vocab_tokens)
    added = []
    for t in SPECIALS:
        if t in vocab:
            added.append(_added(vocab[t], t))
    added += [_added(n, dec), _added(n + 1, enc)]
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [cls], "tokens": ["[CLS]"]},
                               "[SEP]": {"id": "[SEP]", "ids": [sep], "tokens": ["[SEP]"]}},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    }


def _added(i: int, t: str) -> dict:
    return {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def scenes_vocab(words: list[str]) -> list[str]:
    """The bundled model's closed vocabulary: specials, punctuation, scene words, then single
    letters and digits (and their ## continuations) so that any lower-case ASCII text tokenizes."""
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    punct = list(",.?!:;'\"-()/&")
    seen, out = set(), []
    for t in SPECIALS + punct + words + letters + ["##" + ch for ch in letters]:
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


def vocab_from_txt(path: str | Path) -> list[str]:
    return [line.rstrip("\n") for line in Path(path).read_text(encoding="utf-8").splitlines()]
