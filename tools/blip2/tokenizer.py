"""OPT's tokenizer (GPT-2 byte-level BPE) for the toolchain: a generated stand-in tokenizer.json for
the random-weight round trip, and a small encoder for golden prompt ids.

OPT uses GPT-2's byte-level BPE with fairseq's special tokens in front: `<s>` 0, `<pad>` 1, `</s>` 2
(BOS and EOS both), `<unk>` 3; the tokenizer has 50265 entries while the model's embedding has
50272 rows (padded to a multiple of 8), so a generated id may have no token. HF's processor prepends
BOS (`</s>`, id 2) to the prompt. The real vocabulary cannot be downloaded here, so
`random_opt_tokenizer` generates a valid byte-level BPE tokenizer.json of the same size and special
ids, with merges for the words of the scene grammar and the VQA prompt, and the newline byte token
`Ċ` at its real id 50118 (generation stops there, as LAVIS does for OPT).

The encoder here is written by hand because there is no `tokenizers` Python package on these
machines; the TypeScript runtime uses @huggingface/tokenizers on the same file and the parity test
compares the prompt ids.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
TOKENIZER_SIZE = 50265  # len(tokenizer) of facebook/opt-*: 50260 BPE entries + ... ids 0..50264
NEWLINE_ID = 50118      # "Ċ" (the newline byte) in OPT's vocabulary


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (printable Latin-1 bytes map to
    themselves, the rest to U+0100 onwards)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


# GPT-2's pre-tokenizer pattern; Python's `re` has no \p{L}/\p{N}, so letters are [^\W\d_] and numbers
# \d, which agree with it on the ASCII prompts the goldens use.
_PAT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+""")


def random_opt_tokenizer(words: list[str]) -> dict:
    """A tokenizer.json (HF tokenizers format) shaped like OPT's: byte-level BPE, specials 0-3,
    TOKENIZER_SIZE entries. Each word gets merges that build it (and its space-prefixed form)
    from bytes; the remaining ids are filler tokens that no merge produces."""
    return _bpe_tokenizer(words, TOKENIZER_SIZE, NEWLINE_ID)


def small_bpe_tokenizer(words: list[str]) -> tuple[dict, int]:
    """OPT's tokenizer format and special ids with a vocabulary of only the specials, the 256 bytes
    and the merges that build `words` (a few hundred entries instead of 50265): the trained scene
    BLIP-2 (tools/blip2/scenes_train.py) needs no more, and its embedding table stays small.
    The newline byte comes right after the other bytes. Returns (tokenizer.json, newline id)."""
    newline_id = len(SPECIALS) + 255
    return _bpe_tokenizer(words, None, newline_id), newline_id


def _bpe_tokenizer(words: list[str], size: int | None, newline_id: int) -> dict:
    """Byte-level BPE with merges for `words`, the newline byte at `newline_id`, padded with filler
    tokens to `size` entries (None: no filler)."""
    NEWLINE_ID = newline_id  # noqa: N806 (the module constant's role, for this vocabulary)
    TOKENIZER_SIZE = size  # noqa: N806
    b2u = bytes_to_unicode()
    alphabet = [b2u[b] for b in range(256)]
    newline = b2u[ord("\n")]
    vocab: dict[str, int] = {s: i for i, s in enumerate(SPECIALS)}
    for ch in alphabet:
        if ch != newline:
            vocab[ch] = len(vocab)
    # Merges learnt as BPE learns them (most frequent adjacent pair first, merged everywhere, until
    # every word form is one token), so that encoding a word gives that one token.
    corpus = [list("".join(b2u[b] for b in form.encode())) for w in sorted(set(words)) for form in (w, " " + w)]
    merges: list[str] = []
    while True:
        counts: dict[tuple[str, str], int] = {}
        for parts in corpus:
            for pair in zip(parts, parts[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        a, b = max(sorted(counts), key=lambda p: counts[p])
        merges.append(f"{a} {b}")
        if len(vocab) == NEWLINE_ID:
            vocab[newline] = NEWLINE_ID
        vocab.setdefault(a + b, len(vocab))
        for i, parts in enumerate(corpus):
            out, j = [], 0
            while j < len(parts):
                if j + 1 < len(parts) and parts[j] == a and parts[j + 1] == b:
                    out.append(a + b)
                    j += 2
                else:
                    out.append(parts[j])
                    j += 1
            corpus[i] = out
        corpus = [p for p in corpus if len(p) > 1]
    if TOKENIZER_SIZE is None and newline not in vocab:  # fewer merges than bytes: newline last
        vocab[newline] = NEWLINE_ID
    n = 0
    while TOKENIZER_SIZE is not None and len(vocab) < TOKENIZER_SIZE:
        if len(vocab) == NEWLINE_ID:
            vocab[newline] = NEWLINE_ID
            continue
        vocab[f"Ġfiller{n}"] = len(vocab)
        n += 1
    assert vocab[newline] == NEWLINE_ID and (TOKENIZER_SIZE is None or len(vocab) == TOKENIZER_SIZE)
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": True,
              "special": True} for i, s in enumerate(SPECIALS)]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        # HF's OPT tokenizer prepends BOS (`</s>`); the runtime prepends it itself from the manifest.
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "</s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "</s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


class ByteLevelBpe:
    """Encodes text with a byte-level BPE tokenizer.json (no special tokens added)."""

    def __init__(self, tokenizer: dict):
        model = tokenizer["model"]
        self.vocab: dict[str, int] = model["vocab"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.b2u = bytes_to_unicode()
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        self.u2b = {u: b for b, u in self.b2u.items()}
        self.special = {a["id"] for a in tokenizer.get("added_tokens", []) if a.get("special")}

    def _bpe(self, word: str) -> list[str]:
        parts = list(word)
        while len(parts) > 1:
            best = min(((self.ranks.get((a, b), 1 << 60), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))))
            if best[0] == 1 << 60:
                break
            i = best[1]
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        return parts

    def encode(self, text: str) -> list[int]:
        ids = []
        for piece in _PAT.findall(text):
            mapped = "".join(self.b2u[b] for b in piece.encode())
            ids += [self.vocab[t] for t in self._bpe(mapped)]
        return ids

    def decode(self, ids: list[int]) -> str:
        """HF batch_decode(skip_special_tokens=True) + strip: ids without a token are dropped."""
        text = "".join(self.id_to_token.get(i, "") for i in ids if i not in self.special)
        return bytes(self.u2b[c] for c in text).decode("utf-8", errors="replace").strip()


def load(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
