/**
 * `npx tsx bench/caption-profile.ts MODEL_DIR [ROUNDS]`: where one beam caption's time goes, as
 * the inference worker runs it (src/ml/runtime/inference-host.ts `generate`): the captioning vision
 * graph, the cross-attention key/value graph, each decoder run, and the JavaScript between runs
 * (beam search, cache writes and reordering, feeds). In-process sessions with every core, no
 * service around them; docs/performance.md quotes its output.
 */
import { availableParallelism } from 'node:os';
import sharp from 'sharp';
import { IO } from '../src/ml/blip/blip-io-names.js';
import { KvCacheDecoder } from '../src/ml/blip/kv-cache-decoder.js';
import { createBlipEngine } from '../src/ml/create-blip-engine.js';
import { beamSearch } from '../src/ml/generation/beam-search.js';
import type { GenerationConfig } from '../src/ml/generation/generation-config.js';
import { BufferPool } from '../src/ml/runtime/buffer-pool.js';
import { OnnxSession } from '../src/ml/runtime/onnx-session.js';
import { floatTensor, type FloatTensor, type TensorMap } from '../src/ml/runtime/tensor.js';
import { BertTokenizer } from '../src/ml/tokenizer/bert-tokenizer.js';

const dir = process.argv[2];
if (!dir) throw new Error('usage: npx tsx bench/caption-profile.ts MODEL_DIR [ROUNDS]');
const rounds = Number(process.argv[3] ?? 3);
const threads = availableParallelism();

// The engine decodes the image as the service does; the graphs then run here, timed one by one.
const engine = await createBlipEngine({ modelDir: dir, workers: 1, threads: 1, verify: 'size', warmUp: false });
const m = engine.manifest;
const png = await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 0, g: 0, b: 0 }, noise: { type: 'gaussian', mean: 120, sigma: 40 } } }).png().toBuffer();
const image = await engine.loadImage(png);
await engine.close();
const tokenizer = await BertTokenizer.load(dir, m);
const task = m.tasks.caption;
const open = (g: string) => OnnxSession.create(dir, g, m.graphs[g]!, { intraOpNumThreads: threads });
const [vision, crossKv, decoder] = [await open(task.vision), await open(task.crossKv), await open(task.decoder)];
const d = m.generation.caption;
const config: GenerationConfig = { maxLength: d.maxLength, minLength: d.minLength, numBeams: d.numBeams, repetitionPenalty: d.repetitionPenalty, eosTokenId: m.text.specialTokens.sep };
const prefix = tokenizer.decoderPrefix(d.prompt);
const size = m.image.size;
const sum = (x: number[]) => x.reduce((p, q) => p + q, 0);
const median = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)] ?? NaN;

for (let round = 0; round < rounds; round++) {
  const decoderMs: number[] = [];
  const jsMs: number[] = [];
  const t0 = performance.now();
  const states = (await vision.run({ [IO.pixelValues]: floatTensor(Float32Array.from(image.pixels), [1, 3, size, size]) }, [IO.imageEmbeds]))[IO.imageEmbeds] as FloatTensor;
  const t1 = performance.now();
  const cross = (await crossKv.run({ [IO.encoderHiddenStates]: states }))[IO.crossKv] as FloatTensor;
  const t2 = performance.now();
  let last = performance.now();
  const run = async (_graph: string, feeds: TensorMap, outputs?: string[]) => {
    const start = performance.now();
    jsMs.push(start - last);
    const out = await decoder.run(feeds, outputs);
    last = performance.now();
    decoderMs.push(last - start);
    return out;
  };
  const dec = new KvCacheDecoder(run, task.decoder, cross, config.maxLength, new BufferPool());
  const ids = await beamSearch(dec, prefix, config);
  jsMs.push(performance.now() - last);
  dec.release();
  console.log(
    `round ${round}: ${(performance.now() - t0).toFixed(0)} ms for ${ids.length - prefix.length} tokens: vision ${(t1 - t0).toFixed(0)}, ` +
      `cross K/V ${(t2 - t1).toFixed(0)}, ${decoderMs.length} decoder runs ${sum(decoderMs).toFixed(0)} (median ${median(decoderMs).toFixed(1)}), ` +
      `JavaScript between runs ${sum(jsMs).toFixed(0)}`,
  );
}
await Promise.all([vision, crossKv, decoder].map((s) => s.release()));
