import { EngineClosedError, InferenceAbortedError } from '../errors.js';
import type { GenerateJob, InferenceJob, ItmJob, JobExecutor, JobResult, LmGenerateJob, MergedGenerateJob, MergedRunJob, Priority } from './inference-job.js';
import type { TensorMap } from './tensor.js';

/** What callers queue; the scheduler itself makes the merged runs. */
type QueuedJob = Exclude<InferenceJob, MergedRunJob | MergedGenerateJob>;

export type { Priority } from './inference-job.js';

/** Options of {@link InferenceScheduler}. */
export interface SchedulerOptions {
  /** Largest number of batch rows merged into one run. Default 8. */
  maxBatchSize?: number;
  /**
   * Largest merged feed, in bytes: merging copies the requests' inputs on the event loop, which
   * pays off for small inputs (the bundled model's 96 px images, texts) and stalls it for large
   * ones (a 384 px image is 1.7 MB). Default 4 MB.
   */
  maxMergeBytes?: number;
  /** How long a batchable request may wait for companions when an executor is free. Default 2 ms. */
  maxWaitMs?: number;
  /**
   * Executors background work may not occupy, so interactive work always finds one without
   * background work. Default 0: each executor runs one interactive and one background job at a
   * time, and its run gate (src/ml/runtime/run-gate.ts) orders their graph runs.
   */
  reservedInteractive?: number;
  /** Graphs whose runs may be merged along axis 0 (every input and output has batch first). */
  batchableGraphs?: Iterable<string>;
  /**
   * Decoder graphs that take cross-attention keys and values per input (docs/model-format.md):
   * generations on them that are queued together, with the same prefix and settings, run as one
   * (MergedGenerateJob), sharing each step's reading of the decoder's weights.
   */
  batchableDecoders?: Iterable<string>;
  /** Most generations merged into one. Default 4. */
  maxGenerateBatch?: number;
  /**
   * Told of each finished job: the graph it ran ('generate' and 'itm' for the composite jobs) and
   * its seconds from dispatch to result (the service's inference-time metric, src/lib/metrics.ts).
   */
  onJobDone?: (graph: string, seconds: number) => void;
}

interface Item {
  job: QueuedJob;
  priority: Priority;
  signal: AbortSignal | undefined;
  key: string | null;
  rows: number;
  bytes: number;
  enqueuedAt: number;
  resolve: (r: TensorMap | number[] | Float32Array) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  executor: JobExecutor;
  running: Record<Priority, number>;
}

/** How many recent run jobs `SchedulerStats.runs` keeps: the service runs for months. */
export const RECENT_RUNS_KEPT = 256;

/** What the scheduler did: for tests, the bench and metrics. */
export interface SchedulerStats {
  /** The most recent run jobs (at most RECENT_RUNS_KEPT), oldest first: graph and merged row count. */
  runs: Array<{ graph: string; rows: number; requests: number; priority: Priority }>;
  /** Run jobs executed since start, per graph. */
  runsByGraph: Record<string, number>;
  /** Generations asked for, and the generation jobs that ran them (fewer when merged). */
  generations: number;
  generationJobs: number;
  /** ITM jobs and the images they scored. */
  itmJobs: number;
  itmRows: number;
}

/**
 * Queues inference jobs in two priority lanes over a fixed set of executors (inference workers).
 * Each executor takes one interactive and one background job at a time; inside the worker their
 * graph runs take turns, interactive first with a guaranteed share for background work, so a
 * search waits for at most one graph run of an ingest, and ingest keeps progressing under a
 * stream of searches. Runs on the same batchable graph with equal non-batch dims are merged
 * along axis 0 up to `maxBatchSize` rows and `maxMergeBytes`, waiting at most `maxWaitMs`.
 */
export class InferenceScheduler {
  private readonly lanes: Record<Priority, Item[]> = { interactive: [], background: [] };
  private readonly slots: Slot[];
  private readonly maxBatchSize: number;
  private readonly maxMergeBytes: number;
  private readonly maxWaitMs: number;
  private readonly reserved: number;
  private readonly batchable: Set<string>;
  private readonly batchableDecoders: Set<string>;
  private readonly maxGenerateBatch: number;
  private timer: NodeJS.Timeout | null = null;
  private readonly onJobDone: SchedulerOptions['onJobDone'];
  private closed = false;
  readonly stats: SchedulerStats = { runs: [], runsByGraph: {}, generations: 0, generationJobs: 0, itmJobs: 0, itmRows: 0 };

  constructor(executors: JobExecutor[], options: SchedulerOptions = {}) {
    if (executors.length === 0) throw new RangeError('the scheduler needs at least one executor');
    this.slots = executors.map((executor) => ({ executor, running: { interactive: 0, background: 0 } }));
    this.maxBatchSize = options.maxBatchSize ?? 8;
    this.maxMergeBytes = options.maxMergeBytes ?? 4 * 1024 * 1024;
    this.maxWaitMs = options.maxWaitMs ?? 2;
    this.reserved = Math.min(options.reservedInteractive ?? 0, executors.length - 1);
    this.batchable = new Set(options.batchableGraphs ?? []);
    this.batchableDecoders = new Set(options.batchableDecoders ?? []);
    this.maxGenerateBatch = options.maxGenerateBatch ?? 4;
    this.onJobDone = options.onJobDone;
  }

