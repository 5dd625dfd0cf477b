import sharp from 'sharp';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeImage } from '../../src/ml/preprocess/image-decoder.js';

const spec = JSON.parse(readFileSync('models/blip-scenes/manifest.json', 'utf8')).image as { size: number; mean: [number, number, number]; std: [number, number, number]; rescaleFactor: number };
const scaled = { ...spec, rescaleFactor: spec.rescaleFactor ?? 1 / 255 };

/** A smooth, detailed photo-like test card (gradients and rings), `w` x `h`, as JPEG. */
async function photo(w: number, h: number): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">
    <defs><linearGradient id="g"><stop offset="0" stop-color="#3050a0"/><stop offset="1" stop-color="#e0a040"/></linearGradient></defs>
    <rect width="${w}" height="${h}" fill="url(#g)"/>
    ${Array.from({ length: 12 }, (_, i) => `<circle cx="${w / 2}" cy="${h / 2}" r="${(i + 1) * Math.min(w, h) / 26}" fill="none" stroke="${i % 2 ? '#fff' : '#222'}" stroke-width="${Math.min(w, h) / 60}"/>`).join('')}
  </svg>`;
  return sharp(Buffer.from(svg)).jpeg({ quality: 92 }).toBuffer();
}

function mad(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

describe('the model input is decoded once, at the size needed', () => {
  it('the kept model input (lossless S x S PNG) gives exactly the pixels of the original', async () => {
    const original = await photo(1200, 900);
    const first = await decodeImage(original, scaled);
    const meta = await sharp(first.modelInput).metadata();
    expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(['png', spec.size, spec.size, 3]);
    expect(first.modelInput.length).toBeLessThan(original.length);
    const again = await decodeImage(first.modelInput, scaled);
    expect(Buffer.from(again.pixels.buffer).equals(Buffer.from(first.pixels.buffer))).toBe(true);
  });

  it('a photo many times the model size is shrunk on load: pixels within 0.02 of the exact decode', async () => {
    const big = await photo(4000, 3000);
    const shrunk = await decodeImage(big, scaled);
    // The exact path, as for small images: the full decode first, then the same resize.
    const exact = await sharp(big).raw().toBuffer({ resolveWithObject: true });
    const full = await sharp(exact.data, { raw: { width: exact.info.width, height: exact.info.height, channels: 3 } }).png({ compressionLevel: 0 }).toBuffer();
    const reference = await decodeImage(full, { ...scaled, size: spec.size }, { maxBytes: 1e9, maxPixels: 1e9 });
    const d = mad(shrunk.pixels, reference.pixels);
    console.log(`shrink-on-load vs full decode, MAD ${d.toFixed(4)} (normalised units)`);
    expect(d).toBeLessThan(0.02);
  });
});
