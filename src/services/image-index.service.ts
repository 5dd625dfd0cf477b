import { dot } from '../domain/embedding.js';
import type { Logger } from '../lib/logger.js';
import type { VectorMatch } from '../index/vector-index.js';
import type { FeedBounds, IndexRows, StoredVectorIndex, VectorIndexStore } from './ports.js';

export interface ImageIndexOptions {
  dir: string;
  saveDelayMs: number;
  compactRatio: number;
}

/**
 * Keeps the HNSW index a faithful cache of the database: the DB holds every embedding (with its
 * model id and dimension); the index file is loaded when it was built by the same model, rebuilt
 * otherwise, and repaired against the DB at every start (adds what a crash left unindexed, drops
 * what was deleted). Saves are debounced, so an acknowledged ingest may be missing from the file;
 * the repair step is what makes that safe.
 */
export class ImageIndexService {
  private index: StoredVectorIndex;
  private saveTimer: NodeJS.Timeout | undefined;
  private saving: Promise<void> = Promise.resolve();
  private dirty = false;
  /** Bumped on every change: search result caches key on it. */
  version = 0;
  /**
   * PostgreSQL: the change-feed position this index includes (src/services/index-feed-follower.ts),
   * saved with each snapshot; undefined where no feed is followed (SQLite).
   */
  feedPosition: number | undefined;
  /** How open() found the index: a snapshot caught up from the feed, or repaired by a full scan. */
  openedFrom: 'snapshot+feed' | 'full-scan' = 'full-scan';
  /** Set before open() on PostgreSQL: the change feed's head and trimmed part. */
  feed: FeedBounds | undefined;

  constructor(
    private readonly repo: IndexRows,
    /** The index and its files: hnswIndexStore (src/services/ports.ts), or an in-memory one in tests. */
    private readonly store: VectorIndexStore,
    private readonly modelId: string,
    private readonly dim: number,
    private readonly options: ImageIndexOptions,
    private readonly log: Logger,
  ) {
    this.index = store.create();
  }

  get size(): number {
    return this.index.size;
  }

  async open(): Promise<void> {
    const opened = await this.store.open(this.options.dir);
    this.index = opened.index;
    let trusted = opened.status === 'loaded';
    if (opened.status === 'empty') this.log.info({ reason: opened.reason }, 'building vector index from the database');
    else if (!(await this.matchesDatabase())) {
      this.log.warn({ dir: this.options.dir }, 'index vectors differ from the database: rebuilding the index from the database');
      this.index = this.store.create();
      trusted = false;
    }
    if (this.feed) {
      const head = await this.feed.head();
      const saved = opened.status === 'loaded' ? opened.feedPosition : undefined;
      // A snapshot that says where in the feed it stands needs only the feed after that (the
      // follower applies it before the replica answers): no scan of every embedding. One ahead of
      // the feed belongs to another database (or a restored backup), one older than the feed's
      // retention (its entries may be trimmed): scanned like any other.
      if (trusted && saved !== undefined && saved <= head && saved >= (await this.feed.trimmedTo())) {
        this.feedPosition = saved;
        this.openedFrom = 'snapshot+feed';
        this.log.info({ size: this.index.size, feedPosition: saved, feedHead: head }, 'vector index loaded; catching up from the change feed');
        return;
      }
      // Read before the scan: entries written during it are applied again, harmlessly.
      this.feedPosition = head;
    }
    const { added, removed } = await this.repair();
    this.index.compactIfNeeded(this.options.compactRatio);
    this.log.info({ size: this.index.size, added, removed, loaded: opened.status === 'loaded' }, 'vector index ready');
    if (added || removed || opened.status === 'empty') await this.flush(true);
  }

