import type { Logger } from '../lib/logger.js';
import type { IndexFeedRepository } from '../repositories/index-feed.repository.js';
import type { ImageIndexService } from './image-index.service.js';

export interface FeedStatus {
  /** The feed position this replica's index includes. */
  appliedPosition: number;
  /** The feed's last position when this replica last looked. */
  headPosition: number;
  lagPositions: number;
  /** Seconds since this replica first saw itself behind (0: caught up). */
  lagSeconds: number;
  /** snapshot+feed: restarted from its saved index; full-scan: built or repaired from every row. */
  openedFrom: ImageIndexService['openedFrom'];
  /** Entries applied since this process started. */
  appliedSinceStart: number;
}

/**
 * Keeps this API replica's HNSW index in step with the database on PostgreSQL: reads the
 * IndexFeed table (appended by a trigger in the same transaction as each embedding change,
 * prisma/postgresql/migrations/20261207300000_index_feed) after the position the index includes,
 * in order, and applies each entry as the current state of its label. Woken by LISTEN/NOTIFY;
 * a poll every `pollMs` catches up whatever a dropped connection missed. Applying is idempotent, so
 * entries seen twice (the ingest that indexed its own image, a catch-up after a full scan) are
 * harmless. Several replicas each keep a full copy: see docs/scaling.md for sharding past that.
 */
export class IndexFeedFollower {
  private head = 0;
  private behindSince: number | null = null;
  private applied = 0;
  private running: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private unlisten: (() => Promise<void>) | null = null;
  private stopped = false;

  constructor(
    private readonly feed: IndexFeedRepository,
    private readonly index: ImageIndexService,
    private readonly modelId: string,
    private readonly options: { pollMs: number; batchSize?: number },
    private readonly log: Logger,
  ) {}

  /** Catches up once (before the replica answers), then follows: LISTEN plus the poll. */
  async start(): Promise<void> {
    await this.catchUp();
    try {
      this.unlisten = await this.feed.listen(
        () => this.wake(),
        (error) => this.log.warn({ err: error }, 'index feed LISTEN connection failed; polling only'),
      );
    } catch (error) {
      this.log.warn({ err: error }, 'could not LISTEN for index feed notices; polling only');
    }
    const tick = () => {
      this.timer = setTimeout(() => {
        this.wake();
        if (!this.stopped) tick();
      }, this.options.pollMs);
      this.timer.unref();
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.unlisten?.();
    await this.running?.catch(() => undefined);
  }

  status(): FeedStatus {
    const appliedPosition = this.index.feedPosition ?? 0;
    return {
      appliedPosition,
      headPosition: this.head,
      lagPositions: Math.max(0, this.head - appliedPosition),
      lagSeconds: this.behindSince === null ? 0 : (Date.now() - this.behindSince) / 1000,
      openedFrom: this.index.openedFrom,
      appliedSinceStart: this.applied,
    };
  }

  /** One catch-up at a time; a wake-up during one runs another right after it. */
  private wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.catchUp()
      .catch((error: unknown) => this.log.error({ err: error }, 'applying the index feed failed; retrying at the next poll'))
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  /** Applies every entry of this model up to the feed's head as read at the start. */
  async catchUp(): Promise<void> {
    const head = await this.feed.head();
    this.head = Math.max(this.head, head);
    const start = this.index.feedPosition ?? 0;
    let position = start;
    if (position < head) this.behindSince ??= Date.now();
    const batchSize = this.options.batchSize ?? 1000;
    for (;;) {
      const entries = await this.feed.read(this.modelId, position, batchSize);
      if (entries.length === 0) break;
      const labels = [...new Set(entries.map((e) => e.imageLabel))];
      // The label's state now, not the entry's op: later entries are applied next anyway, and a
      // vector read after its removal must not come back.
      const vectors = await this.feed.readyEmbeddings(labels, this.modelId);
      position = entries[entries.length - 1]!.position;
      this.index.applyFeed(labels, vectors, position);
      this.applied += entries.length;
      if (entries.length < batchSize) break;
    }
    // Positions up to the head read first are all committed (the trigger's lock makes commit order
    // position order), so other models' entries up to it are passed over too.
    if (head > position) this.index.applyFeed([], new Map(), head);
    // Read after the entries, so that a trim running meanwhile is seen: entries at or below it may
    // have gone before this replica read them (IndexFeedRetention), so the feed cannot say what
    // changed. The database can: a full scan, as open() does without a usable snapshot. A replica
    // that was at the head it read (every idle poll) skips the query: what came after that head is
    // seconds old, and a trim takes only entries older than the retention (an hour at least).
    const trimmedTo = start < head ? await this.feed.trimmedTo() : 0;
    if (start < trimmedTo) {
      this.log.warn({ appliedPosition: start, trimmedTo }, 'index feed trimmed past this replica: rebuilding the index from the database');
      const { added, removed } = await this.index.repair();
      this.index.applyFeed([], new Map(), Math.max(head, trimmedTo));
      this.log.info({ added, removed, size: this.index.size }, 'vector index rebuilt after the feed trim');
    }
    if ((this.index.feedPosition ?? 0) >= this.head) this.behindSince = null;
  }
}
