import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ItmStates } from '../../src/ml/blip-engine.js';
import type { OnnxBlipEngine } from '../../src/ml/blip/onnx-blip-engine.js';
import { createBlipEngine } from '../../src/ml/create-blip-engine.js';
import { isShared, toShared } from '../../src/ml/runtime/shared-memory.js';

const DIR = 'test/fixtures/tiny-random';
const FILES = ['scene.png', 'scene.jpg', 'alpha.png', 'wide-gradient.png', 'exif-rotated.jpg'];

describe('ITM re-ranking as one job', () => {
  let small: OnnxBlipEngine;
  let large: OnnxBlipEngine;
  let states: ItmStates[];
  beforeAll(async () => {
    [small, large] = await Promise.all([
      createBlipEngine({ modelDir: DIR, itmBatchSize: 2 }),
      createBlipEngine({ modelDir: DIR, itmBatchSize: 64 }),
    ]);
    const images = await Promise.all(FILES.map((f) => small.loadImage(readFileSync(`test/golden/images/${f}`))));
    expect(images.every((i) => isShared(i.pixels))).toBe(true);
    states = (await small.embedImages(images)).map((e) => e.itmStates);
  }, 60_000);
  afterAll(async () => Promise.all([small?.close(), large?.close()]));

  it('scores every candidate in one scheduler job, whatever the batch size inside the worker', async () => {
    const before = small.scheduler.stats.itmJobs;
    const a = await small.itmScores('a red circle', states);
    expect(small.scheduler.stats.itmJobs - before).toBe(1);
    const b = await large.itmScores('a red circle', states);
    expect(a.logits).toHaveLength(FILES.length);
    a.logits.forEach((l, i) => {
      expect(l[0]).toBeCloseTo(b.logits[i]![0], 5);
      expect(l[1]).toBeCloseTo(b.logits[i]![1], 5);
    });
  });

  it('states in shared memory and in ordinary buffers score the same', async () => {
    const shared = states.map((s) => ({ codes: toShared(s.codes), scales: toShared(s.scales) }));
    const plain = states.map((s) => ({ codes: Int8Array.from(s.codes), scales: Float32Array.from(s.scales) }));
    const [x, y] = await Promise.all([small.itmScores('two circles', shared), small.itmScores('two circles', plain)]);
    expect(x.logits).toEqual(y.logits);
  });

  it('EXPECTED FAILURE - a cancelled re-ranking stops between batches, and the engine keeps serving', async () => {
    const many = Array.from({ length: 3000 }, (_, i) => states[i % states.length]!);
    const t0 = performance.now();
    const full = await small.itmScores('a red circle', many);
    const fullMs = performance.now() - t0;
    expect(full.logits).toHaveLength(3000);
    const abort = new AbortController();
    const t1 = performance.now();
    const cancelled = small.itmScores('a red circle', many, { signal: abort.signal });
    setTimeout(() => abort.abort(), fullMs / 10);
    await expect(cancelled).rejects.toMatchObject({ code: 'ABORTED' });
    expect(performance.now() - t1).toBeLessThan(fullMs * 0.8);
    expect((await small.itmScores('two circles', states)).logits).toHaveLength(FILES.length);
  });

  it('EXPECTED FAILURE - a request cancelled while queued never reaches the worker', async () => {
    const abort = new AbortController();
    abort.abort();
    const before = small.scheduler.stats.itmJobs;
    await expect(small.itmScores('x', states, { signal: abort.signal })).rejects.toMatchObject({ code: 'ABORTED' });
    expect(small.scheduler.stats.itmJobs).toBe(before);
  });

  it('BAD CALL - states of another shape are refused before any work', async () => {
    const wrong = { codes: new Int8Array(10), scales: new Float32Array(2) };
    await expect(small.itmScores('x', [states[0]!, wrong])).rejects.toThrow(/itmStates\[1\] has 10 codes and 2 scales/);
  });
});
