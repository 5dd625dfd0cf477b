"""Check our PyTorch BLIP (tools/blip/model.py) against Hugging Face transformers' own classes.

Needs the `transformers` package, which Debian does not ship (our machines have no PyPI), so it
runs where transformers is installed (a GPU machine with the usual ML stack, or any machine with
`pip install transformers`):

    python3 -m tools.hf_parity

For each of BlipForImageTextRetrieval, BlipForConditionalGeneration and BlipForQuestionAnswering it
builds the HF model with random weights (every parameter, biases and LayerNorms included, so that
a term we forgot cannot hide behind a zero-initialised bias), saves it with HF's `save_pretrained`,
loads that snapshot through our importer (strict key matching, as for the real checkpoints), and
compares: vision last_hidden_state, ITC similarity, ITM logits, greedy and beam-3 caption ids, and
greedy VQA answer ids. Exit status 1 on any mismatch.
"""
from __future__ import annotations

import sys
import tempfile
import traceback

import torch

from tools.blip import generate, hf_import

TOL = 1e-4
results: list[tuple[str, bool, str]] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    results.append((name, ok, detail))
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}", flush=True)


def close(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    d = float((a.float() - b.float()).abs().max())
    check(name, a.shape == b.shape and d <= TOL, f"max|diff|={d:.2e} shape={tuple(a.shape)}")


def randomise(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower() and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))


def hf_config(size: str):
    from transformers import BlipConfig

    if size == "small":
        text = dict(vocab_size=120, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    max_position_embeddings=64, pad_token_id=0, sep_token_id=102, bos_token_id=110)
        vision = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, image_size=48,
                      patch_size=8)
        return BlipConfig(text_config=text, vision_config=vision, image_text_hidden_size=32)
    # base: the Salesforce checkpoints' shapes (12 text heads as the Hub configs set, 384 px)
    text = dict(num_attention_heads=12)
    return BlipConfig(text_config=text, vision_config=dict(image_size=384), image_text_hidden_size=256)


def snapshot(hf_model, folder: str):
    hf_model.save_pretrained(folder)
    task, ours, _ = hf_import.load_checkpoint(folder)
    return ours


@torch.no_grad()
def run(size: str, generate_steps: int) -> None:
    import transformers as tf

    torch.manual_seed(0)
    cfg = hf_config(size)
    S = cfg.vision_config.image_size
    pix = torch.randn(2, 3, S, S)
    V = cfg.text_config.vocab_size
    ids = torch.tensor([[101, 5, 17, 33, 102, 0], [101, 9, 8, 102, 0, 0]])
    ids = ids.clamp(max=V - 1)
    mask = (torch.arange(6)[None] < torch.tensor([[5], [4]])).long()
    bos, eos = cfg.text_config.bos_token_id, cfg.text_config.sep_token_id
    gen = dict(do_sample=False, min_length=0, repetition_penalty=1.0, length_penalty=1.0, early_stopping=False)

    with tempfile.TemporaryDirectory() as tmp:
        hf = tf.BlipForImageTextRetrieval(cfg).eval()
        randomise(hf, 1)
        ours = snapshot(hf, tmp + "/itm")
        emb = ours.vision_model(pix)
        close(f"{size} vision last_hidden_state", emb, hf.vision_model(pixel_values=pix).last_hidden_state)
        itm = hf(input_ids=ids, attention_mask=mask, pixel_values=pix, use_itm_head=True).itm_score
        close(f"{size} ITM logits", ours.itm_logits(ids, mask, emb), itm)
        sim = hf(input_ids=ids, attention_mask=mask, pixel_values=pix, use_itm_head=False).itm_score
        close(f"{size} ITC similarity", ours.image_feat(emb) @ ours.text_feat(ids, mask).t(), sim)

        hf = tf.BlipForConditionalGeneration(cfg).eval()
        randomise(hf, 2)
        ours = snapshot(hf, tmp + "/cap")
        emb = ours.vision_model(pix[:1])
        ones = torch.ones(1, emb.shape[1], dtype=torch.long)
        L = generate_steps + 1
        want = hf.generate(pixel_values=pix[:1], num_beams=1, max_length=L, **gen)[0].tolist()
        got = generate.greedy(ours.text_decoder, [bos], emb, ones, eos, max_length=L)
        check(f"{size} caption greedy ids", got == want[: len(got)] and len(want) == len(got), f"ours={got} hf={want}")
        want = hf.generate(pixel_values=pix[:1], num_beams=3, max_length=L, **gen)[0].tolist()
        got = generate.beam_search(ours.text_decoder, [bos], emb, ones, eos, num_beams=3, max_length=L)
        check(f"{size} caption beam-3 ids", got == want, f"ours={got} hf={want}")

        hf = tf.BlipForQuestionAnswering(cfg).eval()
        randomise(hf, 3)
        ours = snapshot(hf, tmp + "/vqa")
        emb = ours.vision_model(pix[:1])
        states = ours.question_states(ids[:1, :5], mask[:1, :5], emb)
        want = hf.generate(input_ids=ids[:1, :5], attention_mask=mask[:1, :5], pixel_values=pix[:1], num_beams=1,
                           max_length=min(L, 10), **gen)[0].tolist()
        got = generate.greedy(ours.text_decoder, [bos], states, mask[:1, :5], eos, max_length=min(L, 10))
        check(f"{size} VQA greedy ids", got == want, f"ours={got} hf={want}")


def main() -> None:
    try:
        import transformers
    except ImportError:
        print("transformers is not installed here; run this where it is (see the module docstring)")
        sys.exit(2)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}", flush=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for size, steps in (("small", 19), ("base", 6)):
        try:
            run(size, steps)
        except Exception:  # report and go on: one API difference should not hide the other checks
            traceback.print_exc()
            check(f"{size} (exception)", False)
    bad = [r for r in results if not r[1]]
    print(f"{len(results) - len(bad)}/{len(results)} checks passed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