  /** Jobs waiting for an executor, per lane (metrics, health). */
  get queued(): Record<Priority, number> {
    return { interactive: this.lanes.interactive.length, background: this.lanes.background.length };
  }

  /**
   * Runs `graph`, possibly merged with other requests. Outputs are this request's rows only.
   * `signal`: the caller gave up; queued work is dropped (a run already started completes).
   */
  run(graph: string, feeds: TensorMap, priority: Priority, outputs?: string[], signal?: AbortSignal): Promise<TensorMap> {
    return this.enqueue({ kind: 'run', graph, feeds, ...(outputs ? { outputs } : {}) }, priority, signal) as Promise<TensorMap>;
  }

  /**
   * Runs a whole generation on one executor; `signal` drops it from the queue or stops it between
   * steps. Generations queued together on a batchable decoder may run as one: a caller that gives
   * up is rejected at once, and the merged generation stops when every caller has given up.
   */
  generate(job: GenerateJob | LmGenerateJob, priority: Priority, signal?: AbortSignal): Promise<number[]> {
    return this.enqueue(job, priority, signal) as Promise<number[]>;
  }

  /** ITM of one text against many images on one executor; logits [n, 2] flattened. `signal` as for generate. */
  itm(job: ItmJob, priority: Priority, signal?: AbortSignal): Promise<Float32Array> {
    return this.enqueue(job, priority, signal) as Promise<Float32Array>;
  }

  private enqueue(job: QueuedJob, priority: Priority, signal?: AbortSignal): Promise<TensorMap | number[] | Float32Array> {
    if (this.closed) return Promise.reject(new EngineClosedError());
    if (signal?.aborted) return Promise.reject(new InferenceAbortedError());
    return new Promise((outerResolve, outerReject) => {
      // A request whose caller gives up leaves the queue at once.
      const onAbort = (): void => {
        const lane = this.lanes[priority];
        const i = lane.indexOf(item);
        if (i >= 0) {
          lane.splice(i, 1);
          settle();
          outerReject(new InferenceAbortedError());
        }
      };
      const settle = (): void => signal?.removeEventListener('abort', onAbort);
      const resolve = (r: TensorMap | number[] | Float32Array): void => {
        settle();
        outerResolve(r);
      };
      const reject = (e: unknown): void => {
        settle();
        outerReject(e);
      };
      let key: string | null = null;
      let rows = 1;
      let bytes = 0;
      if (job.kind === 'run' && this.batchable.has(job.graph)) {
        const entries = Object.entries(job.feeds).sort(([a], [b]) => (a < b ? -1 : 1));
        key = `${job.graph}|${(job.outputs ?? []).join(',')}|${entries.map(([n, t]) => `${n}:${t.dtype}[${t.dims.slice(1).join(',')}]`).join('|')}`;
        rows = entries[0]?.[1].dims[0] ?? 1;
        bytes = entries.reduce((s, [, t]) => s + t.data.byteLength, 0);
      } else if (job.kind === 'generate' && this.batchableDecoders.has(job.decoderGraph) && job.encoderStates.dims[0] === 1) {
        key = `generate|${job.crossKvGraph}|${job.decoderGraph}|${job.prefix.join(',')}|${JSON.stringify(job.config)}|${job.encoderStates.dims.join(',')}`;
      }
      const item: Item = { job, priority, signal, key, rows, bytes, enqueuedAt: performance.now(), resolve, reject };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.lanes[priority].push(item);
      this.pump();
    });
  }

  private findSlot(priority: Priority): Slot | undefined {
    if (priority === 'interactive') {
      // Prefer an executor without background work (the reserved ones are last).
      const free = this.slots.filter((s) => s.running.interactive === 0);
      return free.find((s) => s.running.background === 0) ?? free[0];
    }
    // Background work never enters the reserved executors; prefer one with nothing running.
    const open = this.slots.slice(0, this.slots.length - this.reserved).filter((s) => s.running.background === 0);
    return open.find((s) => s.running.interactive === 0) ?? open[0];
  }

