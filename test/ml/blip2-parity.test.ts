import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBlip2Engine, type OnnxBlip2Engine } from '../../src/ml/blip2/onnx-blip2-engine.js';
import type { LoadedImage } from '../../src/ml/blip-engine.js';

// onnxruntime-node against PyTorch goldens of two BLIP-2 exports:
// - a tiny random one (tools/blip2/tiny.py --goldens, made here in a few seconds): every `npm test`;
// - `npm run test:blip2`: tools/blip2/fullsize.py builds the full-width random BLIP-2 (blip2-opt-2.7b
//   widths at reduced depth), saves it sharded as the Hub does, converts it, and writes the goldens
//   (BLIP2_GOLDEN, default .cache/blip2-fullsize/goldens.json; skipped when absent).
const FULL = process.env.BLIP2_GOLDEN ?? '.cache/blip2-fullsize/goldens.json';
const tinyDir = path.join(mkdtempSync(path.join(tmpdir(), 'blip2-parity-')), 'blip2-tiny');
execFileSync('/usr/bin/python3', ['-m', 'tools.blip2.tiny', '--out', tinyDir, '--goldens'], { stdio: 'pipe' });
const GOLDENS = [
  { name: 'tiny random weights', file: path.join(tinyDir, 'goldens.json') },
  { name: 'full-width random weights', file: FULL },
];

interface Golden {
  modelDir: string;
  int8Dir: string;
  maxNewTokens: number;
  numBeams: number;
  images: Array<{
    file: string;
    pixels: number[];
    image_embeds: number[];
    query_embeds: number[];
    vqa: Array<{ question: string; prompt_ids: number[]; greedy_ids: number[]; beam_ids: number[]; greedy_answer: string; first_logits_head: number[] }>;
  }>;
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

const image = (pixels: number[]): LoadedImage => ({
  info: { format: 'png', mimeType: 'image/png', width: 0, height: 0, hasAlpha: false },
  pixels: Float32Array.from(pixels),
});

for (const { name, file: GOLDEN } of GOLDENS) describe.skipIf(!existsSync(GOLDEN))(`BLIP-2 parity with PyTorch (${name})`, () => {
  const golden = JSON.parse(existsSync(GOLDEN) ? readFileSync(GOLDEN, 'utf8') : '{}') as Golden;
  let fp32: OnnxBlip2Engine;
  let int8: OnnxBlip2Engine;
  beforeAll(async () => {
    fp32 = await createBlip2Engine({ modelDir: golden.modelDir, workers: 0, verify: 'size' });
    int8 = await createBlip2Engine({ modelDir: golden.int8Dir, workers: 0, verify: 'size' });
  }, 600_000);
  afterAll(async () => Promise.all([fp32?.close(), int8?.close()]));

  it('builds the prompt ids HF builds: BOS, then "Question: {q} Answer:" through the tokenizer library', () => {
    for (const im of golden.images) {
      for (const q of im.vqa) expect(fp32.promptIds(q.question)).toEqual(q.prompt_ids);
    }
  });

  it('vision states and query embeddings within 1e-4 of PyTorch', async () => {
    for (const im of golden.images) {
      const states = await fp32.imageEmbeds(image(im.pixels));
      const dv = maxAbs(states.data, im.image_embeds);
      const queries = await fp32.queryEmbeds(states);
      const dq = maxAbs(queries.data, im.query_embeds);
      console.log(`${im.file}: image_embeds max |diff| ${dv.toExponential(2)}, query_embeds ${dq.toExponential(2)}`);
      expect(dv).toBeLessThan(1e-4);
      expect(dq).toBeLessThan(1e-4);
    }
  });

  it('greedy and beam answer ids identical to PyTorch, and the greedy answer decodes the same', async () => {
    for (const im of golden.images) {
      const queries = await fp32.queryEmbeds(await fp32.imageEmbeds(image(im.pixels)));
      for (const q of im.vqa) {
        const t0 = performance.now();
        const greedy = await fp32.generate(queries, q.prompt_ids, { maxNewTokens: golden.maxNewTokens, numBeams: 1 });
        const ms = (performance.now() - t0) / Math.max(1, greedy.length);
        const beam = await fp32.generate(queries, q.prompt_ids, { maxNewTokens: golden.maxNewTokens, numBeams: golden.numBeams });
        console.log(`${im.file} "${q.question}": greedy [${greedy.join(',')}] ${JSON.stringify(fp32.decode(greedy))}, beam [${beam.join(',')}], ${ms.toFixed(0)} ms/token`);
        expect(greedy).toEqual(q.greedy_ids);
        expect(beam).toEqual(q.beam_ids);
        expect(fp32.decode(greedy)).toBe(q.greedy_answer);
      }
    }
  }, 600_000);

  it('the int8 language model keeps the fp32 vision and Q-Former, and answers from the same queries', async () => {
    const im = golden.images[0]!;
    const q = im.vqa[0]!;
    const queries = await int8.queryEmbeds(await int8.imageEmbeds(image(im.pixels)));
    expect(maxAbs(queries.data, im.query_embeds)).toBeLessThan(1e-4);
    expect(int8.manifest.quantization?.weights).toBe('int8');
    const ids = await int8.generate(queries, q.prompt_ids, { maxNewTokens: golden.maxNewTokens });
    const same = ids.findIndex((t, i) => t !== q.greedy_ids[i]);
    console.log(`int8 greedy [${ids.join(',')}] vs fp32 [${q.greedy_ids.join(',')}]: first ${same < 0 ? ids.length : same} tokens agree`);
    expect(ids.length).toBeGreaterThan(0);
    expect(ids.every((t) => Number.isInteger(t) && t >= 0 && t < int8.manifest.text.vocabSize)).toBe(true);
  }, 600_000);
});
