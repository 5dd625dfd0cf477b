import { KvCacheDecoder } from '../blip/kv-cache-decoder.js';
import { IO } from '../blip/blip-io-names.js';
import { InferenceAbortedError, ModelFormatError } from '../errors.js';
import { runSearches } from '../generation/run-searches.js';
import { searchFor } from '../generation/search-for.js';
import type { GraphManifest } from '../manifest/model-manifest.js';
import { OptKvDecoder } from '../blip2/opt-kv-decoder.js';
import { BufferPool } from './buffer-pool.js';
import type { InferenceJob, ItmJob, JobExecutor, JobResult, LmGenerateJob, MergedGenerateJob, MergedRunJob, Priority } from './inference-job.js';
import { OnnxSession, type SessionOptions } from './onnx-session.js';
import { RunGate } from './run-gate.js';
import { isShared, SHARE_ABOVE_BYTES } from './shared-memory.js';
import { concat, sliceBatch, type FloatTensor, type TensorData, type TensorMap } from './tensor.js';

/** Options of {@link InferenceHost.open}. */
export interface InferenceHostOptions extends SessionOptions {
  /** Graph names to load; default: every graph the manifest's tasks name. */
  graphs?: string[];
  /** Run each graph once on zeros after loading. Default true. */
  warmUp?: boolean;
  /** Share of the worker's time background runs keep while interactive runs wait. Default 0.4. */
  backgroundShare?: number;
}

/**
 * Owns the ORT sessions of one model folder and executes jobs on them. Lives inside an inference
 * worker thread (or in-process for tests and the event-loop control measurement). Several jobs
 * may be in progress at once; their graph runs take turns through a {@link RunGate}.
 */
export class InferenceHost implements JobExecutor {
  private readonly pool = new BufferPool();
  private readonly gate: RunGate;

  private constructor(private readonly sessions: Map<string, OnnxSession>, options: InferenceHostOptions) {
    this.gate = new RunGate(options.backgroundShare);
  }

  /** Loads (and warms up) the sessions. Blocks its thread for the loads. */
  static async open(modelDir: string, manifest: GraphManifest, options: InferenceHostOptions = {}): Promise<InferenceHost> {
    const names = options.graphs ?? [...new Set(Object.values(manifest.tasks).flatMap((t) => Object.values(t)))];
    const sessions = new Map<string, OnnxSession>();
    try {
      for (const name of names) {
        const spec = manifest.graphs[name];
        if (!spec) throw new ModelFormatError(`unknown graph "${name}"; the manifest defines: ${Object.keys(manifest.graphs).join(', ')}`);
        const session = await OnnxSession.create(modelDir, name, spec, options);
        sessions.set(name, session);
        if (options.warmUp ?? true) await session.warmUp();
      }
    } catch (err) {
      await Promise.all([...sessions.values()].map((s) => s.release()));
      throw err;
    }
    return new InferenceHost(sessions, options);
  }

  /** Runs one graph by manifest name, when the gate gives `priority` its turn (unless `signal` aborts first). */
  async run(graph: string, feeds: TensorMap, outputs?: string[], priority: Priority = 'interactive', signal?: AbortSignal): Promise<TensorMap> {
    if (signal?.aborted) throw new InferenceAbortedError();
    const session = this.sessions.get(graph);
    if (!session) throw new ModelFormatError(`graph "${graph}" is not loaded; loaded: ${[...this.sessions.keys()].join(', ')}`);
    // onnxruntime-node rejects typed arrays over shared memory: copy those into pooled buffers.
    const borrowed: ArrayBuffer[] = [];
    const own: TensorMap = {};
    for (const [name, t] of Object.entries(feeds)) {
      if (!isShared(t.data)) {
        own[name] = t;
        continue;
      }
      const buffer = this.pool.acquire(t.data.byteLength);
      borrowed.push(buffer);
      const Ctor = t.data.constructor as new (b: ArrayBuffer, o: number, n: number) => typeof t.data;
      const copy = new Ctor(buffer, 0, t.data.length);
      (copy as Float32Array).set(t.data as Float32Array);
      own[name] = { ...t, data: copy } as typeof t;
    }
    try {
      return await this.gate.run(priority, () => {
        if (signal?.aborted) throw new InferenceAbortedError();
        return session.run(own, outputs);
      });
    } finally {
      for (const b of borrowed) this.pool.release(b);
    }
  }

  async execute<J extends InferenceJob>(job: J, priority: Priority = 'interactive', signal?: AbortSignal): Promise<JobResult<J>> {
    const result = job.kind === 'run'
      ? await this.run(job.graph, job.feeds, job.outputs, priority, signal)
      : job.kind === 'runMerged'
        ? await this.runMerged(job, priority, signal)
        : job.kind === 'generate'
        ? (await this.generate({ ...job, kind: 'generateMerged', parts: [job.encoderStates] }, priority, signal))[0]
        : job.kind === 'generateMerged'
        ? await this.generate(job, priority, signal)
        : job.kind === 'lmGenerate'
          ? await this.lmGenerate(job, priority, signal)
          : await this.itm(job, priority, signal);
    return result as JobResult<J>;
  }

