import { describe, expect, it } from 'vitest';
import type { InferenceJob, JobExecutor, JobResult } from '../../src/ml/runtime/inference-job.js';
import { InferenceScheduler, RECENT_RUNS_KEPT } from '../../src/ml/runtime/inference-scheduler.js';
import { floatTensor, type TensorMap } from '../../src/ml/runtime/tensor.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

class FakeExecutor implements JobExecutor {
  log: Array<{ job: InferenceJob; start: number; end: number }> = [];
  constructor(private readonly delayMs: (job: InferenceJob) => number) {}
  async execute<J extends InferenceJob>(job: J): Promise<JobResult<J>> {
    return (await this.executeAny(job)) as JobResult<J>;
  }
  private async executeAny(job: InferenceJob): Promise<TensorMap | TensorMap[] | number[] | Float32Array> {
    const start = performance.now();
    await sleep(this.delayMs(job));
    this.log.push({ job, start, end: performance.now() });
    if (job.kind === 'generate' || job.kind === 'lmGenerate') return [1, 2, 3];
    if (job.kind === 'itm') return new Float32Array(job.states.length * 2);
    const double = (feeds: TensorMap): TensorMap => ({ y: floatTensor(Float32Array.from(feeds.x!.data as Float32Array, (v) => v * 2), [...feeds.x!.dims]) });
    return job.kind === 'runMerged' ? job.parts.map(double) : double(job.feeds);
  }
  async close(): Promise<void> {}
}

const row = (v: number): TensorMap => ({ x: floatTensor(Float32Array.from([v, v]), [1, 2]) });

describe('InferenceScheduler batching', () => {
  it('merges concurrent runs of a batchable graph up to maxBatchSize and splits the outputs', async () => {
    const exec = new FakeExecutor(() => 20);
    const s = new InferenceScheduler([exec], { maxBatchSize: 4, maxWaitMs: 5, batchableGraphs: ['enc'] });
    const outs = await Promise.all([1, 2, 3, 4, 5, 6].map((v) => s.run('enc', row(v), 'background')));
    expect(outs.map((o) => Array.from(o.y!.data as Float32Array))).toEqual([1, 2, 3, 4, 5, 6].map((v) => [2 * v, 2 * v]));
    expect(s.stats.runs.map((r) => r.rows)).toEqual([4, 2]);
    expect(exec.log).toHaveLength(2);
    // The executor gets each caller's feeds as they are: the scheduler copies no rows.
    expect(exec.log.map((l) => l.job.kind)).toEqual(['runMerged', 'runMerged']);
    const first = exec.log[0]!.job as Extract<InferenceJob, { kind: 'runMerged' }>;
    expect(first.parts.map((p) => Array.from(p.x!.data as Float32Array))).toEqual([[1, 1], [2, 2], [3, 3], [4, 4]]);
  });
  it('does not merge graphs that are not batchable, nor different shapes', async () => {
    const exec = new FakeExecutor(() => 5);
    const s = new InferenceScheduler([exec], { maxBatchSize: 8, maxWaitMs: 5, batchableGraphs: ['enc'] });
    await Promise.all([
      s.run('dec', row(1), 'interactive'), s.run('dec', row(2), 'interactive'),
      s.run('enc', row(1), 'interactive'), s.run('enc', { x: floatTensor(new Float32Array(3), [1, 3]) }, 'interactive'),
    ]);
    expect(s.stats.runs.every((r) => r.requests === 1)).toBe(true);
  });
  it('keeps only the most recent runs in its stats, and counts all of them per graph', async () => {
    const s = new InferenceScheduler([new FakeExecutor(() => 0)], { maxBatchSize: 1, maxWaitMs: 0, batchableGraphs: [] });
    const total = RECENT_RUNS_KEPT + 40;
    for (let i = 0; i < total; i++) await s.run(i % 2 ? 'a' : 'b', row(i), 'interactive');
    expect(s.stats.runs).toHaveLength(RECENT_RUNS_KEPT);
    expect(s.stats.runsByGraph).toEqual({ a: total / 2, b: total / 2 });
    expect(s.stats.runs.at(-1)?.graph).toBe('a');
  });
  it('a lone request waits at most maxWaitMs for companions', async () => {
    const s = new InferenceScheduler([new FakeExecutor(() => 0)], { maxBatchSize: 8, maxWaitMs: 10, batchableGraphs: ['enc'] });
    const t0 = performance.now();
    await s.run('enc', row(1), 'interactive');
    const dt = performance.now() - t0;
    expect(dt).toBeGreaterThanOrEqual(9);
    // Loose on purpose: timers fire late on a loaded CI core; a scheduler that waited for a full
    // batch would never return at all.
    expect(dt).toBeLessThan(250);
  });
});

