"""Golden values for the TypeScript parity tests, computed by the PyTorch reference.

For each committed image: the preprocessed pixel tensor (PIL bicubic, as HF's BlipImageProcessor
after `load_image`'s EXIF transpose), ITC image feature, ITM logits/probabilities for some texts,
greedy and beam-3 caption ids, VQA answer ids. Model outputs are computed FROM the golden pixel
tensor, so the TS tests can check the graphs independently of preprocessing differences.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from . import generate
from .export import CLIP_MEAN, CLIP_STD, dequantize_states, quantize_states
from .tokenizer import WordPieceTokenizer


def preprocess(path: str | Path, size: int) -> torch.Tensor:
    img = ImageOps.exif_transpose(Image.open(path))
    img = img.convert("RGB")  # alpha dropped, not composited (HF convert_to_rgb)
    img = img.resize((size, size), resample=Image.BICUBIC)
    a = np.asarray(img, dtype=np.float64) / 255.0
    a = (a - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    return torch.from_numpy(a.transpose(2, 0, 1).astype(np.float32))[None]


def _r(t: torch.Tensor, nd: int = 7) -> list:
    return [round(float(x), nd) for x in t.reshape(-1).tolist()]


@torch.no_grad()
def make_goldens(bundle, tok: WordPieceTokenizer, manifest: dict, images: list[Path], texts: list[str],
                 questions: list[str], caption_settings: dict) -> dict:
    special = manifest["text"]["specialTokens"]
    S = manifest["image"]["size"]
    max_len = manifest["text"]["maxLength"]
    eos, dec = special["sep"], special["dec"]
    r, c, q = bundle.retrieval, bundle.caption, bundle.vqa
    out = {"modelId": manifest["modelId"], "captionSettings": caption_settings, "texts": [], "images": []}
    for text in texts:
        ids = tok.encode(text, max_len)
        t = torch.tensor([ids])
        out["texts"].append({"text": text, "input_ids": ids,
                             "text_feat": _r(r.text_feat(t, torch.ones_like(t)))})
    for path in images:
        pix = preprocess(path, S)
        emb = r.vision_model(pix)
        codes, scales = quantize_states(emb)
        entry = {"file": path.name, "pixels": _r(pix, 6), "image_feat": _r(r.image_feat(emb)),
                 "image_embeds_first": _r(emb[0, 0, :16]), "itm_scales": _r(scales[0], 9),
                 "itm_codes_first": codes[0, :2].reshape(-1).tolist(), "itm": []}
        deq = dequantize_states(codes, scales)
        for text in texts:
            ids = torch.tensor([tok.encode(text, max_len)])
            logits = r.itm_logits(ids, torch.ones_like(ids), emb)[0]
            # What the int8 ITM graph must reproduce exactly: the reference on the stored states.
            logits_q = r.itm_logits(ids, torch.ones_like(ids), deq)[0]
            entry["itm"].append({"text": text, "logits": _r(logits), "probability": float(torch.softmax(logits, -1)[1]),
                                 "logits_int8_states": _r(logits_q),
                                 "probability_int8_states": float(torch.softmax(logits_q, -1)[1])})
        cemb = c.vision_model(pix)
        ones = torch.ones(1, cemb.shape[1], dtype=torch.long)
        gs, bs = caption_settings["greedy"], caption_settings["beam"]
        entry["caption_greedy_ids"] = generate.greedy(c.text_decoder, [dec], cemb, ones, eos, **gs)
        entry["caption_beam3_ids"] = generate.beam_search(c.text_decoder, [dec], cemb, ones, eos, num_beams=3, **bs)
        entry["caption_greedy"] = tok.decode(entry["caption_greedy_ids"])
        entry["caption_beam3"] = tok.decode(entry["caption_beam3_ids"])
        vemb = q.vision_model(pix)
        entry["vqa"] = []
        for question in questions:
            qids = torch.tensor([tok.encode(question, max_len)])
            states = q.question_states(qids, torch.ones_like(qids), vemb)
            qmask = torch.ones(1, states.shape[1], dtype=torch.long)
            ans = generate.greedy(q.text_decoder, [dec], states, qmask, eos, max_length=10, min_length=1)
            entry["vqa"].append({"question": question, "input_ids": qids[0].tolist(), "answer_ids": ans,
                                 "answer": tok.decode(ans)})
        out["images"].append(entry)
    return out


def make_golden_images(folder: Path, scene_png: Image.Image, scene_jpg: Image.Image) -> list[Path]:
    """PNG, JPEG, a JPEG whose EXIF orientation rotates it, an RGBA PNG with transparent areas that
    still carry colour (alpha must be dropped, not premultiplied), and a non-square image."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    p = folder / "scene.png"
    scene_png.save(p)
    paths.append(p)
    p = folder / "scene.jpg"
    scene_jpg.save(p, quality=90)
    paths.append(p)
    # Stored rotated 90° clockwise... with orientation 6 telling viewers to rotate it back.
    p = folder / "exif-rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    scene_png.transpose(Image.ROTATE_90).save(p, quality=92, exif=exif.tobytes())
    paths.append(p)
    p = folder / "alpha.png"
    rgba = scene_png.convert("RGBA")
    a = np.asarray(rgba).copy()
    h, w = a.shape[:2]
    a[:, : w // 3, 3] = 0  # fully transparent, colour kept underneath
    a[:, w // 3: w // 2, 3] = 128
    Image.fromarray(a, "RGBA").save(p)
    paths.append(p)
    p = folder / "wide-gradient.png"
    y, x = np.mgrid[0:90, 0:200]
    g = np.stack([(x * 1.2) % 256, (y * 2.5) % 256, ((x + y) * 0.9) % 256], -1).astype(np.uint8)
    Image.fromarray(g, "RGB").save(p)
    paths.append(p)
    return paths
