import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dot } from '../../src/domain/embedding.js';
import { IO } from '../../src/ml/blip/blip-io-names.js';
import type { OnnxBlipEngine } from '../../src/ml/blip/onnx-blip-engine.js';
import { createBlipEngine } from '../../src/ml/create-blip-engine.js';
import { OnnxSession } from '../../src/ml/runtime/onnx-session.js';
import { KvCacheDecoder } from '../../src/ml/blip/kv-cache-decoder.js';
import { BufferPool } from '../../src/ml/runtime/buffer-pool.js';
import { floatTensor, type FloatTensor } from '../../src/ml/runtime/tensor.js';

// `npm run test:fullsize`: the int8 copy of the full-size random-weight export against its fp32
// original, graph by graph, on the golden images and texts: int8 is used where it costs no quality.
const INT8 = process.env.BLIP_FULLSIZE_INT8;
const GOLDEN = process.env.BLIP_EXTRA_GOLDEN;

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
}

describe.skipIf(!INT8 || !GOLDEN)('int8 copy of the full-size model against fp32', () => {
  const golden = JSON.parse(readFileSync(GOLDEN ?? '/dev/null', 'utf8') || '{}');
  let fp32: OnnxBlipEngine;
  let int8: OnnxBlipEngine;
  const pixels = () => golden.images.map((im: { pixels: number[] }) => ({ info: { format: 'png', mimeType: 'image/png', width: 0, height: 0, hasAlpha: false }, pixels: Float32Array.from(im.pixels) }));
  beforeAll(async () => {
    fp32 = await createBlipEngine({ modelDir: golden.modelDir, verify: 'size' });
    int8 = await createBlipEngine({ modelDir: INT8!, verify: 'size' });
  }, 600_000);
  afterAll(async () => Promise.all([fp32?.close(), int8?.close()]));

  it('image features (vision graph): cosine >= 0.99', async () => {
    const [a, b] = [pixels(), pixels()];
    for (let i = 0; i < a.length; i++) {
      const c = dot((await fp32.embedImage(a[i])).feature, (await int8.embedImage(b[i])).feature);
      console.log(`full-size int8 image feature cosine ${c.toFixed(4)}`);
      expect(c).toBeGreaterThanOrEqual(0.99);
    }
  });

  it('text features (text graph): cosine >= 0.99', async () => {
    for (const t of golden.texts as Array<{ text: string }>) {
      const c = dot(await fp32.embedText(t.text), await int8.embedText(t.text));
      console.log(`full-size int8 text feature cosine ${c.toFixed(4)}`);
      expect(c).toBeGreaterThanOrEqual(0.99);
    }
  });

  it('ITM (on the same stored states): logits within 0.1 and the same ranking of match and no-match', async () => {
    const states = (await fp32.embedImage(pixels()[0])).itmStates;
    for (const t of golden.texts as Array<{ text: string }>) {
      const [x, y] = [(await fp32.itmScores(t.text, [states])).logits[0]!, (await int8.itmScores(t.text, [states])).logits[0]!];
      console.log(`full-size int8 ITM logits ${x.map((v) => v.toFixed(3))} vs ${y.map((v) => v.toFixed(3))}`);
      expect(Math.abs(x[0] - y[0])).toBeLessThan(0.1);
      expect(Math.abs(x[1] - y[1])).toBeLessThan(0.1);
    }
  });

  it('caption decoder: next-token logits cosine >= 0.99 from the same image states', async () => {
    const m = fp32.manifest;
    const t = m.tasks.caption;
    const open = (dir: string, g: string, manifest: typeof m) => OnnxSession.create(dir, g, manifest.graphs[g]!, { intraOpNumThreads: 2 });
    const vision = await open(golden.modelDir, t.vision, m);
    const s = m.image.size;
    const states = (await vision.run({ [IO.pixelValues]: floatTensor(Float32Array.from(golden.images[0].pixels), [1, 3, s, s]) }, [IO.imageEmbeds]))[IO.imageEmbeds] as FloatTensor;
    await vision.release();
    const logits: Float32Array[] = [];
    for (const [dir, manifest] of [[golden.modelDir, m], [INT8!, int8.manifest]] as const) {
      const [cross, dec] = [await open(dir, t.crossKv, manifest), await open(dir, t.decoder, manifest)];
      const ckv = (await cross.run({ [IO.encoderHiddenStates]: states }))[IO.crossKv] as FloatTensor;
      const step = new KvCacheDecoder((_g, feeds, outputs) => dec.run(feeds, outputs), t.decoder, ckv, 4, new BufferPool());
      const [first] = await step.step([[m.text.specialTokens.dec]], null);
      step.release();
      const out = { [IO.logits]: { dtype: 'float32' as const, dims: [1, 1, first!.length], data: Float32Array.from(first!) } };
      logits.push((out[IO.logits] as FloatTensor).data);
      await Promise.all([cross.release(), dec.release()]);
    }
    const c = cosine(logits[0]!, logits[1]!);
    console.log(`full-size int8 decoder logits cosine ${c.toFixed(4)}`);
    expect(c).toBeGreaterThanOrEqual(0.99);
  });
});