  private pump(): void {
    if (this.closed) return;
    let nextDeadline = Number.POSITIVE_INFINITY;
    for (const priority of ['interactive', 'background'] as const) {
      for (;;) {
        const lane = this.lanes[priority];
        const slot = this.findSlot(priority);
        if (!slot || lane.length === 0) break;
        let chosen: Item[] | null = null;
        for (const item of lane) {
          const group = this.group(item, lane);
          if (group === 'wait') {
            nextDeadline = Math.min(nextDeadline, item.enqueuedAt + this.maxWaitMs);
            continue;
          }
          chosen = group;
          break;
        }
        if (!chosen) break;
        this.lanes[priority] = lane.filter((x) => !(chosen as Item[]).includes(x));
        this.dispatch(slot, chosen);
      }
    }
    if (nextDeadline !== Number.POSITIVE_INFINITY && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.pump();
      }, Math.max(0, nextDeadline - performance.now()));
    }
  }

  /** The requests to run with `item`, or 'wait' while companions may still come. */
  private group(item: Item, lane: Item[]): Item[] | 'wait' {
    if (item.key === null) return [item];
    if (item.job.kind === 'generate') {
      // A generation takes the ones queued with it and waits for none: it runs for seconds, and
      // while it runs the next ones queue up (ingest under load merges two to four).
      return [item, ...lane.filter((o) => o !== item && o.key === item.key)].slice(0, this.maxGenerateBatch);
    }
    const group = [item];
    let rows = item.rows;
    let bytes = item.bytes;
    for (const other of lane) {
      if (other !== item && other.key === item.key && rows + other.rows <= this.maxBatchSize && bytes + other.bytes <= this.maxMergeBytes) {
        group.push(other);
        rows += other.rows;
        bytes += other.bytes;
      }
    }
    const full = rows >= this.maxBatchSize || bytes + item.bytes / item.rows > this.maxMergeBytes;
    return !full && performance.now() < item.enqueuedAt + this.maxWaitMs ? 'wait' : group;
  }

  private dispatch(slot: Slot, group: Item[]): void {
    const first = group[0] as Item;
    const priority = first.priority;
    slot.running[priority]++;
    const startedAt = performance.now();
    const label = first.job.kind === 'run' ? first.job.graph : first.job.kind;
    const done = (): void => {
      slot.running[priority]--;
      this.onJobDone?.(label, (performance.now() - startedAt) / 1000);
      this.pump();
    };
    if (first.job.kind === 'generate' && group.length > 1) {
      this.stats.generations += group.length;
      this.stats.generationJobs++;
      const { encoderStates: _, ...common } = first.job;
      const parts = group.map((g) => (g.job as GenerateJob).encoderStates);
      // A caller that gives up is answered at once; the generation stops when all of them have.
      const stop = new AbortController();
      const open = new Set(group);
      const leave = group.map((g) => {
        const onAbort = (): void => {
          if (!open.delete(g)) return;
          g.reject(new InferenceAbortedError());
          if (open.size === 0) stop.abort();
        };
        g.signal?.addEventListener('abort', onAbort, { once: true });
        return () => g.signal?.removeEventListener('abort', onAbort);
      });
      slot.executor
        .execute({ ...common, kind: 'generateMerged', parts }, priority, stop.signal)
        .then(
          (ids) => group.forEach((g, i) => open.has(g) && g.resolve(ids[i] as number[])),
          (err: unknown) => group.forEach((g) => open.has(g) && g.reject(err)),
        )
        .finally(() => {
          leave.forEach((f) => f());
          done();
        });
      return;
    }
    if (first.job.kind !== 'run') {
      if (first.job.kind === 'generate' || first.job.kind === 'lmGenerate') {
        this.stats.generations++;
        this.stats.generationJobs++;
      } else {
        this.stats.itmJobs++;
        this.stats.itmRows += first.job.states.length;
      }
      (slot.executor.execute(first.job, priority, first.signal) as Promise<JobResult<QueuedJob>>).then(first.resolve, first.reject).finally(done);
      return;
    }
    const { graph, outputs, feeds } = first.job;
    const totalRows = group.reduce((s, g) => s + g.rows, 0);
    this.stats.runs.push({ graph, rows: group.length === 1 ? first.rows : totalRows, requests: group.length, priority });
    if (this.stats.runs.length > RECENT_RUNS_KEPT) this.stats.runs.shift();
    this.stats.runsByGraph[graph] = (this.stats.runsByGraph[graph] ?? 0) + 1;
    const opt = outputs ? { outputs } : {};
    if (group.length === 1) {
      slot.executor.execute({ kind: 'run', graph, feeds, ...opt }, priority, first.signal).then(first.resolve, first.reject).finally(done);
      return;
    }
    // A merged run serves several callers: it is not cancelled for one of them. The executor
    // joins and splits the rows (inference-job.ts, MergedRunJob).
    const parts = group.map((g) => (g.job as { feeds: TensorMap }).feeds);
    slot.executor
      .execute({ kind: 'runMerged', graph, parts, ...opt }, priority)
      .then(
        (outs) => group.forEach((g, i) => g.resolve(outs[i] as TensorMap)),
        (err: unknown) => group.forEach((g) => g.reject(err)),
      )
      .finally(done);
  }

  /** Rejects queued work and closes every executor. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const lane of Object.values(this.lanes)) for (const item of lane) item.reject(new EngineClosedError());
    await Promise.all(this.slots.map((s) => s.executor.close()));
  }
}
