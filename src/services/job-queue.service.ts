import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { NotFoundError } from '../domain/errors.js';
import type { JobKind, JobRecord, JobState } from '../domain/job.js';
import type { Logger } from '../lib/logger.js';
import type { JobRepository, NewJob } from '../repositories/job.repository.js';
import { JobFeed } from './job-feed.js';

export interface JobContext {
  readonly signal: AbortSignal;
  /** Progress in 0..1 (and counts for runs over many items); stored and streamed. */
  report(progress: number, counts?: { done?: number; total?: number }): Promise<void>;
}

export interface JobHandler {
  run(job: JobRecord, ctx: JobContext): Promise<void>;
  /** After the last attempt failed: undo what must not stay half-made. */
  onFailed?(job: JobRecord, error: unknown): Promise<void>;
}

export interface JobQueueOptions {
  concurrency: number;
  leaseMs: number;
  pollMs: number;
  maxAttempts: number;
}

export class JobAbortedError extends Error {
  constructor() {
    super('The job was interrupted by a shutdown; it runs again at the next start');
    this.name = 'JobAbortedError';
  }
}

/**
 * Background jobs kept in the database (the Job table, src/repositories/job.repository.ts).
 *
 * Why not pg-boss or graphile-worker: both are PostgreSQL-only, and SQLite is the default store;
 * one queue that behaves the same on both is simpler to reason about than two. The table keeps
 * what they would give us here: jobs survive restarts, a claim is one atomic UPDATE (FOR UPDATE
 * SKIP LOCKED on PostgreSQL), and a RUNNING job carries a lease its holder renews, so a job whose
 * process died is taken over by another once the lease runs out. Several processes may therefore
 * consume the queue; workers here wake at once on a local enqueue and poll (JOB_POLL_MS) for
 * other processes' jobs. Updates are streamed to subscribers of this process only.
 */
export class JobQueueService {
  readonly workerId = `${process.pid}-${randomUUID().slice(0, 8)}`;
  private readonly handlers = new Map<JobKind, JobHandler>();
  private readonly feeds = new Set<JobFeed>();
  private readonly abort = new AbortController();
  private wake: (() => void) | null = null;
  private loops: Promise<void>[] = [];
  private running = 0;

  constructor(
    private readonly repo: JobRepository,
    private readonly options: JobQueueOptions,
    private readonly log: Logger,
    /** The model this process embeds with: it claims only that model's REEMBED jobs. */
    private readonly modelId?: string,
  ) {}

  register(kind: JobKind, handler: JobHandler): void {
    this.handlers.set(kind, handler);
  }

  start(): void {
    for (let i = 0; i < this.options.concurrency; i++) this.loops.push(this.loop());
  }

  /** Jobs this process is running right now. */
  get active(): number {
    return this.running;
  }

  async enqueue(job: Omit<NewJob, 'id'>): Promise<JobRecord> {
    const created = await this.repo.create({ ...job, id: randomUUID() });
    this.announce(created);
    return created;
  }

  /** A job created elsewhere (inside another transaction) is ready to be claimed. */
  announce(job: JobRecord): void {
    this.publish(job);
    this.notify();
  }

  /**
   * Resolves with the job once it has SUCCEEDED or FAILED, whichever process ran it (polled: the
   * job may run in a worker elsewhere, src/services/ingest.service.ts's ROLE=api ingest).
   */
  async waitUntilFinished(id: string, pollMs = 100): Promise<JobRecord> {
    for (;;) {
      const job = await this.repo.findById(id);
      if (!job) throw new NotFoundError('Job', id);
      if (job.state === 'SUCCEEDED' || job.state === 'FAILED') return job;
      await sleep(pollMs);
    }
  }

  getJob(id: string): Promise<JobRecord | null> {
    return this.repo.findById(id);
  }

  listJobs(options: { limit: number; beforeSeq?: number | null; states?: JobState[] | null; kind?: JobKind | null }) {
    return this.repo.list(options);
  }

  countJobs(options: { states?: JobState[] | null; kind?: JobKind | null }) {
    return this.repo.count(options);
  }

  findForImage(imageId: string) {
    return this.repo.findForImage(imageId);
  }

