import { describe, expect, it } from 'vitest';
import { InferenceAbortedError } from '../../src/ml/errors.js';
import type { GenerateJob, InferenceJob, JobExecutor, JobResult } from '../../src/ml/runtime/inference-job.js';
import { InferenceScheduler, RECENT_RUNS_KEPT } from '../../src/ml/runtime/inference-scheduler.js';
import { floatTensor, type TensorMap } from '../../src/ml/runtime/tensor.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

class FakeExecutor implements JobExecutor {
  log: Array<{ job: InferenceJob; start: number; end: number; signal?: AbortSignal }> = [];
  constructor(private readonly delayMs: (job: InferenceJob) => number) {}
  async execute<J extends InferenceJob>(job: J, _priority?: string, signal?: AbortSignal): Promise<JobResult<J>> {
    return (await this.executeAny(job, signal)) as JobResult<J>;
  }
  private async executeAny(job: InferenceJob, signal?: AbortSignal): Promise<TensorMap | TensorMap[] | number[] | number[][] | Float32Array> {
    const start = performance.now();
    await sleep(this.delayMs(job));
    this.log.push({ job, start, end: performance.now(), ...(signal ? { signal } : {}) });
    if (job.kind === 'generate' || job.kind === 'lmGenerate') return [1, 2, 3];
    // each merged generation answers with its encoder state's first value, to show who got what
    if (job.kind === 'generateMerged') return job.parts.map((p) => [1, p.data[0] as number]);
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

describe('InferenceScheduler generations', () => {
  const config = { maxLength: 5, minLength: 0, numBeams: 3, repetitionPenalty: 1, eosTokenId: 2 };
  const caption = (v: number, over: Partial<GenerateJob> = {}): GenerateJob => ({
    kind: 'generate', crossKvGraph: 'c', decoderGraph: 'd', encoderStates: floatTensor(Float32Array.from([v, v]), [1, 1, 2]), prefix: [1], config, ...over,
  });

  it('merges the generations queued together on a batchable decoder, up to maxGenerateBatch, and answers each its own', async () => {
    const exec = new FakeExecutor(() => 30);
    const s = new InferenceScheduler([exec], { batchableDecoders: ['d'], maxGenerateBatch: 3 });
    // the first starts alone (nothing queued with it); the next four queue behind it
    const all = [1, 2, 3, 4, 5].map((v) => s.generate(caption(v), 'background'));
    // (a lone generation is a plain job: the fake answers it [1, 2, 3])
    expect(await Promise.all(all)).toEqual([[1, 2, 3], [1, 2], [1, 3], [1, 4], [1, 2, 3]]);
    expect(exec.log.map((l) => (l.job.kind === 'generateMerged' ? l.job.parts.length : l.job.kind))).toEqual(['generate', 3, 'generate']);
    expect(s.stats.generations).toBe(5);
    expect(s.stats.generationJobs).toBe(3);
  });

  it('a caller of a merged generation that gives up is rejected at once; the generation stops when all have', async () => {
    const exec = new FakeExecutor(() => 60);
    const s = new InferenceScheduler([exec], { batchableDecoders: ['d'] });
    const first = s.generate(caption(0), 'background');
    const [a, b, c] = [new AbortController(), new AbortController(), new AbortController()];
    const pa = s.generate(caption(1), 'background', a.signal);
    const pb = s.generate(caption(2), 'background', b.signal);
    await first;
    await sleep(5); // the merged generation of 1 and 2 is running
    const t0 = performance.now();
    a.abort();
    await expect(pa).rejects.toBeInstanceOf(InferenceAbortedError);
    expect(performance.now() - t0).toBeLessThan(40);
    expect(await pb).toEqual([1, 2]);
    const merged = exec.log.find((l) => l.job.kind === 'generateMerged');
    expect(merged?.signal?.aborted).toBe(false);
    // both callers of the next merged generation give up while it runs: its signal is aborted
    const blocker = s.generate(caption(5, { decoderGraph: 'x' }), 'background');
    const pc = s.generate(caption(3), 'background', c.signal);
    const pd = s.generate(caption(4), 'background', c.signal);
    await blocker;
    await sleep(5);
    c.abort();
    await expect(pc).rejects.toBeInstanceOf(InferenceAbortedError);
    await expect(pd).rejects.toBeInstanceOf(InferenceAbortedError);
    await sleep(80);
    const last = exec.log.at(-1);
    expect(last?.job.kind).toBe('generateMerged');
    expect(last?.signal?.aborted).toBe(true);
  });

  it('does not merge generations on other decoders, with other prefixes or settings, or of other shapes', async () => {
    const exec = new FakeExecutor(() => 20);
    const s = new InferenceScheduler([exec], { batchableDecoders: ['d'] });
    const first = s.generate(caption(0), 'background');
    const others = [
      caption(1, { decoderGraph: 'e' }),
      caption(2, { prefix: [1, 7] }),
      caption(3, { config: { ...config, numBeams: 1 } }),
      caption(4, { encoderStates: floatTensor(new Float32Array(3), [1, 1, 3]) }),
    ].map((j) => s.generate(j, 'background'));
    await Promise.all([first, ...others]);
    expect(exec.log.map((l) => l.job.kind)).toEqual(['generate', 'generate', 'generate', 'generate', 'generate']);
  });

  it('merges no generations when no decoder is declared batchable', async () => {
    const exec = new FakeExecutor(() => 20);
    const s = new InferenceScheduler([exec]);
    await Promise.all([1, 2, 3].map((v) => s.generate(caption(v), 'background')));
    expect(exec.log.map((l) => l.job.kind)).toEqual(['generate', 'generate', 'generate']);
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
