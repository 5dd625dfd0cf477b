import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadedImage } from '../../src/ml/blip-engine.js';
import type { OnnxBlipEngine } from '../../src/ml/blip/onnx-blip-engine.js';
import { createBlipEngine } from '../../src/ml/create-blip-engine.js';
import { decodersTakingSeveralInputs } from '../../src/ml/manifest/model-manifest.js';

interface GoldenImage {
  file: string;
  pixels: number[];
  image_feat: number[];
  itm_scales: number[];
  itm_codes_first: number[];
  itm: Array<{ text: string; logits: number[]; probability: number; logits_int8_states: number[]; probability_int8_states: number }>;
  caption_greedy_ids: number[];
  caption_beam3_ids: number[];
  vqa: Array<{ question: string; input_ids: number[]; answer_ids: number[] }>;
}
interface GoldenSetting { max_length: number; min_length: number; repetition_penalty: number }
interface Golden {
  modelDir: string;
  /** Where the golden images live; default test/golden/images. */
  imageDir?: string;
  modelId: string;
  captionSettings: { greedy: GoldenSetting; beam: GoldenSetting };
  texts: Array<{ text: string; input_ids: number[]; text_feat: number[] }>;
  images: GoldenImage[];
}

// Committed goldens, plus one made on demand (BLIP_EXTRA_GOLDEN: the full-size random-weight
// round trip of `npm run test:fullsize` writes .cache/fullsize/goldens.json).
const goldenFiles = readdirSync('test/golden').filter((f) => f.endsWith('.json')).map((f) => `test/golden/${f}`);
if (process.env.BLIP_EXTRA_GOLDEN) goldenFiles.push(process.env.BLIP_EXTRA_GOLDEN);
const goldens = goldenFiles
  .filter((f) => !process.env.BLIP_EXTRA_GOLDEN || process.env.BLIP_ONLY_EXTRA !== '1' || f === process.env.BLIP_EXTRA_GOLDEN)
  .map((f) => ({ name: f.split('/').pop()!, golden: JSON.parse(readFileSync(f, 'utf8')) as Golden }))
  .filter(({ golden }) => typeof golden.modelDir === 'string');

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