  /**
   * Compares a sample of the loaded index's vectors with the database's. A file with a valid
   * checksum can still be the wrong one (restored from another installation's backup); its
   * structure loads fine and it answers with wrong neighbours.
   */
  private async matchesDatabase(sampleSize = 64): Promise<boolean> {
    const labels = this.index.labels();
    const step = Math.max(1, Math.floor(labels.length / sampleSize));
    const sample = labels.filter((_, i) => i % step === 0).slice(0, sampleSize);
    const stored = await this.repo.findEmbeddings(sample, this.modelId);
    for (const [label, vector] of stored) {
      const inIndex = this.index.vector(label);
      const norm = Math.hypot(...vector) || 1;
      if (vector.some((v, i) => Math.abs(v / norm - (inIndex[i] as number)) > 1e-4)) return false;
    }
    return true;
  }

  /** Makes the index's live label set equal to the DB's READY images with an embedding for this model. */
  async repair(): Promise<{ added: number; removed: number }> {
    const inDb = new Set<number>();
    let added = 0;
    for await (const page of this.repo.streamEmbeddings(this.modelId, this.dim)) {
      for (const { label, vector } of page) {
        inDb.add(label);
        if (!this.index.has(label)) {
          this.index.add(label, vector);
          added++;
        }
      }
    }
    let removed = 0;
    for (const label of this.index.labels()) {
      if (!inDb.has(label)) {
        this.index.remove(label);
        removed++;
      }
    }
    if (added || removed) this.changed();
    return { added, removed };
  }

  /**
   * Applies change-feed entries (in order) with the current READY embeddings of their labels: a
   * label with one is added (or replaced), one without is removed. Synchronous, so a snapshot
   * taken between two calls matches its saved position exactly.
   */
  applyFeed(labels: Iterable<number>, vectors: Map<number, Float32Array>, position: number): number {
    let changed = 0;
    for (const label of labels) {
      const vector = vectors.get(label);
      if (vector) this.index.add(label, vector);
      else if (this.index.has(label)) this.index.remove(label);
      else continue;
      changed++;
    }
    if (this.feedPosition === undefined || position > this.feedPosition) {
      this.feedPosition = position;
      this.dirty = true;
    }
    if (changed) this.changed();
    return changed;
  }

  add(label: number, vector: Float32Array): void {
    this.index.add(label, vector);
    this.changed();
  }

  remove(label: number): void {
    this.index.remove(label);
    this.changed();
  }

  has(label: number): boolean {
    return this.index.has(label);
  }

  search(vector: Float32Array, k: number, allow?: (label: number) => boolean): VectorMatch[] {
    return this.index.search(vector, k, allow);
  }

  /** Live labels. */
  labels(): number[] {
    return this.index.labels();
  }

  /**
   * Exact cosine of `vector` with each given label's indexed vector, best first (ties: lower
   * label first); labels not in the index are left out. A scan: meant for the few thousand rows
   * a selective filter leaves (src/services/candidate-sources.ts).
   */
  exactSearch(vector: Float32Array, labels: Iterable<number>): VectorMatch[] {
    const out: VectorMatch[] = [];
    for (const label of labels) {
      if (this.index.has(label)) out.push({ label, score: dot(vector, this.index.vector(label)) });
    }
    return out.sort((a, b) => b.score - a.score || a.label - b.label);
  }

  /** Cosine with one indexed image; null when it is not in the index. */
  similarity(vector: Float32Array, label: number): number | null {
    return this.index.has(label) ? dot(vector, this.index.vector(label)) : null;
  }

  private changed(): void {
    this.version++;
    this.dirty = true;
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      void this.flush().catch((error: unknown) => this.log.error({ err: error }, 'saving the vector index failed'));
    }, this.options.saveDelayMs);
    this.saveTimer.unref();
  }

  /** Writes the index now if it changed (serialised: one writer at a time). */
  async flush(force = false): Promise<void> {
    if (this.saveTimer) {
      clearTimeout(this.saveTimer);
      this.saveTimer = undefined;
    }
    // A failed save must not poison the chain: the next flush tries again.
    this.saving = this.saving.catch(() => undefined).then(async () => {
      if (!this.dirty && !force) return;
      this.dirty = false;
      if (this.index.compactIfNeeded(this.options.compactRatio)) this.log.info({ size: this.index.size }, 'vector index compacted');
      await this.index.save(this.options.dir, () => this.feedPosition ?? 0);
    });
    await this.saving;
  }
}
