import type { Priority } from './inference-job.js';

interface Waiter {
  priority: Priority;
  start: () => void;
}

/**
 * Orders the graph runs of the jobs that share one inference worker. Interactive runs go first,
 * except that background work keeps `backgroundShare` of the worker's time while both kinds
 * wait: with strict priority, a stream of searches would hold back ingest for as long as it
 * lasts. Runs are the unit (a whole vision encoder pass, one decoder step, one ITM batch), so a
 * search waits for at most the run in progress.
 *
 * The shares are of time, over the last `windowMs` or so (exponential decay by elapsed time): a
 * per-run decay would count a 30 ms decoder step like a 900 ms ITM batch, and ingest would get a
 * fifth of the worker instead of its share.
 */
export class RunGate {
  private busy = false;
  private readonly waiting: Waiter[] = [];
  /** Recent busy time per priority, in ms, decayed to `at`. */
  private readonly recent: Record<Priority, number> = { interactive: 0, background: 0 };
  private at = performance.now();

  constructor(private readonly backgroundShare = 0.4, private readonly windowMs = 5000) {}

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
      this.decay();
      this.recent[priority] += performance.now() - t0;
      this.busy = false;
      // Decide after the job that just ran has had its turn to ask again (its continuation runs
      // in this macrotask's microtasks): else a generation's next step would never be waiting
      // when the choice is made, and background work would lose every choice.
      setImmediate(() => this.next());
    }
  }

  private decay(): void {
    const now = performance.now();
    const keep = Math.exp(-(now - this.at) / this.windowMs);
    this.recent.interactive *= keep;
    this.recent.background *= keep;
    this.at = now;
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
    this.decay();
    const total = this.recent.interactive + this.recent.background;
    return total > 0 && this.recent.background / total < this.backgroundShare ? bg : fg;
  }
}