describe('InferenceScheduler cancellation', () => {
  it('EXPECTED FAILURE - a queued request whose caller gives up leaves the queue and is never run', async () => {
    const exec = new FakeExecutor(() => 30);
    const s = new InferenceScheduler([exec], { maxBatchSize: 1, maxWaitMs: 0 });
    const first = s.run('a', row(1), 'interactive');
    const abort = new AbortController();
    const second = s.run('b', row(2), 'interactive', undefined, abort.signal);
    expect(s.queued.interactive).toBe(1);
    abort.abort();
    await expect(second).rejects.toMatchObject({ code: 'ABORTED' });
    expect(s.queued.interactive).toBe(0);
    await first;
    expect(exec.log.map((l) => (l.job as { graph: string }).graph)).toEqual(['a']);
  });
});

describe('InferenceScheduler priorities', () => {
  it('interactive work is not queued behind background work (reserved executor)', async () => {
    const execs = [new FakeExecutor(() => 40), new FakeExecutor(() => 40)];
    const s = new InferenceScheduler(execs, { maxBatchSize: 1, maxWaitMs: 0, batchableGraphs: [], reservedInteractive: 1 });
    const done: string[] = [];
    const bg = Array.from({ length: 6 }, (_, i) => s.run('caption', row(i), 'background').then(() => done.push(`bg${i}`)));
    await sleep(5);
    await s.run('text', row(9), 'interactive').then(() => done.push('text'));
    expect(done.filter((d) => d.startsWith('bg')).length).toBeLessThanOrEqual(1);
    await Promise.all(bg);
    expect(execs.map((e) => e.log.filter((l) => (l.job as { graph: string }).graph === 'caption').length)).toContain(0);
  });
  it('with one executor, queued interactive work runs before queued background work', async () => {
    const exec = new FakeExecutor(() => 15);
    const s = new InferenceScheduler([exec], { maxBatchSize: 1, maxWaitMs: 0 });
    const order: string[] = [];
    const jobs = [0, 1, 2, 3].map((i) => s.run('bg', row(i), 'background').then(() => order.push(`bg${i}`)));
    jobs.push(s.run('fg', row(0), 'interactive').then(() => order.push('fg')));
    await Promise.all(jobs);
    expect(order.indexOf('fg')).toBeLessThanOrEqual(1);
  });
  it('an interactive run joins an executor that is busy generating (workers interleave between steps)', async () => {
    const exec = new FakeExecutor((j) => (j.kind === 'generate' ? 200 : 5));
    const s = new InferenceScheduler([exec], { maxWaitMs: 0 });
    const gen = s.generate({ kind: 'generate', crossKvGraph: 'c', decoderGraph: 'd', encoderStates: floatTensor(new Float32Array(1), [1, 1, 1]), prefix: [1], config: { maxLength: 5, minLength: 0, numBeams: 1, repetitionPenalty: 1, eosTokenId: 2 } }, 'background');
    await sleep(5);
    await s.run('text', row(1), 'interactive');
    await gen;
    // Same executor, and the 5 ms text run ended while the 200 ms generation was still going.
    expect(exec.log.map((l) => l.job.kind)).toEqual(['run', 'generate']);
  });
});