  findUnfinished(kind: JobKind, modelId?: string) {
    return this.repo.findUnfinished(kind, modelId);
  }

  countByState() {
    return this.repo.countByState();
  }

  /**
   * Updates as they happen. With an id: the job's current state first, then its updates, ending
   * after its final state. Without: every job's updates, never ending on its own.
   */
  async subscribe(id?: string | null): Promise<AsyncIterableIterator<JobRecord>> {
    const feed = new JobFeed((job) => !id || job.id === id, Boolean(id), () => this.feeds.delete(feed));
    this.feeds.add(feed); // before reading the current state, so no update falls in between
    if (id) {
      const current = await this.repo.findById(id);
      if (!current) {
        feed.return();
        throw new NotFoundError('Job', id);
      }
      feed.push(current);
    }
    return feed;
  }

  /** Stops claiming, interrupts running jobs (they go back to QUEUED) and ends every subscription. */
  async stop(): Promise<void> {
    this.abort.abort();
    this.notify();
    await Promise.all(this.loops);
    for (const feed of [...this.feeds]) feed.finish();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private publish(job: JobRecord): void {
    for (const feed of this.feeds) feed.push(job);
  }

  private async loop(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      let job: JobRecord | null = null;
      try {
        job = await this.repo.claim(this.workerId, this.options.leaseMs, Date.now(), this.modelId);
      } catch (error) {
        this.log.error({ err: error }, 'could not claim a job');
      }
      if (!job) {
        const woken = new Promise<void>((resolve) => {
          const previous = this.wake;
          this.wake = () => {
            previous?.();
            resolve();
          };
        });
        await Promise.race([woken, sleep(this.options.pollMs, undefined, { ref: false }).catch(() => undefined)]);
        continue;
      }
      this.running++;
      try {
        await this.runJob(job, signal);
      } finally {
        this.running--;
      }
    }
  }

  private async runJob(job: JobRecord, signal: AbortSignal): Promise<void> {
    this.publish(job);
    const handler = this.handlers.get(job.kind);
    const leaseUntil = () => Date.now() + this.options.leaseMs;
    let progress = job.progress;
    // The lease is renewed while the job runs, however long a step takes.
    const renew = setInterval(() => {
      this.repo.report(job.id, this.workerId, { progress }, leaseUntil()).catch((error: unknown) => this.log.warn({ err: error }, 'could not renew a job lease'));
    }, Math.max(100, this.options.leaseMs / 3));
    renew.unref();
    const ctx: JobContext = {
      signal,
      report: async (value, counts = {}) => {
        progress = Math.min(1, Math.max(0, value));
        const updated = await this.repo.report(job.id, this.workerId, { progress, ...counts }, leaseUntil());
        if (updated) this.publish(updated);
      },
    };
    try {
      if (!handler) throw new Error(`No handler for jobs of kind ${job.kind}`);
      await handler.run(job, ctx);
      if (signal.aborted) throw new JobAbortedError();
      const done = await this.repo.finish(job.id, this.workerId, 'SUCCEEDED', null);
      if (done) this.publish(done);
      this.log.info({ job: job.id, kind: job.kind }, 'job succeeded');
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (signal.aborted || error instanceof JobAbortedError) {
        const requeued = await this.repo.requeue(job.id, this.workerId, null);
        if (requeued) this.publish(requeued);
        this.log.info({ job: job.id, kind: job.kind }, 'job interrupted by the shutdown; queued again');
      } else if (job.attempts < this.options.maxAttempts) {
        const requeued = await this.repo.requeue(job.id, this.workerId, message);
        if (requeued) this.publish(requeued);
        this.log.warn({ err: error, job: job.id, attempt: job.attempts }, 'job failed; queued again');
      } else {
        try {
          await handler?.onFailed?.(job, error);
        } catch (cleanupError) {
          this.log.error({ err: cleanupError, job: job.id }, 'could not clean up after a failed job');
        }
        const failed = await this.repo.finish(job.id, this.workerId, 'FAILED', message);
        if (failed) this.publish(failed);
        this.log.error({ err: error, job: job.id, kind: job.kind }, 'job failed');
      }
    } finally {
      clearInterval(renew);
    }
  }
}