for (const { name, golden } of goldens) {
  describe.skipIf(!existsSync(`${golden.modelDir}/manifest.json`))(`parity with PyTorch: ${name}`, () => {
    let engine: OnnxBlipEngine;
    const goldenPixels = (im: GoldenImage): LoadedImage => ({
      info: { format: 'png', mimeType: 'image/png', width: 0, height: 0, hasAlpha: false },
      pixels: Float32Array.from(im.pixels),
    });
    beforeAll(async () => {
      engine = await createBlipEngine({ modelDir: golden.modelDir, workers: 1, threads: 2 });
    }, 600_000);
    afterAll(async () => engine?.close());

    it('model id', () => expect(engine.modelId).toBe(golden.modelId));

    for (const t of golden.texts) {
      it(`text feature of ${JSON.stringify(t.text)} within 1e-4`, async () => {
        const f = await engine.embedText(t.text);
        expect(f).toHaveLength(engine.embedDim);
        expect(maxAbs(f, t.text_feat)).toBeLessThanOrEqual(1e-4);
      });
    }

    for (const im of golden.images) {
      describe(im.file, () => {
        const hasFullPixels = im.pixels.length === 3 * (JSON.parse(readFileSync(`${golden.modelDir}/manifest.json`, 'utf8')).image.size ** 2);
        it.skipIf(!hasFullPixels)('image feature within 1e-4 (golden pixels)', async () => {
          const enc = await engine.embedImage(goldenPixels(im));
          expect(maxAbs(enc.feature, im.image_feat)).toBeLessThanOrEqual(1e-4);
        });
        it.skipIf(!hasFullPixels)('int8 ITM states: scales within 1e-5 relative, codes within one step (golden pixels)', async () => {
          const { itmStates } = await engine.embedImage(goldenPixels(im));
          expect(itmStates.scales).toHaveLength(im.itm_scales.length);
          im.itm_scales.forEach((s, i) => expect(Math.abs((itmStates.scales[i] as number) - s)).toBeLessThanOrEqual(1e-5 * s));
          expect(maxAbs(itmStates.codes.subarray(0, im.itm_codes_first.length), im.itm_codes_first)).toBeLessThanOrEqual(1);
        });
        it.skipIf(!hasFullPixels)('ITM probabilities on the stored int8 states within 1e-4 of PyTorch on the same states (golden pixels)', async () => {
          const enc = await engine.embedImage(goldenPixels(im));
          for (const c of im.itm) {
            const r = await engine.itmScores(c.text, [enc.itmStates, enc.itmStates]);
            expect(Math.abs((r.probabilities[0] as number) - c.probability_int8_states)).toBeLessThanOrEqual(1e-4);
            expect(maxAbs(r.logits[1] as number[], c.logits_int8_states)).toBeLessThanOrEqual(1e-3);
          }
        });
        it.skipIf(!hasFullPixels)('ITM logits on the int8 states within 0.05 of PyTorch on float32 states (golden pixels)', async () => {
          const enc = await engine.embedImage(goldenPixels(im));
          const r = await engine.itmScores('probe', [enc.itmStates]);
          expect(r.logits).toHaveLength(1);
          for (const c of im.itm) {
            const [logits] = (await engine.itmScores(c.text, [enc.itmStates])).logits;
            const d = maxAbs(logits as number[], c.logits);
            console.log(`${name} ${im.file} ${JSON.stringify(c.text)}: ITM logit difference int8 vs float32 states ${d.toExponential(2)}`);
            expect(d).toBeLessThanOrEqual(0.05);
          }
        });
        it.skipIf(!hasFullPixels)('greedy and beam-3 caption ids identical (golden pixels)', async () => {
          const g = golden.captionSettings;
          const greedy = await engine.captionIds(goldenPixels(im), { numBeams: 1, maxLength: g.greedy.max_length, minLength: g.greedy.min_length, repetitionPenalty: g.greedy.repetition_penalty });
          expect(greedy.ids).toEqual(im.caption_greedy_ids);
          const beam = await engine.captionIds(goldenPixels(im), { numBeams: 3, maxLength: g.beam.max_length, minLength: g.beam.min_length, repetitionPenalty: g.beam.repetition_penalty });
          expect(beam.ids).toEqual(im.caption_beam3_ids);
        });
        it.skipIf(!hasFullPixels)('VQA answer ids identical (golden pixels)', async () => {
          for (const q of im.vqa) expect(await engine.answerIds(goldenPixels(im), q.question)).toEqual(q.answer_ids);
        });
        it('end to end from the file: feature close to PyTorch (drift from resize only)', async () => {
          const loaded = await engine.loadImage(readFileSync(`${golden.imageDir ?? 'test/golden/images'}/${im.file}`));
          const enc = await engine.embedImage(loaded);
          const d = maxAbs(enc.feature, im.image_feat);
          console.log(`${name} ${im.file}: end-to-end image_feat max abs diff ${d.toExponential(2)}`);
          expect(d).toBeLessThan(0.05);
        });
      });
    }

    it('concurrent beam-3 captions of every image equal the goldens, run as fewer generations where the decoder takes several inputs', async () => {
      const withPixels = golden.images.filter((im) => im.pixels.length === 3 * engine.inputSize * engine.inputSize);
      const g = golden.captionSettings.beam;
      const options = { numBeams: 3, maxLength: g.max_length, minLength: g.min_length, repetitionPenalty: g.repetition_penalty };
      const before = { ...engine.scheduler.stats };
      const ids = await Promise.all(withPixels.map((im) => engine.captionIds(goldenPixels(im), options)));
      expect(ids.map((r) => r.ids)).toEqual(withPixels.map((im) => im.caption_beam3_ids));
      const jobs = engine.scheduler.stats.generationJobs - before.generationJobs;
      expect(engine.scheduler.stats.generations - before.generations).toBe(withPixels.length);
      if (decodersTakingSeveralInputs(engine.manifest).includes(engine.manifest.tasks.caption.decoder) && withPixels.length > 1) expect(jobs).toBeLessThan(withPixels.length);
      else expect(jobs).toBe(withPixels.length);
    });
  });
}
