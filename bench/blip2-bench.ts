/**
 * BLIP-2 lines of `npm run bench` (bench/ml-bench.ts), for the folders in BLIP2_BENCH_DIR
 * (':'-separated; e.g. the full-width random export of `npm run test:blip2` and its int8 copy):
 *
 * - ms per generated token, greedy and beam 3, beside the memory-bandwidth limit: a decoder step
 *   reads every weight of the language model once (the tied LM head reads the whole embedding
 *   table), so at one row it cannot beat weight bytes / bandwidth. The bandwidth is measured here
 *   as onnxruntime streams it: a 1 GB chain of fp32 [1 x 4096] x [4096 x 4096] products, the
 *   access pattern of a decoder step. The same figure bounds the int8 copy (bytes are bytes; an
 *   int8 chain measured lower than the int8 decoder itself ran, its per-call activation
 *   quantization dominating at 16 MB a product).
 * - vision encoder and Q-Former: ms, GFLOP (counted from the manifest's config), GFLOP/s.
 * - resident memory the real Salesforce/blip2-opt-2.7b needs, computed from its parameter counts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createBlip2Engine } from '../src/ml/blip2/onnx-blip2-engine.js';
import { OnnxSession } from '../src/ml/runtime/onnx-session.js';
import { floatTensor } from '../src/ml/runtime/tensor.js';
import { writeMatmulChain, type Shape } from './synthetic-graph.js';

interface Blip2Dims {
  vision: { hidden_size: number; intermediate_size: number; num_hidden_layers: number; image_size: number; patch_size: number };
  qformer: { hidden_size: number; intermediate_size: number; num_hidden_layers: number; cross_attention_frequency: number; encoder_hidden_size: number };
  text: { hidden_size: number; ffn_dim: number; num_hidden_layers: number; vocab_size: number; max_position_embeddings: number };
  num_query_tokens: number;
}

/** Salesforce/blip2-opt-2.7b (tools/blip2/model.py opt_2_7b_config). */
export const OPT_2_7B: Blip2Dims = {
  vision: { hidden_size: 1408, intermediate_size: 6144, num_hidden_layers: 39, image_size: 224, patch_size: 14 },
  qformer: { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, cross_attention_frequency: 2, encoder_hidden_size: 1408 },
  text: { hidden_size: 2560, ffn_dim: 10240, num_hidden_layers: 32, vocab_size: 50272, max_position_embeddings: 2048 },
  num_query_tokens: 32,
};

/** Parameter counts per part, as the HF checkpoint holds them (tied LM head counted once). */
export function blip2Params(c: Blip2Dims) {
  const v = c.vision;
  const n = (v.image_size / v.patch_size) ** 2 + 1;
  const D = v.hidden_size;
  const vision = D + 3 * D * v.patch_size ** 2 + D + n * D + 2 * D
    + v.num_hidden_layers * (3 * D * D + 3 * D + D * D + D + 2 * D * v.intermediate_size + v.intermediate_size + D + 4 * D);
  const q = c.qformer;
  const H = q.hidden_size;
  let qformer = 2 * H + c.num_query_tokens * H;
  for (let i = 0; i < q.num_hidden_layers; i++) {
    qformer += 4 * H * H + 4 * H + 2 * H; // self-attention + its output LayerNorm
    if (i % q.cross_attention_frequency === 0) qformer += 2 * H * H + 2 * H * q.encoder_hidden_size + 4 * H + 2 * H;
    qformer += 2 * H * q.intermediate_size + q.intermediate_size + H + 2 * H;
  }
  const t = c.text;
  const d = t.hidden_size;
  const projection = H * d + d;
  const layer = 4 * d * d + 4 * d + 2 * d * t.ffn_dim + t.ffn_dim + d + 4 * d;
  const llmMatmul = t.num_hidden_layers * (4 * d * d + 2 * d * t.ffn_dim);
  const llm = t.num_hidden_layers * layer + t.vocab_size * d + (t.max_position_embeddings + 2) * d + 2 * d;
  return { vision, qformer, projection, llm, llmMatmul, embedding: t.vocab_size * d, total: vision + qformer + projection + llm };
}

