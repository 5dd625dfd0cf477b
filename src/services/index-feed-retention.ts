import type { Logger } from '../lib/logger.js';
import type { IndexFeedRepository } from '../repositories/index-feed.repository.js';

/**
 * Keeps the PostgreSQL change feed (IndexFeed) from growing without end: deletes the entries older
 * than INDEX_FEED_RETENTION_HOURS when the process starts and every hour after. Each process that
 * follows the feed runs it; trims are idempotent, so several at once only repeat each other. A
 * replica whose snapshot (or live position) is older than the trimmed part scans the database once
 * instead of catching up (src/services/image-index.service.ts open, index-feed-follower.ts).
 */
export class IndexFeedRetention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly feed: Pick<IndexFeedRepository, 'trim'>,
    private readonly options: { retentionMs: number; everyMs?: number },
    private readonly log: Logger,
  ) {}

  /** Trims once now, then every `everyMs` (an hour) in the background. */
  async start(): Promise<void> {
    await this.trimOnce();
    this.timer = setInterval(() => {
      this.running = this.trimOnce();
    }, this.options.everyMs ?? 3_600_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** Deletes what is older than the retention; never throws (a failed trim waits for the next). */
  async trimOnce(now = Date.now()): Promise<number> {
    try {
      const removed = await this.feed.trim(new Date(now - this.options.retentionMs));
      if (removed > 0) this.log.info({ removed, retentionHours: this.options.retentionMs / 3_600_000 }, 'index feed trimmed');
      return removed;
    } catch (error) {
      this.log.warn({ err: error }, 'trimming the index feed failed; trying again at the next run');
      return 0;
    }
  }
}
