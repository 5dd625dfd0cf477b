"""The hand-written BERT WordPiece tokenizer and the tokenizer.json it writes (the service reads that
file with @huggingface/tokenizers; test/ml/tokenizer.test.ts compares the two on the goldens)."""
from __future__ import annotations

import json
import tempfile
import unittest
from pathlib import Path

from tools.blip import scenes
from tools.blip.tokenizer import WordPieceTokenizer, scenes_vocab, tokenizer_json


def scenes_tokenizer():
    tj = tokenizer_json(scenes_vocab(scenes.WORDS))
    return WordPieceTokenizer(tj["model"]["vocab"], {a["content"]: a["id"] for a in tj["added_tokens"]}), tj


class Tokenizer(unittest.TestCase):
    def test_wordpiece_and_specials(self):
        tok, tj = scenes_tokenizer()
        ids = tok.encode("Red  CIRCLE, zebra?")
        self.assertEqual(ids[0], tok.cls)
        self.assertEqual(ids[-1], tok.sep)
        self.assertEqual(tok.decode(ids), "red circle, zebra?")
        self.assertEqual(tok.added["[DEC]"], len(tj["model"]["vocab"]))
        self.assertEqual(tok.added["[ENC]"], len(tj["model"]["vocab"]) + 1)
        self.assertEqual(len(tok.encode("red " * 100, max_length=10)), 10)

    def test_scene_words_are_whole_tokens_and_other_words_spell_out(self):
        tok, _ = scenes_tokenizer()
        for w in scenes.WORDS:
            self.assertEqual(len(tok.encode(w)), 3, w)  # [CLS] word [SEP]
        pieces = [tok.inv[i] for i in tok.encode("zebra")[1:-1]]
        self.assertEqual(pieces, ["z", "##e", "##b", "##r", "##a"])  # letters then ## continuations
        self.assertEqual(tok.encode("café")[1:-1], tok.encode("cafe")[1:-1])  # accents stripped, as BertNormalizer
        self.assertEqual(tok.encode("日本")[1:-1], [tok.unk, tok.unk])  # each CJK ideograph is a word, as in BertNormalizer

    def test_tokenizer_json_round_trips_through_a_file(self):
        tok, tj = scenes_tokenizer()
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "tokenizer.json").write_text(json.dumps(tj))
            again = WordPieceTokenizer.from_file(Path(d) / "tokenizer.json")
        text = "a large purple star on the left, is there a blue square?"
        self.assertEqual(again.encode(text), tok.encode(text))
        self.assertEqual(tj["post_processor"]["special_tokens"]["[SEP]"]["ids"], [tok.sep])
        self.assertEqual({a["content"] for a in tj["added_tokens"]} >= {"[DEC]", "[ENC]", "[PAD]", "[CLS]"}, True)


if __name__ == "__main__":
    unittest.main()