/** Bytes one decoder step reads: every layer weight and the tied LM head (the whole table). */
function stepBytes(c: Blip2Dims, int8: boolean): number {
  const p = blip2Params(c);
  const d = c.text.hidden_size;
  const small = c.text.num_hidden_layers * (4 * d + c.text.ffn_dim + d + 4 * d) * 4; // biases, LayerNorms (fp32)
  return int8 ? p.llmMatmul + p.embedding + small : (p.llmMatmul + p.embedding) * 4 + small;
}

function visionGflop(c: Blip2Dims): number {
  const v = c.vision;
  const n = (v.image_size / v.patch_size) ** 2 + 1;
  const D = v.hidden_size;
  const patch = 2 * (n - 1) * 3 * v.patch_size ** 2 * D;
  return (patch + v.num_hidden_layers * (2 * n * (4 * D * D + 2 * D * v.intermediate_size) + 4 * n * n * D)) / 1e9;
}

function qformerGflop(c: Blip2Dims): number {
  const q = c.qformer;
  const Q = c.num_query_tokens;
  const H = q.hidden_size;
  const n = (c.vision.image_size / c.vision.patch_size) ** 2 + 1;
  let f = 0;
  for (let i = 0; i < q.num_hidden_layers; i++) {
    f += 2 * Q * 4 * H * H + 4 * Q * Q * H + 2 * Q * 2 * H * q.intermediate_size;
    if (i % q.cross_attention_frequency === 0) f += 2 * Q * 2 * H * H + 2 * n * 2 * q.encoder_hidden_size * H + 4 * Q * n * H;
  }
  return (f + 2 * Q * H * c.text.hidden_size) / 1e9;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/**
 * onnxruntime streaming 1 GB of fp32 weights through [1 x K] products: `probe()` returns GB/s of
 * one run. Run in turns with the thing measured (the second vCPU of these VMs is sometimes busy:
 * only figures taken side by side compare).
 */
async function bandwidthProbe(threads: number): Promise<{ probe: () => Promise<number>; close: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'blip2-bw-'));
  const shapes: Shape[] = Array.from({ length: 16 }, () => [4096, 4096]);
  const bytes = await writeMatmulChain(path.join(dir, 'chain.onnx'), 1, shapes, false);
  const s = await OnnxSession.create(dir, 'chain', {
    file: 'chain.onnx', inputs: [{ name: 'x', dtype: 'float32', shape: [1, 4096] }], outputs: [{ name: 'y', dtype: 'float32', shape: [1, 4096] }],
  }, { intraOpNumThreads: threads });
  const x = floatTensor(new Float32Array(4096).fill(0.01), [1, 4096]);
  await s.run({ x });
  return {
    probe: async () => {
      const t0 = performance.now();
      await s.run({ x });
      return bytes / ((performance.now() - t0) / 1000) / 1e9;
    },
    close: async () => {
      await s.release();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function benchBlip2(dirs: string[], threads: number): Promise<unknown[]> {
  const { probe, close } = await bandwidthProbe(threads);
  const bws: number[] = [];
  const results: unknown[] = [];
  for (const dir of dirs) {
    // Folders run one after another in this process: a later one may reuse memory an earlier one
    // freed, so its figure is a lower bound.
    const rss0 = process.memoryUsage().rss;
    const engine = await createBlip2Engine({ modelDir: dir, workers: 0, threads, verify: 'size' });
    const rssLoaded = (process.memoryUsage().rss - rss0) / 1e6;
    const m = engine.manifest;
    const c = (m as unknown as { config: Blip2Dims }).config;
    const int8 = !!m.quantization;
    const s = m.image.size;
    const pixels = floatTensor(Float32Array.from({ length: 3 * s * s }, (_, i) => Math.sin(i) * 0.5), [1, 3, s, s]);
    const image = { info: { format: 'png', mimeType: 'image/png', width: s, height: s, hasAlpha: false }, pixels: pixels.data };
    const vis: number[] = [];
    const qf: number[] = [];
    let queries = await engine.queryEmbeds(await engine.imageEmbeds(image));
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const states = await engine.imageEmbeds(image);
      const t1 = performance.now();
      queries = await engine.queryEmbeds(states);
      vis.push(t1 - t0);
      qf.push(performance.now() - t1);
    }
    const prompt = engine.promptIds('how many circles are there?');
    const modelBw: number[] = [];
    const perToken = async (beams: number) => {
      const out: number[] = [];
      for (let r = 0; r < 3; r++) {
        modelBw.push(await probe());
        const t0 = performance.now();
        const ids = await engine.generate(queries, prompt, { maxNewTokens: 12, numBeams: beams });
        out.push((performance.now() - t0) / Math.max(1, ids.length));
      }
      return median(out);
    };
    const greedy = await perToken(1);
    const beam = await perToken(3);
    const bw = median(modelBw);
    bws.push(...modelBw);
    const limitMs = (stepBytes(c, int8) / 1e9 / bw) * 1000;
    const vg = visionGflop(c);
    const qg = qformerGflop(c);
    const r = {
      model: m.modelId, dir, int8, llmLayers: c.text.num_hidden_layers, stepMB: stepBytes(c, int8) / 1e6,
      greedyMsPerToken: greedy, beam3MsPerToken: beam, bandwidthGBs: bw, bandwidthLimitMs: limitMs,
      visionMs: median(vis), visionGflop: vg, qformerMs: median(qf), qformerGflop: qg, rssLoadedMB: rssLoaded,
    };
    console.log(`\n${m.modelId} (${dir}${int8 ? ', int8 language model' : ''}): LLM ${c.text.num_hidden_layers} layers, ${r.stepMB.toFixed(0)} MB read per token; resident +${rssLoaded.toFixed(0)} MB loaded`);
    console.log(`  greedy ${greedy.toFixed(1)} ms/token, beam 3 ${beam.toFixed(1)} ms/step (incl. the prompt step); bandwidth ${bw.toFixed(1)} GB/s (1 GB of 1 x 4096 fp32 products, in turns with the runs) -> limit ${limitMs.toFixed(1)} ms/token, ${(greedy / limitMs).toFixed(2)}x the limit`);
    console.log(`  vision encoder ${r.visionMs.toFixed(0)} ms (${vg.toFixed(1)} GFLOP, ${(vg / (r.visionMs / 1000)).toFixed(0)} GFLOP/s); Q-Former + projection ${r.qformerMs.toFixed(1)} ms (${qg.toFixed(2)} GFLOP, ${(qg / (r.qformerMs / 1000)).toFixed(0)} GFLOP/s)`);
    results.push(r);
    await engine.close();
  }
  await close();
  const bw = median(bws);
  const p = blip2Params(OPT_2_7B);
  const gb = (x: number) => (x / 1e9).toFixed(2);
  const fp32 = p.total * 4;
  const fp16 = p.total * 2;
  const int8Llm = (p.vision + p.qformer + p.projection) * 4 + p.llmMatmul + (p.llm - p.llmMatmul) * 4;
  console.log(`\nSalesforce/blip2-opt-2.7b (${(p.total / 1e9).toFixed(3)} B parameters: vision ${(p.vision / 1e9).toFixed(3)} B, Q-Former ${(p.qformer / 1e6).toFixed(0)} M, OPT ${(p.llm / 1e9).toFixed(3)} B): weights ${gb(fp32)} GB fp32, ${gb(fp16)} GB fp16, ${gb(int8Llm)} GB with the int8 language model (vision, Q-Former and the embedding table fp32)`);
  const full = { fp32: stepBytes(OPT_2_7B, false), int8: stepBytes(OPT_2_7B, true) };
  console.log(`  per token it reads ${gb(full.fp32)} GB (fp32) / ${gb(full.int8)} GB (int8): at the median bandwidth above (${bw.toFixed(1)} GB/s), at best ${(full.fp32 / 1e9 / bw * 1000).toFixed(0)} / ${(full.int8 / 1e9 / bw * 1000).toFixed(0)} ms per token; vision ${visionGflop(OPT_2_7B).toFixed(0)} GFLOP, Q-Former ${qformerGflop(OPT_2_7B).toFixed(1)} GFLOP per image`);
  return [{ bandwidthGBs: bw, params: p, models: results }];
}
