import { EngineClosedError } from '../errors.js';
import type { GenerateJob, InferenceJob, JobExecutor } from './inference-job.js';
import { concat, sliceBatch, type TensorData, type TensorMap } from './tensor.js';

/** Interactive work (search, ITM re-ranking, VQA) goes before background work (ingest). */
export type Priority = 'interactive' | 'background';

/** Options of {@link InferenceScheduler}. */
export interface SchedulerOptions {
  /** Largest number of batch rows merged into one run. Default 8. */
  maxBatchSize?: number;
  /** How long a batchable request may wait for companions when an executor is free. Default 2 ms. */
  maxWaitMs?: number;
  /**
   * Executors background work may not occupy, so interactive work always finds one free.
   * Default 1 when there are several executors, else 0.
   */
  reservedInteractive?: number;
  /** Graphs whose runs may be merged along axis 0 (every input and output has batch first). */
  batchableGraphs?: Iterable<string>;
}

interface Item {
  job: InferenceJob;
  priority: Priority;
  key: string | null;
  rows: number;
  enqueuedAt: number;
  resolve: (r: TensorMap | number[]) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  executor: JobExecutor;
  jobs: number;
  background: number;
  generating: boolean;
}

/** How many recent run jobs `SchedulerStats.runs` keeps: the service runs for months. */
export const RECENT_RUNS_KEPT = 256;

/** What the scheduler did: for tests and the bench. */
export interface SchedulerStats {
  /** The most recent run jobs (at most RECENT_RUNS_KEPT), oldest first: graph and merged row count. */
  runs: Array<{ graph: string; rows: number; requests: number; priority: Priority }>;
  /** Run jobs executed since start, per graph. */
  runsByGraph: Record<string, number>;
  generations: number;
}

/**
 * Queues inference jobs in two priority lanes over a fixed set of executors (worker threads).
 * Runs on the same batchable graph with equal non-batch dims are merged along axis 0 up to
 * `maxBatchSize`, waiting at most `maxWaitMs` for companions. Background work never takes the
 * reserved executors; an interactive run may also join an executor that is busy generating,
 * because workers interleave jobs between decoder steps.
 */
export class InferenceScheduler {
  private readonly lanes: Record<Priority, Item[]> = { interactive: [], background: [] };
  private readonly slots: Slot[];
  private readonly maxBatchSize: number;
  private readonly maxWaitMs: number;
  private readonly reserved: number;
  private readonly batchable: Set<string>;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  readonly stats: SchedulerStats = { runs: [], runsByGraph: {}, generations: 0 };

  constructor(executors: JobExecutor[], options: SchedulerOptions = {}) {
    if (executors.length === 0) throw new RangeError('the scheduler needs at least one executor');
    this.slots = executors.map((executor) => ({ executor, jobs: 0, background: 0, generating: false }));
    this.maxBatchSize = options.maxBatchSize ?? 8;
    this.maxWaitMs = options.maxWaitMs ?? 2;
    this.reserved = Math.min(options.reservedInteractive ?? (executors.length > 1 ? 1 : 0), executors.length - 1);
    this.batchable = new Set(options.batchableGraphs ?? []);
  }

  /** Runs `graph`, possibly merged with other requests. Outputs are this request's rows only. */
  run(graph: string, feeds: TensorMap, priority: Priority): Promise<TensorMap> {
    return this.enqueue({ kind: 'run', graph, feeds }, priority) as Promise<TensorMap>;
  }

  /** Runs a whole generation on one executor. */
  generate(job: GenerateJob, priority: Priority): Promise<number[]> {
    return this.enqueue(job, priority) as Promise<number[]>;
  }

