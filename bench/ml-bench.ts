/**
 * `npm run bench [-- --json FILE] [-- --images N]`: what the running service costs, beside what
 * this machine could do at best.
 *
 * - Peaks from bench/peak-probe.c (fp32 FMA and int8 dot-product chains on every core), measured
 *   before and after; limits are FLOPs / peak.
 * - The service's own configuration (loadConfig of this environment: INFERENCE_WORKERS,
 *   INFERENCE_THREADS, ITM_BATCH_SIZE, SEARCH_CANDIDATES...) and code paths: ingest and search go
 *   through startApplication, IngestService and GraphQL over HTTP on a scratch SQLite data folder.
 * - Per operation: ms, GFLOP (Hugging Face's count and ours where they differ), % of peak.
 * - A decoder step beside a synthetic graph of the same matrix shapes, run in turns in this process.
 * - Event-loop delay (p99, max) while the models run, resident memory against the weights loaded.
 *
 * Models: the bundled one, plus each folder in BLIP_BENCH_FULLSIZE_DIR (':'-separated, e.g. the
 * `npm run test:fullsize` export and its `tools/quantize.py` int8 copy). BLIP-2 folders in
 * BLIP2_BENCH_DIR (':'-separated) get their own lines (bench/blip2-bench.ts).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import sharp from 'sharp';
import { startApplication } from '../src/app.js';
import { loadConfig } from '../src/config/load-config.js';
import { createLogger } from '../src/lib/logger.js';
import type { LoadedImage } from '../src/ml/blip-engine.js';
import { IO } from '../src/ml/blip/blip-io-names.js';
import { KvCacheDecoder } from '../src/ml/blip/kv-cache-decoder.js';
import type { OnnxBlipEngine } from '../src/ml/blip/onnx-blip-engine.js';
import { createBlipEngine } from '../src/ml/create-blip-engine.js';
import { BufferPool } from '../src/ml/runtime/buffer-pool.js';
import { OnnxSession } from '../src/ml/runtime/onnx-session.js';
import { floatTensor, type FloatTensor } from '../src/ml/runtime/tensor.js';
import { benchBlip2 } from './blip2-bench.js';
import { flopModel } from './flops.js';
import { measurePeak, type Peak } from './peak.js';
import { decoderStepShapes, writeMatmulChain } from './synthetic-graph.js';

const args = parseArgs({ options: { json: { type: 'string' }, images: { type: 'string' } } }).values;
const cores = availableParallelism();
const env = { ...process.env, LOG_LEVEL: 'silent', SEED_SAMPLES: 'false', PORT: '0', HOST: '127.0.0.1' };
const base = loadConfig(env);
const threads = base.models.threads ?? Math.max(1, Math.floor(cores / base.models.workers));
/** The reference machine of the issue's absolute targets (Zen 5, 2 cores): fp32 FMA peak. */
const REFERENCE_FP32_PEAK = 430e9;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function timeMedian(fn: () => Promise<unknown>, reps: number): Promise<number> {
  await fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

/**
 * GraphQL clients on a worker thread: each post() is one request, sent and parsed there. Inline
 * CommonJS source, so that the thread needs no TypeScript loader.
 */
class HttpClients {
  private readonly worker = new Worker(
    `const { parentPort } = require('node:worker_threads');
     parentPort.on('message', async ({ id, url, body }) => {
       try {
         const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
         const json = await res.json();
         parentPort.postMessage({ id, error: json.errors ? JSON.stringify(json.errors) : null });
       } catch (e) {
         parentPort.postMessage({ id, error: String(e) });
       }
     });`,
    { eval: true },
  );
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private next = 1;
  constructor() {
    this.worker.on('message', ({ id, error }: { id: number; error: string | null }) => {
      const p = this.pending.get(id);
      this.pending.delete(id);
      if (error) p?.reject(new Error(error));
      else p?.resolve();
    });
  }
  post(url: string, body: unknown): Promise<void> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, url, body: JSON.stringify(body) });
    });
  }
  close(): Promise<number> {
    return this.worker.terminate();
  }
}