  /**
   * One run over the parts' feeds joined along axis 0, its outputs split back into parts, here on
   * the inference thread: the event loop would otherwise copy every row twice (join, split).
   */
  private async runMerged(job: MergedRunJob, priority: Priority, signal?: AbortSignal): Promise<TensorMap[]> {
    const feeds: TensorMap = {};
    for (const name of Object.keys(job.parts[0] ?? {})) feeds[name] = concat(job.parts.map((p) => p[name] as TensorData), 0);
    const out = await this.run(job.graph, feeds, job.outputs, priority, signal);
    let start = 0;
    return job.parts.map((part) => {
      const rows = Object.values(part)[0]?.dims[0] ?? 1;
      const own: TensorMap = {};
      for (const [name, t] of Object.entries(out)) own[name] = sliceBatch(t, start, start + rows, (t.data.byteLength / (t.dims[0] ?? 1)) * rows > SHARE_ABOVE_BYTES);
      start += rows;
      return own;
    });
  }

  /**
   * One generation per part: the cross-attention keys and values of all parts in one run, then
   * their searches in lockstep, one decoder run per step (src/ml/generation/run-searches.ts).
   */
  private async generate(job: MergedGenerateJob, priority: Priority, signal?: AbortSignal): Promise<number[][]> {
    const out = await this.run(job.crossKvGraph, { [IO.encoderHiddenStates]: concat(job.parts, 0) }, [IO.crossKv], priority, signal);
    const run = (graph: string, feeds: TensorMap, outputs?: string[]) => this.run(graph, feeds, outputs, priority, signal);
    const decoder = new KvCacheDecoder(run, job.decoderGraph, out[IO.crossKv] as FloatTensor, job.config.maxLength, this.pool);
    try {
      return await runSearches(decoder, job.parts.map(() => searchFor(job.prefix, job.config)));
    } finally {
      decoder.release();
    }
  }

  /** A decoder-only generation (BLIP-2's OPT) after prefix embeddings (src/ml/blip2/opt-kv-decoder.ts). */
  private async lmGenerate(job: LmGenerateJob, priority: Priority, signal?: AbortSignal): Promise<number[]> {
    const run = (graph: string, feeds: TensorMap, outputs?: string[]) => this.run(graph, feeds, outputs, priority, signal);
    const decoder = new OptKvDecoder(run, job.decoderGraph, job.prefixEmbeds, job.layout, job.config.maxLength, this.pool);
    try {
      return (await runSearches(decoder, [searchFor(job.prefix, job.config)]))[0] as number[];
    } finally {
      decoder.release();
    }
  }

  /**
   * ITM logits of one text against every image of the job, `job.chunk` rows per run. The batch
   * inputs are assembled here, in pooled buffers, from the states' shared memory.
   */
  private async itm(job: ItmJob, priority: Priority, signal?: AbortSignal): Promise<Float32Array> {
    const n = job.states.length;
    const logits = new Float32Array(n * 2);
    if (n === 0) return logits;
    const first = job.states[0] as ItmJob['states'][number];
    const tokens = first.scales.length;
    const perImage = first.codes.length;
    const T = job.inputIds.length;
    const rowsMax = Math.min(job.chunk, n);
    const codesBuf = this.pool.acquire(rowsMax * perImage);
    const scalesBuf = this.pool.acquire(rowsMax * tokens * 4);
    const idsBuf = this.pool.acquire(rowsMax * T * 8);
    const maskBuf = this.pool.acquire(rowsMax * T * 8);
    try {
      const ids = new BigInt64Array(idsBuf, 0, rowsMax * T);
      const mask = new BigInt64Array(maskBuf, 0, rowsMax * T);
      for (let r = 0; r < rowsMax; r++) {
        job.inputIds.forEach((id, t) => {
          ids[r * T + t] = BigInt(id);
          mask[r * T + t] = 1n;
        });
      }
      for (let start = 0; start < n; start += rowsMax) {
        const rows = Math.min(rowsMax, n - start);
        const codes = new Int8Array(codesBuf, 0, rows * perImage);
        const scales = new Float32Array(scalesBuf, 0, rows * tokens);
        for (let r = 0; r < rows; r++) {
          const s = job.states[start + r] as ItmJob['states'][number];
          if (s.codes.length !== perImage || s.scales.length !== tokens) {
            throw new RangeError(`ITM states ${start + r} have ${s.codes.length} codes and ${s.scales.length} scales; expected ${perImage} and ${tokens}`);
          }
          codes.set(s.codes, r * perImage);
          scales.set(s.scales, r * tokens);
        }
        const out = await this.run(job.graph, {
          [IO.inputIds]: { dtype: 'int64', dims: [rows, T], data: ids.subarray(0, rows * T) },
          [IO.attentionMask]: { dtype: 'int64', dims: [rows, T], data: mask.subarray(0, rows * T) },
          [IO.itmStates]: { dtype: 'int8', dims: [rows, tokens, perImage / tokens], data: codes },
          [IO.itmScales]: { dtype: 'float32', dims: [rows, tokens], data: scales },
        }, [IO.itmLogits], priority, signal);
        logits.set((out[IO.itmLogits] as FloatTensor).data, start * 2);
      }
    } finally {
      for (const b of [codesBuf, scalesBuf, idsBuf, maskBuf]) this.pool.release(b);
    }
    return logits;
  }

  async close(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => s.release()));
    this.sessions.clear();
  }
}
