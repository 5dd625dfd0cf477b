import type { Priority } from './inference-job.js';

interface Waiter {
  priority: Priority;
  start: () => void;
}

/**
 * Orders the graph runs of the jobs that share one inference worker. Interactive runs go first,
 * except that background work keeps `backgroundShare` of the worker's time while both kinds
 * wait: with strict priority, a stream of searches would hold back ingest for as long as it
 * lasts. Runs are the unit (a whole vision encoder pass, one decoder step, one ITM chunk), so a
 * search waits for at most the run in progress.
 */
export class RunGate {
  private busy = false;
  private readonly waiting: Waiter[] = [];
  /** Recent busy time per priority, decayed at every run, in ms. */
  private readonly recent: Record<Priority, number> = { interactive: 0, background: 0 };

  constructor(private readonly backgroundShare = 0.4, private readonly decay = 0.9) {}

  /** Runs `fn` when the gate picks it; at most one `fn` at a time. */
  async run<T>(priority: Priority, fn: () => Promise<T>): Promise<T> {
    if (this.busy || this.waiting.length > 0) {
      await new Promise<void>((start) => {
        this.waiting.push({ priority, start });
        this.next();
      });
    } else {
      this.busy = true;
    }
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.recent.interactive *= this.decay;
      this.recent.background *= this.decay;
      this.recent[priority] += performance.now() - t0;
      this.busy = false;
      this.next();
    }
  }

  private next(): void {
    if (this.busy || this.waiting.length === 0) return;
    const i = this.pick();
    const [w] = this.waiting.splice(i, 1) as [Waiter];
    this.busy = true;
    w.start();
  }

  private pick(): number {
    const fg = this.waiting.findIndex((w) => w.priority === 'interactive');
    const bg = this.waiting.findIndex((w) => w.priority === 'background');
    if (fg < 0) return bg;
    if (bg < 0) return fg;
    const total = this.recent.interactive + this.recent.background;
    return total > 0 && this.recent.background / total < this.backgroundShare ? bg : fg;
  }
}