interface Row { op: string; ms: number; gflopHf: number; gflop: number; peak: 'fp32' | 'int8' }
interface Target { what: string; value: number; limit: number; unit: string; ok: boolean; note?: string }

/** Photo-like inputs: a JPEG of noise and shapes at 640 x 480, distinct bytes each. */
async function photo(i: number): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="640" height="480"><circle cx="${100 + ((i * 53) % 440)}" cy="${120 + ((i * 31) % 240)}" r="${40 + (i % 60)}" fill="rgb(${(i * 67) % 256},${(i * 29) % 256},${(i * 151) % 256})"/></svg>`;
  return sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 0, g: 0, b: 0 }, noise: { type: 'gaussian', mean: 120 + (i % 40), sigma: 40 } } })
    .composite([{ input: Buffer.from(svg) }])
    .jpeg({ quality: 85 })
    .toBuffer();
}

function graphBytes(dir: string, m: OnnxBlipEngine['manifest']): number {
  const used = new Set(Object.values(m.tasks).flatMap((t) => Object.values(t)));
  return [...used].reduce((s, g) => s + statSync(path.join(dir, (m.graphs[g] as { file: string }).file)).size, 0);
}

/** The decoder step as the engine runs it (KvCacheDecoder over the session) beside the synthetic chain, in turns. */
async function decoderStep(dir: string, engine: OnnxBlipEngine, image: LoadedImage): Promise<{ realMs: number; syntheticMs: number; weightBytes: number; rows: number }> {
  const m = engine.manifest;
  const task = m.tasks.caption;
  const opts = { intraOpNumThreads: threads };
  const [vision, crossKv, decoder] = await Promise.all([
    OnnxSession.create(dir, task.vision, m.graphs[task.vision]!, opts),
    OnnxSession.create(dir, task.crossKv, m.graphs[task.crossKv]!, opts),
    OnnxSession.create(dir, task.decoder, m.graphs[task.decoder]!, opts),
  ]);
  const s = m.image.size;
  const states = (await vision.run({ [IO.pixelValues]: floatTensor(Float32Array.from(image.pixels), [1, 3, s, s]) }, [IO.imageEmbeds]))[IO.imageEmbeds] as FloatTensor;
  const cross = (await crossKv.run({ [IO.encoderHiddenStates]: states }))[IO.crossKv] as FloatTensor;
  const cfg = (m as { config?: { text?: { intermediate_size?: number } } }).config;
  const rows = m.generation.caption.numBeams;
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'blip-bench-')), 'synthetic.onnx');
  const weightBytes = await writeMatmulChain(file, rows, decoderStepShapes(m.dims.decoderLayers, m.dims.textHidden, cfg?.text?.intermediate_size ?? 4 * m.dims.textHidden, m.text.vocabSize, m.dims.imageTokens), !!m.quantization);
  const synthetic = await OnnxSession.create(path.dirname(file), 'synthetic', {
    file: 'synthetic.onnx',
    inputs: [{ name: 'x', dtype: 'float32', shape: [rows, m.dims.textHidden] }],
    outputs: [{ name: 'y', dtype: 'float32', shape: [rows, m.text.vocabSize] }],
  }, opts);
  const x = floatTensor(new Float32Array(rows * m.dims.textHidden).fill(0.1), [rows, m.dims.textHidden]);
  const pool = new BufferPool();
  const real: number[] = [];
  const synth: number[] = [];
  const run = (g: string, feeds: Parameters<OnnxSession['run']>[0], outputs?: string[]) => decoder.run(feeds, outputs);
  for (let round = 0; round < 3; round++) {
    const dec = new KvCacheDecoder(run, task.decoder, cross, 24, pool);
    const seqs = Array.from({ length: rows }, () => [m.text.specialTokens.dec]);
    for (let step = 0; step < 16; step++) {
      const t0 = performance.now();
      await dec.step(seqs, step === 0 ? null : seqs.map((_, i) => (i + step) % rows));
      if (step > 1) real.push(performance.now() - t0);
      seqs.forEach((q, i) => q.push(5 + ((i * 7 + step * 13) % (m.text.vocabSize - 10))));
      const t1 = performance.now();
      await synthetic.run({ x });
      if (step > 1) synth.push(performance.now() - t1);
    }
    dec.release();
  }
  await Promise.all([vision, crossKv, decoder, synthetic].map((x) => x.release()));
  rmSync(path.dirname(file), { recursive: true, force: true });
  return { realMs: median(real), syntheticMs: median(synth), weightBytes, rows };
}

async function benchModel(dir: string, peaks: { fp32: Peak; int8: Peak }, images: number) {
  const rssBefore = process.memoryUsage().rss;
  const config = loadConfig({ ...env, MODEL_DIR: dir, DATA_DIR: mkdtempSync(path.join(tmpdir(), 'blip-bench-data-')) });
  const engine = await createBlipEngine({
    modelDir: dir,
    workers: config.models.workers,
    threads: config.models.threads,
    itmBatchSize: config.models.itmBatchSize,
    verify: 'size',
  });
  const rssLoaded = process.memoryUsage().rss;
  const m = engine.manifest;
  const int8 = !!m.quantization;
  const peakKind = int8 ? 'int8' : 'fp32';
  const peak = peaks[peakKind].gops * 1e9;
  const f = flopModel(m);
  const full = f.vision > 1e9;
  const reps = full ? 3 : 10;
  const sample = await engine.loadImage(await photo(0));
  const fresh = (): LoadedImage => ({ ...sample });
  const rows: Row[] = [];
  const add = (op: string, ms: number, gflopHf: number, gflop = gflopHf) => rows.push({ op, ms, gflopHf: gflopHf / 1e9, gflop: gflop / 1e9, peak: peakKind });

  add('embed image (retrieval vision graph)', await timeMedian(() => engine.embedImage(fresh()), reps), f.vision);
  const beams = m.generation.caption.numBeams;
  const { ids } = await engine.captionIds(fresh());
  const generated = ids.length - 1;
  const sharedVision = m.tasks.caption.vision === m.tasks.retrieval.vision;
  add(`caption (beam ${beams}, ${generated} tokens, incl. its vision graph)`, await timeMedian(() => engine.caption(fresh()), full ? 2 : reps), f.caption(generated, beams, true));
  const text = 'a small red circle above a large blue square';
  const T = engine.countTokens(text);
  add(`embed text (${T} tokens)`, await timeMedian(() => engine.embedText(text), reps * 2), f.text(T));
  const enc = await engine.embedImage(fresh());
  const sixteen = Array.from({ length: 16 }, () => enc.itmStates);
  add('ITM, 16 candidates (one call)', await timeMedian(() => engine.itmScores(text, sixteen), reps), 16 * f.itmHf(T), 16 * f.itm(T));
  const q = 'what color is the circle?';
  const Tq = engine.countTokens(q);
  const ans = await engine.answerIds(fresh(), q);
  let vqaFlops = f.vision + f.itmHf(Tq) + f.crossKv(Tq, f.Dt);
  for (let p = 1; p < ans.length; p++) vqaFlops += f.step(p, Tq);
  add(`VQA (${ans.length - 1} tokens, incl. its vision graph)`, await timeMedian(() => engine.answer(fresh(), q), reps), vqaFlops, vqaFlops - f.itmHf(Tq) + f.itm(Tq));
  const step = await decoderStep(dir, engine, sample);
  add(`decoder step (${step.rows} rows)`, step.realMs, step.rows * f.step(10, f.N));
  add(`synthetic step, same matrix shapes (${(step.weightBytes / 1e6).toFixed(0)} MB of weights)`, step.syntheticMs, step.rows * (f.step(10, f.N) - f.Dt * 0));

  // The service: startApplication with this engine, ingest and search as clients do.
  const app = await startApplication(config, engine, createLogger('silent'));
  const url = `http://127.0.0.1:${app.port}/graphql`;
  // The searching clients run in a thread of their own, as they would in another process: their
  // HTTP and JSON work stays off the service's event loop, whose delay is measured below (with
  // them on it, eight clients added their own turns to the service's stalls).
  const http = new HttpClients();
  const search = (textQ: string, candidates?: number) =>
    http.post(url, { query: `query($t: String!, $c: Int) { searchImages(text: $t, first: 10, candidates: $c) { totalCount } }`, variables: { t: textQ, c: candidates ?? null } });
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  // Where the event loop stalls: a histogram per phase, and the longest garbage collection.
  const phases: Record<string, { p99: number; max: number; gcMax: number }> = {};
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const h = monitorEventLoopDelay({ resolution: 1 });
    let gcMax = 0;
    const gc = new PerformanceObserver((list) => list.getEntries().forEach((e) => (gcMax = Math.max(gcMax, e.duration))));
    gc.observe({ entryTypes: ['gc'] });
    h.enable();
    try {
      return await fn();
    } finally {
      h.disable();
      gc.disconnect();
      phases[name] = { p99: h.percentile(99) / 1e6, max: h.max / 1e6, gcMax };
    }
  };
  const photos = await Promise.all(Array.from({ length: images + 1 }, (_, i) => photo(i + 1)));
  const ingest = (b: Buffer) => app.ingest.ingestImage({ source: { kind: 'base64', data: b.toString('base64') } });
  await ingest(photos[0] as Buffer);
  const single: number[] = [];
  await phase('ingest, one at a time', async () => {
    for (const b of photos.slice(1, 4)) {
      const t0 = performance.now();
      await ingest(b);
      single.push(performance.now() - t0);
    }
  });
  const rest = photos.slice(4);
  const t0 = performance.now();
  let next = 0;
  const gen0 = { ...engine.scheduler.stats };
  await phase('ingest, 4 clients', () => Promise.all(Array.from({ length: 4 }, async () => {
    while (next < rest.length) await ingest(rest[next++] as Buffer);
  })));
  const throughput = rest.length / ((performance.now() - t0) / 1000);
  // Captions the 4 clients' ingests asked for per generation job that ran them (merged when > 1).
  const captionsPerGeneration = (engine.scheduler.stats.generations - gen0.generations) / Math.max(1, engine.scheduler.stats.generationJobs - gen0.generationJobs);
  const ingestFlops = f.vision * (sharedVision ? 1 : 2) + f.caption(generated, beams, false) + f.itmHf(12);
  add('ingest one image (service: decode, 2 vision graphs, caption, ITM, files, DB)', median(single), ingestFlops, ingestFlops - f.itmHf(12) + f.itm(12));

  const words = ['red', 'blue', 'green', 'yellow', 'purple', 'orange', 'circle', 'square', 'star', 'triangle'];
  let w = 0;
  const query = () => `a ${words[w++ % words.length]} ${words[(w * 3) % words.length]} on the left ${w}`;
  const itmRows = () => engine.scheduler.stats.itmRows;
  const search16: number[] = [];
  const searchDefault: number[] = [];
  let r0 = 0;
  await phase('search', async () => {
    for (let i = 0; i < 5; i++) {
      const t1 = performance.now();
      await search(query(), 16);
      search16.push(performance.now() - t1);
    }
    r0 = itmRows();
    for (let i = 0; i < 3; i++) {
      const t1 = performance.now();
      await search(query());
      searchDefault.push(performance.now() - t1);
    }
  });
  const defaultCandidates = (itmRows() - r0) / 3;

  // Under contention (issue 40): search latency idle and while ingests run; ingest time idle and
  // while clients keep searching. The run gate keeps a share of the worker for ingest.
  const extra = photos.length;
  const more = await Promise.all(Array.from({ length: 8 }, (_, i) => photo(extra + i + 1)));
  const searchIdle: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t1 = performance.now();
    await search(query(), 16);
    searchIdle.push(performance.now() - t1);
  }
  const searchBusy: number[] = [];
  let ingesting = true;
  const stream = (async () => {
    for (const b of more.slice(0, 4)) await ingest(b);
    ingesting = false;
  })();
  await phase('search during ingest', async () => {
    while (ingesting) {
      const t1 = performance.now();
      await search(query(), 16);
      searchBusy.push(performance.now() - t1);
    }
  });
  await stream;
  const clients = full ? 8 : 20;
  let searching = true;
  const searchers = Array.from({ length: clients }, async () => {
    while (searching) await search(query(), 16);
  });
  const ingestBusy: number[] = [];
  await phase(`ingest during ${clients} searching clients`, async () => {
    for (const b of more.slice(4)) {
      const t1 = performance.now();
      await ingest(b);
      ingestBusy.push(performance.now() - t1);
    }
  });
  searching = false;
  await Promise.all(searchers);
  const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))] as number;
  const contention = {
    searchIdleMedianMs: median(searchIdle), searchIdleP99Ms: p99(searchIdle), searchDuringIngestMedianMs: median(searchBusy), searchDuringIngestP99Ms: p99(searchBusy),
    ingestIdleMs: median(single), ingestDuringSearchesMs: median(ingestBusy), searchingClients: clients,
  };
  const Ts = 14;
  add('search, 16 candidates (GraphQL over HTTP)', median(search16), f.text(Ts) + 16 * f.itmHf(Ts), f.text(Ts) + 16 * f.itm(Ts));
  add(`search, default candidates (${defaultCandidates})`, median(searchDefault), f.text(Ts) + defaultCandidates * f.itmHf(Ts), f.text(Ts) + defaultCandidates * f.itm(Ts));
  loop.disable();
  const rssPeak = process.resourceUsage().maxRSS * 1024;
  await http.close();
  await app.stop();
  rmSync(config.dataDir, { recursive: true, force: true });

  const weights = graphBytes(dir, m);
  const memory = (rssLoaded - rssBefore) / weights;
  const refScale = REFERENCE_FP32_PEAK / (peaks.fp32.gops * 1e9);
  const limit = (gflop: number) => (gflop * 1e9) / peak;
  const row = (name: string) => rows.find((r) => r.op.startsWith(name)) as Row;
  const ingestRow = row('ingest one image');
  const s16 = row('search, 16');
  const sDef = row('search, default');
  const targets: Target[] = int8
    ? [
        { what: 'ingest per image <= 3x its FLOP limit', value: ingestRow.ms / 1000, limit: 3 * limit(ingestRow.gflopHf), unit: 's', ok: false },
        { what: 'search with 16 candidates <= 2x its FLOP limit', value: s16.ms / 1000, limit: 2 * limit(s16.gflopHf), unit: 's', ok: false },
        { what: 'ingest throughput >= 2 images/s (scaled to this peak)', value: throughput, limit: 2 / refScale, unit: 'images/s', ok: false },
      ]
    : [
        { what: 'ingest per image <= 1.5x its FLOP limit', value: ingestRow.ms / 1000, limit: 1.5 * limit(ingestRow.gflopHf), unit: 's', ok: false },
        { what: 'search with 16 candidates <= 1.3x its FLOP limit', value: s16.ms / 1000, limit: 1.3 * limit(s16.gflopHf), unit: 's', ok: false },
        { what: 'search with the default candidates <= 2 s (scaled to this peak)', value: sDef.ms / 1000, limit: 2 * refScale, unit: 's', ok: false },
        { what: 'ingest throughput >= 1 image/s (scaled to this peak)', value: throughput, limit: 1 / refScale, unit: 'images/s', ok: false },
      ];
  targets.push(
    { what: `ingest during ${contention.searchingClients} searching clients <= 3x its idle time`, value: contention.ingestDuringSearchesMs / contention.ingestIdleMs, limit: 3, unit: 'x', ok: false },
    { what: 'event-loop delay p99 during ingest and search', value: loop.percentile(99) / 1e6, limit: 20, unit: 'ms', ok: false },
    { what: 'event-loop delay max during ingest and search', value: loop.max / 1e6, limit: 50, unit: 'ms', ok: false },
    { what: 'resident memory of the loaded engine <= 1.5x its weights', value: memory, limit: 1.5, unit: 'x', ok: false },
    { what: 'decoder step <= 1.2x the synthetic step', value: step.realMs / step.syntheticMs, limit: 1.2, unit: 'x', ok: false },
  );
  for (const t of targets) t.ok = t.unit === 'images/s' ? t.value >= t.limit : t.value <= t.limit;
  return {
    model: m.modelId, dir, int8, fullSize: full, threads, workers: config.models.workers, itmBatchSize: config.models.itmBatchSize,
    weightsMB: weights / 1e6, rssLoadedMB: (rssLoaded - rssBefore) / 1e6, rssPeakMB: rssPeak / 1e6,
    ingestThroughput: throughput, captionsPerGeneration, defaultCandidates, rows, targets, contention,
    eventLoop: { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6, phases },
  };
}

