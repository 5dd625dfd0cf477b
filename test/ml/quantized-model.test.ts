import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dot } from '../../src/domain/embedding.js';
import type { LoadedImage } from '../../src/ml/blip-engine.js';
import type { OnnxBlipEngine } from '../../src/ml/blip/onnx-blip-engine.js';
import { createBlipEngine } from '../../src/ml/create-blip-engine.js';

// `tools.quantize` on the bundled model, run through the service's own engine: the int8 copy
// must load unchanged (ONNX Runtime's contrib operator) and mean what the fp32 model means.
// Both graphs L2-normalise their features, so `dot` is the cosine.
const FP32 = 'models/blip-scenes';
const SAMPLES = JSON.parse(readFileSync('samples/samples.json', 'utf8')) as Array<{ file: string; caption: string }>;

describe('int8 copy of the bundled model (tools.quantize)', () => {
  let dir: string;
  let fp32: OnnxBlipEngine;
  let int8: OnnxBlipEngine;
  const images: Array<{ a: LoadedImage; b: LoadedImage }> = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'blip-int8-'));
    execFileSync('/usr/bin/python3', ['-m', 'tools.quantize', '--model', FP32, '--out', dir], { stdio: 'pipe' });
    [fp32, int8] = await Promise.all([
      createBlipEngine({ modelDir: FP32, workers: 0, threads: 1, warmUp: false }),
      createBlipEngine({ modelDir: dir, workers: 0, threads: 1, warmUp: false }),
    ]);
    for (const s of SAMPLES) {
      const bytes = readFileSync(path.join('samples', s.file));
      images.push({ a: await fp32.loadImage(bytes), b: await int8.loadImage(bytes) });
    }
  }, 120_000);

  afterAll(async () => {
    await Promise.all([fp32?.close(), int8?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is a separate model: its own modelId, int8 weights in every graph, smaller files', () => {
    const [a, b] = [fp32.manifest, int8.manifest]; // as the engines validated them
    expect(b.name).toBe(`${a.name}-int8`);
    expect(b.modelId).not.toBe(a.modelId); // a service switched to it re-embeds its images
    expect(b.quantization?.from).toBe(a.modelId);
    for (const [g, spec] of Object.entries(a.graphs)) {
      expect(b.quantization?.matmuls?.[g], g).toBeGreaterThan(0);
      expect(statSync(path.join(dir, spec.file)).size, g).toBeLessThan(statSync(path.join(FP32, spec.file)).size * 0.5);
    }
  });

  it('gives the same image features, text features and ITM scores within int8 error', async () => {
    for (const { a, b } of images) {
      const [ea, eb] = [await fp32.embedImage(a), await int8.embedImage(b)];
      expect(dot(ea.feature, eb.feature)).toBeGreaterThan(0.995);
    }
    for (const text of ['a green star', 'two shapes on a gray background']) {
      expect(dot(await fp32.embedText(text), await int8.embedText(text))).toBeGreaterThan(0.995);
    }
    const statesA = await Promise.all(images.map(({ a }) => fp32.embedImage(a).then((e) => e.itmStates)));
    const statesB = await Promise.all(images.map(({ b }) => int8.embedImage(b).then((e) => e.itmStates)));
    for (const s of SAMPLES.slice(0, 3)) {
      const [ra, rb] = [await fp32.itmScores(s.caption, statesA), await int8.itmScores(s.caption, statesB)];
      for (let i = 0; i < ra.probabilities.length; i++) {
        expect(Math.abs(ra.probabilities[i]! - rb.probabilities[i]!)).toBeLessThan(0.05);
      }
    }
  });

  it('ranks, captions and answers as the fp32 model does', async () => {
    const featsA = await Promise.all(images.map(({ a }) => fp32.embedImage(a).then((e) => e.feature)));
    const featsB = await Promise.all(images.map(({ b }) => int8.embedImage(b).then((e) => e.feature)));
    for (const s of SAMPLES) {
      const [ta, tb] = [await fp32.embedText(s.caption), await int8.embedText(s.caption)];
      expect(argmax(featsB.map((f) => dot(f, tb)))).toBe(argmax(featsA.map((f) => dot(f, ta))));
    }
    let sameCaptions = 0;
    for (const { a, b } of images) {
      if ((await fp32.caption(a)) === (await int8.caption(b))) sameCaptions++;
      for (const q of ['how many shapes are there?', 'what color is the background?']) {
        expect(await int8.answer(b, q)).toBe(await fp32.answer(a, q));
      }
    }
    // Beam search can flip between near-tied beams; all but one must be word for word the same.
    expect(sameCaptions).toBeGreaterThanOrEqual(images.length - 1);
  });
});

function argmax(xs: number[]): number {
  return xs.reduce((best, x, i) => (x > xs[best]! ? i : best), 0);
}
