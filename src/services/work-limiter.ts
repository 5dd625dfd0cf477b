import { ServiceUnavailableError } from '../domain/errors.js';

/**
 * At most `concurrency` tasks at once and `maxQueued` waiting; one more is refused at once with
 * SERVICE_UNAVAILABLE, so that overload answers quickly instead of queueing without end (the
 * client retries later). Hand-written: a counter and a FIFO, smaller than a dependency.
 */
export class WorkLimiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly what: string,
    private readonly concurrency: number,
    private readonly maxQueued: number,
  ) {}

  get active(): number {
    return this.running;
  }

  get queued(): number {
    return this.waiting.length;
  }

  async run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.running >= this.concurrency) {
      if (this.waiting.length >= this.maxQueued) {
        throw new ServiceUnavailableError(`Too many ${this.what} at once (${this.running} running, ${this.waiting.length} waiting); retry shortly`);
      }
      await new Promise<void>((resolve, reject) => {
        const start = () => {
          signal?.removeEventListener('abort', leave);
          resolve();
        };
        const leave = () => {
          const at = this.waiting.indexOf(start);
          if (at >= 0) this.waiting.splice(at, 1);
          reject(new ServiceUnavailableError('Cancelled: the client went away'));
        };
        signal?.addEventListener('abort', leave, { once: true });
        this.waiting.push(start);
      });
    } else {
      this.running++;
    }
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter; `running` only drops when nobody waits.
      if (next) next();
      else this.running--;
    }
  }
}