function print(r: Awaited<ReturnType<typeof benchModel>>, peaks: { fp32: Peak; int8: Peak }) {
  const peak = (r.int8 ? peaks.int8 : peaks.fp32).gops;
  console.log(`\n${r.model} (${r.dir}${r.int8 ? ', int8 weights' : ''}): ${r.workers} worker x ${r.threads} threads, ITM batch ${r.itmBatchSize}, weights ${r.weightsMB.toFixed(0)} MB`);
  console.log(`${'operation'.padEnd(72)} ${'ms'.padStart(9)} ${'GFLOP HF'.padStart(9)} ${'GFLOP run'.padStart(9)} ${'limit ms'.padStart(9)} ${'x limit'.padStart(8)} ${'% peak'.padStart(7)}`);
  for (const row of r.rows) {
    const lim = (row.gflopHf / peak) * 1000;
    const eff = (100 * row.gflop) / peak / (row.ms / 1000);
    console.log(`${row.op.padEnd(72)} ${row.ms.toFixed(1).padStart(9)} ${row.gflopHf.toFixed(2).padStart(9)} ${row.gflop.toFixed(2).padStart(9)} ${lim.toFixed(1).padStart(9)} ${(row.ms / lim).toFixed(2).padStart(8)} ${eff.toFixed(1).padStart(7)}`);
  }
  console.log(`ingest throughput ${r.ingestThroughput.toFixed(2)} images/s (4 concurrent clients, ${r.captionsPerGeneration.toFixed(1)} captions per generation run); event loop p50 ${r.eventLoop.p50.toFixed(1)} / p99 ${r.eventLoop.p99.toFixed(1)} / max ${r.eventLoop.max.toFixed(1)} ms; resident memory +${r.rssLoadedMB.toFixed(0)} MB loaded, ${r.rssPeakMB.toFixed(0)} MB peak (process)`);
  const c = r.contention;
  console.log(`contention: search (16 candidates) median ${c.searchIdleMedianMs.toFixed(0)} ms (p99 ${c.searchIdleP99Ms.toFixed(0)}) idle, ${c.searchDuringIngestMedianMs.toFixed(0)} ms (p99 ${c.searchDuringIngestP99Ms.toFixed(0)}) during ingest; ingest ${c.ingestIdleMs.toFixed(0)} ms idle, ${c.ingestDuringSearchesMs.toFixed(0)} ms during ${c.searchingClients} searching clients`);
  console.log(`event loop by phase: ${Object.entries(r.eventLoop.phases).map(([n, p]) => `${n} p99 ${p.p99.toFixed(1)} / max ${p.max.toFixed(1)} ms (longest GC ${p.gcMax.toFixed(1)} ms)`).join('; ')}`);
  if (!r.fullSize) {
    console.log('(targets apply to BLIP-base shapes: set BLIP_BENCH_FULLSIZE_DIR)');
    return;
  }
  console.log('targets:');
  for (const t of r.targets) console.log(`  ${t.ok ? 'ok  ' : 'MISS'} ${t.what.padEnd(60)} ${t.value.toFixed(3).padStart(9)} ${t.unit.padEnd(8)} limit ${t.limit.toFixed(3)}`);
}

