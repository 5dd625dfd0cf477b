/**
 * `npm run bench`: latency of every engine operation beside its FLOP count and the machine's
 * measured fp32 matmul peak (through onnxruntime, same thread count), for the bundled model
 * (models/blip-scenes, else the tiny-random fixture) and for a full-size export when
 * BLIP_BENCH_FULLSIZE_DIR names one (or several, separated by ':', e.g. an fp32 export and its
 * `tools.quantize` int8 copy, to compare them in one run on one machine). BLIP_BENCH_THREADS sets
 * ORT intra-op threads (default: all cores). GFLOP counts the model's multiply-adds whatever the
 * weights' type, so an int8 folder's GFLOP/s and % of the fp32 peak read as effective rates.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_SEARCH_CANDIDATES } from '../src/config/load-config.js';
import { createBlipEngine } from '../src/ml/create-blip-engine.js';
import type { ModelManifest } from '../src/ml/manifest/model-manifest.js';
import { matmulChainModel } from '../src/ml/runtime/matmul-graph.js';
import { OnnxSession } from '../src/ml/runtime/onnx-session.js';

const threads = Number(process.env.BLIP_BENCH_THREADS ?? availableParallelism());

async function matmulPeak(): Promise<number> {
  const n = 1024;
  const depth = 4;
  const dir = mkdtempSync(path.join(tmpdir(), 'blip-bench-'));
  const { bytes, flops } = matmulChainModel(n, depth);
  writeFileSync(path.join(dir, 'mm.onnx'), bytes);
  const io = (name: string) => ({ name, dtype: 'float32' as const, shape: [n, n] });
  const s = await OnnxSession.create(dir, 'matmul', { file: 'mm.onnx', inputs: [io('x'), io('w')], outputs: [io('y')] }, { intraOpNumThreads: threads });
  const x = { dtype: 'float32' as const, dims: [n, n], data: new Float32Array(n * n).fill(0.01) };
  await s.run({ x, w: x });
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await s.run({ x, w: x });
    best = Math.min(best, performance.now() - t0);
  }
  await s.release();
  return flops / (best / 1000);
}

interface Arch { L: number; D: number; I: number; heads: number }
function arch(m: ModelManifest, part: 'vision' | 'text'): Arch {
  const c = (m as { config?: Record<string, Record<string, number>> }).config?.[part];
  if (c) return { L: c.num_hidden_layers as number, D: c.hidden_size as number, I: c.intermediate_size as number, heads: c.num_attention_heads as number };
  const D = part === 'vision' ? m.dims.visionHidden : m.dims.textHidden;
  return { L: m.dims.decoderLayers, D, I: 4 * D, heads: m.dims.decoderHeads };
}

/** Multiply-adds x2 of the matmuls (softmax, LayerNorm, GELU left out: a few % at base size). */
function flops(m: ModelManifest) {
  const v = arch(m, 'vision');
  const t = arch(m, 'text');
  const N = m.dims.imageTokens;
  const patch = Math.round(m.image.size / Math.sqrt(N - 1));
  const V = m.text.vocabSize;
  const vision = 2 * (N - 1) * v.D * 3 * patch * patch + v.L * (2 * N * v.D * 4 * v.D + 4 * N * N * v.D + 4 * N * v.D * v.I);
  const textLayer = (T: number) => 2 * T * t.D * 4 * t.D + 4 * T * T * t.D + 4 * T * t.D * t.I;
  const crossLayer = (T: number, S: number) => 2 * T * t.D * 2 * t.D + 4 * S * v.D * t.D + 4 * T * S * t.D;
  const text = (T: number) => t.L * textLayer(T);
  const itm = (T: number) => t.L * (textLayer(T) + crossLayer(T, N));
  const crossKv = (S: number, Denc: number) => t.L * 4 * S * Denc * t.D;
  const step = (P: number, S: number) => t.L * (2 * t.D * 4 * t.D + 4 * (P + 1) * t.D + 2 * t.D * 2 * t.D + 4 * S * t.D + 4 * t.D * t.I) + 2 * t.D * t.D + 2 * t.D * V;
  return { vision, text, itm, crossKv, step, N, Dv: v.D, Dt: t.D };
}

async function timeIt(fn: () => Promise<unknown>, reps: number): Promise<number> {
  await fn();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await fn();
  return (performance.now() - t0) / reps;
}