  private enqueue(job: InferenceJob, priority: Priority): Promise<TensorMap | number[]> {
    if (this.closed) return Promise.reject(new EngineClosedError());
    return new Promise((resolve, reject) => {
      let key: string | null = null;
      let rows = 1;
      if (job.kind === 'run' && this.batchable.has(job.graph)) {
        const entries = Object.entries(job.feeds).sort(([a], [b]) => (a < b ? -1 : 1));
        key = `${job.graph}|${entries.map(([n, t]) => `${n}:${t.dtype}[${t.dims.slice(1).join(',')}]`).join('|')}`;
        rows = entries[0]?.[1].dims[0] ?? 1;
      }
      this.lanes[priority].push({ job, priority, key, rows, enqueuedAt: performance.now(), resolve, reject });
      this.pump();
    });
  }

  private findSlot(priority: Priority, job: InferenceJob): Slot | undefined {
    const idle = this.slots.find((s) => s.jobs === 0);
    if (priority === 'background') {
      const busyBackground = this.slots.filter((s) => s.background > 0).length;
      return busyBackground < this.slots.length - this.reserved ? idle : undefined;
    }
    if (idle) return idle;
    // a worker busy generating takes one interactive run between its decoder steps
    return job.kind === 'run' ? this.slots.find((s) => s.generating && s.jobs === 1) : undefined;
  }

  private pump(): void {
    if (this.closed) return;
    let nextDeadline = Number.POSITIVE_INFINITY;
    for (;;) {
      let dispatched = false;
      for (const priority of ['interactive', 'background'] as const) {
        const lane = this.lanes[priority];
        for (let i = 0; i < lane.length && !dispatched; i++) {
          const item = lane[i] as Item;
          const slot = this.findSlot(priority, item.job);
          if (!slot) continue;
          let group = [item];
          if (item.key !== null) {
            group = [item];
            let rows = item.rows;
            for (const other of lane) {
              if (other !== item && other.key === item.key && rows + other.rows <= this.maxBatchSize) {
                group.push(other);
                rows += other.rows;
              }
            }
            const deadline = item.enqueuedAt + this.maxWaitMs;
            if (rows < this.maxBatchSize && performance.now() < deadline) {
              nextDeadline = Math.min(nextDeadline, deadline);
              continue;
            }
          }
          this.lanes[priority] = lane.filter((x) => !group.includes(x));
          this.dispatch(slot, group);
          dispatched = true;
        }
        if (dispatched) break;
      }
      if (!dispatched) break;
    }
    if (nextDeadline !== Number.POSITIVE_INFINITY && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.pump();
      }, Math.max(0, nextDeadline - performance.now()));
    }
  }

  private dispatch(slot: Slot, group: Item[]): void {
    const first = group[0] as Item;
    const background = first.priority === 'background';
    slot.jobs++;
    if (background) slot.background++;
    const generating = first.job.kind === 'generate';
    if (generating) slot.generating = true;
    const done = (): void => {
      slot.jobs--;
      if (background) slot.background--;
      if (generating) slot.generating = false;
      this.pump();
    };
    if (first.job.kind === 'generate') {
      this.stats.generations++;
      slot.executor.execute(first.job).then(first.resolve, first.reject).finally(done);
      return;
    }
    const graph = first.job.graph;
    const jobs = group.map((g) => g.job as { feeds: TensorMap });
    const feeds: TensorMap = {};
    for (const name of Object.keys(jobs[0]?.feeds ?? {})) feeds[name] = concat(jobs.map((j) => j.feeds[name] as TensorData), 0);
    const totalRows = group.reduce((s, g) => s + g.rows, 0);
    this.stats.runs.push({ graph, rows: group.length === 1 ? first.rows : totalRows, requests: group.length, priority: first.priority });
    if (this.stats.runs.length > RECENT_RUNS_KEPT) this.stats.runs.shift();
    this.stats.runsByGraph[graph] = (this.stats.runsByGraph[graph] ?? 0) + 1;
    slot.executor
      .execute({ kind: 'run', graph, feeds, ownsFeeds: group.length > 1 })
      .then(
        (out) => {
          if (group.length === 1) {
            first.resolve(out);
            return;
          }
          let start = 0;
          for (const g of group) {
            const part: TensorMap = {};
            for (const [name, t] of Object.entries(out)) part[name] = sliceBatch(t, start, start + g.rows);
            start += g.rows;
            g.resolve(part);
          }
        },
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
