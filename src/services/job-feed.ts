import type { JobRecord } from '../domain/job.js';
import { isFinished } from '../domain/job.js';

/**
 * One subscriber's stream of job updates (the `jobUpdates` subscription). Hand-written rather than
 * `events.on`: graphql-ws ends a subscription by calling return(), which must end the stream at
 * once even while it waits for the next update (an async generator would only see it after one).
 */
export class JobFeed implements AsyncIterableIterator<JobRecord> {
  private readonly queued: JobRecord[] = [];
  private waiting: ((result: IteratorResult<JobRecord>) => void) | null = null;
  private ended = false;

  constructor(
    private readonly accept: (job: JobRecord) => boolean,
    /** A feed for one job ends after its final state. */
    private readonly untilFinished: boolean,
    private readonly onEnd: () => void,
  ) {}

  push(job: JobRecord): void {
    if (this.ended || !this.accept(job)) return;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ value: job, done: false });
    } else {
      this.queued.push(job);
    }
  }

  next(): Promise<IteratorResult<JobRecord>> {
    const job = this.queued.shift();
    if (job) {
      if (this.untilFinished && isFinished(job.state)) this.finish();
      return Promise.resolve({ value: job, done: false });
    }
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.waiting = (result) => {
        if (!result.done && this.untilFinished && isFinished(result.value.state)) this.finish();
        resolve(result);
      };
    });
  }

  return(): Promise<IteratorResult<JobRecord>> {
    this.finish();
    this.queued.length = 0;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** No more updates: whatever is queued is still delivered, then the stream ends. */
  finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd();
    const resolve = this.waiting;
    this.waiting = null;
    resolve?.({ value: undefined, done: true });
  }
}