async function benchModel(modelDir: string, peak: number): Promise<void> {
  const engine = await createBlipEngine({ modelDir, workers: 1, threads, verify: 'size' });
  const m = engine.manifest;
  const f = flops(m);
  const image = await engine.loadImage(readFileSync('test/golden/images/scene.png'));
  const fresh = () => ({ ...image });
  const rows: Array<[string, number, number]> = [];
  const big = f.vision > 1e9;
  const reps = big ? 2 : 10;

  const batch = 8;
  const tEmbed = (await timeIt(() => engine.embedImages(Array.from({ length: batch }, fresh)), reps)) / batch;
  rows.push([`embed image (batch ${batch}, per image)`, tEmbed, f.vision]);

  const d = m.generation.caption;
  const { ids } = await engine.captionIds(fresh(), { numBeams: d.numBeams });
  const gen = ids.length - 1;
  let capFlops = f.vision + f.crossKv(f.N, f.Dv);
  for (let p = 1; p <= gen; p++) capFlops += d.numBeams * f.step(p, f.N);
  const tCap = await timeIt(() => engine.caption(fresh(), { numBeams: d.numBeams }), big ? 1 : 3);
  rows.push([`caption (beam ${d.numBeams}, ${gen} steps, incl. vision)`, tCap, capFlops]);

  const text = 'a small red circle above a large blue square';
  const T = engine.countTokens(text);
  rows.push([`embed text (${T} tokens)`, await timeIt(() => engine.embedText(text), reps * 2), f.text(T)]);

  const enc = await engine.embedImage(fresh());
  const cands = 16;
  const tItm = (await timeIt(() => engine.itmScores(text, Array.from({ length: cands }, () => enc.itmStates)), reps)) / cands;
  rows.push([`ITM (${cands} candidates, per candidate)`, tItm, f.itm(T)]);
  if (!big) {
    // What a default re-ranked search spends in ITM (SearchService: runs of `cands` = ITM_BATCH_SIZE).
    // At full size this is DEFAULT_SEARCH_CANDIDATES x the row above (tens of seconds), so not run.
    const all = Array.from({ length: DEFAULT_SEARCH_CANDIDATES }, () => enc.itmStates);
    const tRerank = await timeIt(async () => {
      for (let i = 0; i < all.length; i += cands) await engine.itmScores(text, all.slice(i, i + cands));
    }, 3);
    rows.push([`ITM re-rank, ${DEFAULT_SEARCH_CANDIDATES} candidates (SEARCH_CANDIDATES)`, tRerank, DEFAULT_SEARCH_CANDIDATES * f.itm(T)]);
  }

  const q = 'what color is the circle?';
  const Tq = engine.countTokens(q);
  const ans = await engine.answerIds(fresh(), q);
  let vqaFlops = f.vision + f.itm(Tq) + f.crossKv(Tq, f.Dt);
  for (let p = 1; p < ans.length; p++) vqaFlops += f.step(p, Tq);
  rows.push([`VQA (${ans.length - 1} steps, incl. vision)`, await timeIt(() => engine.answer(fresh(), q), reps), vqaFlops]);
  await engine.close();

  const int8 = m.quantization ? `, ${m.quantization.weights} weights` : '';
  console.log(`\n${m.modelId} (${modelDir}${int8}), image ${m.image.size}px, ${threads} ORT thread(s), matmul peak ${(peak / 1e9).toFixed(1)} GFLOP/s`);
  console.log(`${'operation'.padEnd(46)} ${'ms'.padStart(9)} ${'GFLOP'.padStart(9)} ${'GFLOP/s'.padStart(9)} ${'% peak'.padStart(7)}`);
  for (const [name, ms, fl] of rows) {
    const rate = fl / (ms / 1000);
    console.log(`${name.padEnd(46)} ${ms.toFixed(2).padStart(9)} ${(fl / 1e9).toFixed(4).padStart(9)} ${(rate / 1e9).toFixed(2).padStart(9)} ${((100 * rate) / peak).toFixed(1).padStart(7)}`);
  }
}

const peak = await matmulPeak();
const bundled = existsSync('models/blip-scenes/manifest.json') ? 'models/blip-scenes' : 'test/fixtures/tiny-random';
await benchModel(bundled, peak);
const full = process.env.BLIP_BENCH_FULLSIZE_DIR;
if (full) for (const dir of full.split(path.delimiter).filter(Boolean)) await benchModel(dir, peak);
else console.log('\n(set BLIP_BENCH_FULLSIZE_DIR to a full-size export folder to bench it too)');