// One model per child process, so that resident memory is that model's alone.
if (process.env.BLIP_BENCH_ONE) {
  const peaks = JSON.parse(process.env.BLIP_BENCH_PEAKS ?? '{}') as { fp32: Peak; int8: Peak };
  const dir = process.env.BLIP_BENCH_ONE;
  const full = !dir.startsWith('models/') && !dir.startsWith('test/');
  const r = await benchModel(dir, peaks, Number(args.images ?? (full ? 48 : 40)));
  print(r, peaks);
  process.stdout.write(`\nBENCH-RESULT ${JSON.stringify(r)}\n`);
  process.exit(0);
}

const measure = () => ({ fp32: measurePeak('fp32', cores), int8: measurePeak('int8', cores) });
const before = measure();
console.log(`peaks before: fp32 ${before.fp32.gops.toFixed(1)} GFLOP/s (${before.fp32.isa}), int8 ${before.int8.gops.toFixed(1)} GOP/s (${before.int8.isa}), ${cores} cores`);
// The service's own node flags come from `npm run bench` (package.json, checked against the start
// scripts by test/tooling/container.test.ts); each model's child process inherits them.
const nodeFlags = process.execArgv.filter((a) => /^--[a-z-]+$/.test(a) && a !== '--require' && a !== '--import');
console.log(`node flags: ${nodeFlags.join(' ') || '(none: run it as npm run bench, which starts node as the service does)'}`);
const dirs = [readFileSync('models/blip-scenes/manifest.json') ? 'models/blip-scenes' : 'test/fixtures/tiny-random', ...(process.env.BLIP_BENCH_FULLSIZE_DIR ?? '').split(path.delimiter).filter(Boolean)];
const results: unknown[] = [];
for (const dir of dirs) {
  const out = execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    env: { ...process.env, BLIP_BENCH_ONE: dir, BLIP_BENCH_PEAKS: JSON.stringify(before) },
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  }).toString();
  const marker = out.lastIndexOf('BENCH-RESULT ');
  process.stdout.write(out.slice(0, marker));
  results.push(JSON.parse(out.slice(marker + 'BENCH-RESULT '.length)));
}
const blip2Dirs = (process.env.BLIP2_BENCH_DIR ?? '').split(path.delimiter).filter(Boolean);
if (blip2Dirs.length > 0) results.push(...(await benchBlip2(blip2Dirs, threads)));
else console.log('(set BLIP2_BENCH_DIR to BLIP-2 folders, e.g. .cache/blip2-fullsize/blip2-random:.cache/blip2-fullsize/blip2-random-int8, to bench them)');
const after = measure();
console.log(`\npeaks after: fp32 ${after.fp32.gops.toFixed(1)} GFLOP/s, int8 ${after.int8.gops.toFixed(1)} GOP/s (limits use the peaks before)`);
if (!process.env.BLIP_BENCH_FULLSIZE_DIR) console.log('(set BLIP_BENCH_FULLSIZE_DIR to full-size export folders to bench them too)');
if (args.json) writeFileSync(args.json, JSON.stringify({ machine: { cores, peaksBefore: before, peaksAfter: after }, nodeFlags, results }, null, 2));
