import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import hnswlib from 'hnswlib-node';
import { dot, l2Normalize } from '../domain/embedding.js';
import type { VectorIndex, VectorMatch } from './vector-index.js';
import { isSnapshotFile, readIndexManifest, snapshotFileFor, snapshotFileOf, writeIndexManifest } from './index-manifest.js';

export interface HnswOptions {
  m: number;
  efConstruction: number;
  efSearch: number;
  initialCapacity: number;
}

export type HnswOpenResult =
  | { status: 'loaded'; index: HnswVectorIndex; feedPosition: number | undefined }
  | { status: 'empty'; index: HnswVectorIndex; reason: string };

/**
 * hnswlib-node behind VectorIndex: cosine space, doubles capacity when full, deletes by markDelete
 * (tracked here, since hnswlib-node cannot report them) and compacts by rebuilding from live points.
 * Persisted as `<dir>/hnsw-<sha256 prefix>.bin` plus `hnsw.json`, the manifest naming that file,
 * the model and dimension that built it, the file's size and sha256 (and, on PostgreSQL, the
 * change-feed position it includes). The manifest's rename is the only commit point, so a crash at
 * any moment of a save leaves the previous snapshot whole (src/index/index-manifest.ts).
 */
export class HnswVectorIndex implements VectorIndex {
  private hnsw: hnswlib.HierarchicalNSW;
  /** Labels removed (marked deleted in the graph, or about to be: `deferred`). */
  private readonly deleted = new Set<number>();
  private readonly present = new Set<number>();
  /**
   * While a save writes the graph on a libuv thread: the graph changes made meanwhile, in order
   * (a null vector removes), applied when the write ends; null when no save runs.
   */
  private deferred: Array<{ label: number; vector: Float32Array | null }> | null = null;
  /** The unit vectors of labels added while a save runs, which the graph does not hold yet. */
  private readonly pending = new Map<number, Float32Array>();
  /** Live labels the graph held when the running save began. */
  private frozenLive = 0;

  private constructor(
    readonly dim: number,
    readonly modelId: string,
    private readonly options: HnswOptions,
    hnsw?: hnswlib.HierarchicalNSW,
  ) {
    this.hnsw = hnsw ?? HnswVectorIndex.createRaw(dim, options.initialCapacity, options);
  }

  private static createRaw(dim: number, capacity: number, options: HnswOptions): hnswlib.HierarchicalNSW {
    const raw = new hnswlib.HierarchicalNSW('cosine', dim);
    raw.initIndex({ maxElements: Math.max(16, capacity), m: options.m, efConstruction: options.efConstruction, randomSeed: 100 });
    raw.setEf(options.efSearch);
    return raw;
  }

  static create(dim: number, modelId: string, options: HnswOptions): HnswVectorIndex {
    return new HnswVectorIndex(dim, modelId, options);
  }

  /** Loads a persisted index if it exists and was built by this model; otherwise an empty one and why. */
  static async open(dir: string, modelId: string, dim: number, options: HnswOptions): Promise<HnswOpenResult> {
    const empty = (reason: string): HnswOpenResult => ({ status: 'empty', index: HnswVectorIndex.create(dim, modelId, options), reason });
    const manifest = await readIndexManifest(path.join(dir, 'hnsw.json'));
    if (!manifest) return empty('no index manifest');
    if (manifest.modelId !== modelId) return empty(`index built by model ${manifest.modelId}`);
    if (manifest.dim !== dim) return empty(`index has dimension ${manifest.dim}, model has ${dim}`);
    const file = path.join(dir, snapshotFileOf(manifest));
    const raw = new hnswlib.HierarchicalNSW('cosine', dim);
    try {
      const { size } = await fs.stat(file);
      if (manifest.bytes !== undefined && manifest.bytes !== size) return empty(`index file has ${size} bytes, its manifest says ${manifest.bytes} (checksum)`);
      if (manifest.sha256 !== undefined && (await sha256Of(file)) !== manifest.sha256) return empty('index file does not match its checksum');
      await raw.readIndex(file);
    } catch (error) {
      return empty(`index file unreadable: ${(error as Error).message}`);
    }
    raw.setEf(options.efSearch);
    const index = new HnswVectorIndex(dim, modelId, options, raw);
    for (const label of raw.getIdsList()) index.present.add(label);
    for (const label of manifest.deleted) if (index.present.has(label)) index.deleted.add(label);
    return { status: 'loaded', index, feedPosition: manifest.feedPosition };
  }

  get size(): number {
    return this.present.size - this.deleted.size;
  }

  get deletedCount(): number {
    return this.deleted.size;
  }

  add(label: number, vector: Float32Array): void {
    if (vector.length !== this.dim) throw new RangeError(`vector has ${vector.length} dimensions, index has ${this.dim}`);
    if (this.deferred) {
      this.deferred.push({ label, vector: Float32Array.from(vector) });
      this.pending.set(label, l2Normalize(vector));
    } else {
      this.addToGraph(label, vector);
    }
    this.present.add(label);
    this.deleted.delete(label);
  }

  private addToGraph(label: number, vector: Float32Array): void {
    if (this.hnsw.getCurrentCount() >= this.hnsw.getMaxElements()) {
      // A saved empty index reloads with capacity 0, hence the floor. (Re-adding a label that is
      // in the graph needs no room; resizing then is harmless.)
      this.hnsw.resizeIndex(Math.max(this.options.initialCapacity, this.hnsw.getMaxElements() * 2));
    }
    // hnswlib updates an existing label in place and un-marks it if it was deleted.
    this.hnsw.addPoint(Array.from(vector), label);
  }

  remove(label: number): void {
    if (!this.present.has(label) || this.deleted.has(label)) return;
    if (this.deferred) {
      this.deferred.push({ label, vector: null });
      this.pending.delete(label);
    } else {
      this.hnsw.markDelete(label);
    }
    this.deleted.add(label);
  }

  has(label: number): boolean {
    return this.present.has(label) && !this.deleted.has(label);
  }

  /** The stored vector of a live label (normalised: the cosine space stores unit vectors). */
  vector(label: number): Float32Array {
    if (!this.has(label)) throw new RangeError(`label ${label} is not in the index`);
    const pending = this.pending.get(label);
    return pending ? Float32Array.from(pending) : Float32Array.from(this.hnsw.getPoint(label));
  }

  labels(): number[] {
    return [...this.present].filter((l) => !this.deleted.has(l));
  }

  /**
   * Up to k nearest live entries, best first; with `allow`, only labels it accepts (hnswlib's
   * filtered search: the graph walk continues past refused labels, so recall holds as long as a
   * fair share of entries is allowed; very selective filters are better served by an exact scan).
   */
  search(query: Float32Array, k: number, allow?: (label: number) => boolean): VectorMatch[] {
    const n = Math.min(k, this.size);
    if (n <= 0) return [];
    if (this.deferred) return this.searchDuringSave(query, n, allow);
    // ef below k silently returns fewer than k results.
    this.hnsw.setEf(Math.max(this.options.efSearch, n));
    const { neighbors, distances } = allow ? this.hnsw.searchKnn(Array.from(query), n, allow) : this.hnsw.searchKnn(Array.from(query), n);
    return neighbors.map((label, i) => ({ label, score: 1 - (distances[i] as number) }));
  }

  /**
   * {@link search} while a save holds the graph still: the graph's entries that are still live
   * and not re-added since, and an exact scan of those added since (a save's worth of ingests).
   */
  private searchDuringSave(query: Float32Array, n: number, allow?: (label: number) => boolean): VectorMatch[] {
    const fromGraph = (label: number): boolean => !this.deleted.has(label) && !this.pending.has(label) && (allow?.(label) ?? true);
    const q = l2Normalize(query);
    const out: VectorMatch[] = [];
    const m = Math.min(n, this.frozenLive);
    if (m > 0) {
      this.hnsw.setEf(Math.max(this.options.efSearch, m));
      const { neighbors, distances } = this.hnsw.searchKnn(Array.from(query), m, fromGraph);
      neighbors.forEach((label, i) => out.push({ label, score: 1 - (distances[i] as number) }));
    }
    for (const [label, v] of this.pending) {
      if (allow?.(label) ?? true) out.push({ label, score: dot(q, v) });
    }
    return out.sort((a, b) => b.score - a.score).slice(0, n);
  }

  /** Rebuilds the graph from live points when deletions pass `ratio` of all entries (not during a save). */
  compactIfNeeded(ratio: number): boolean {
    if (this.deferred || this.deleted.size === 0 || this.deleted.size < ratio * this.present.size) return false;
    const live = this.labels();
    const fresh = HnswVectorIndex.createRaw(this.dim, Math.max(this.options.initialCapacity, live.length * 2), this.options);
    for (const label of live) fresh.addPoint(this.hnsw.getPoint(label), label);
    this.hnsw = fresh;
    this.present.clear();
    this.deleted.clear();
    for (const label of live) this.present.add(label);
    return true;
  }

  /**
   * Writes a new snapshot file under a name of its own (its checksum), fsynced, then commits it by
   * renaming the manifest that names it over the old one (writeFileAtomic), then removes the
   * files no manifest names. A crash before the manifest's rename leaves the old manifest and its
   * old file untouched: the restart loads the previous snapshot and catches up from the feed or the
   * repair scan, never a full rebuild for a torn write.
   *
   * The snapshot holds the index as it is when save() is called. The graph is written on a libuv
   * thread (50k vectors of 256 took 46-133 ms, which on the event loop stalled every request),
   * and must not change while it is read: adds and removes made meanwhile are seen at once by
   * has, labels, vector and search, and reach the graph when the write ends. One save at a time.
   */
  async save(dir: string, feedPosition?: () => number): Promise<void> {
    if (this.deferred) throw new Error('a save of this index is already running');
    // Taken together, before any await: the snapshot holds exactly the feed up to here.
    this.deferred = [];
    this.frozenLive = this.size;
    const position = feedPosition?.();
    const deleted = [...this.deleted];
    const tmp = path.join(dir, ownTemporary());
    try {
      await fs.mkdir(dir, { recursive: true });
      await this.hnsw.writeIndex(tmp);
    } finally {
      const changes = this.deferred;
      this.deferred = null;
      this.pending.clear();
      for (const { label, vector } of changes) {
        if (vector) this.addToGraph(label, vector);
        else this.hnsw.markDelete(label);
      }
    }
    const handle = await fs.open(tmp, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    const [{ size }, sha256] = await Promise.all([fs.stat(tmp), sha256Of(tmp)]);
    const file = snapshotFileFor(sha256);
    await fs.rename(tmp, path.join(dir, file));
    await writeIndexManifest(path.join(dir, 'hnsw.json'), {
      formatVersion: 3,
      modelId: this.modelId,
      dim: this.dim,
      file,
      deleted,
      savedAt: new Date().toISOString(),
      bytes: size,
      sha256,
      ...(position !== undefined ? { feedPosition: position } : {}),
    });
    await removeUncommitted(dir, file);
  }
}

const TMP_PREFIX = '.hnsw.bin.';
const ownTemporary = () => `${TMP_PREFIX}${process.pid}.tmp`;

/**
 * Snapshot files and temporaries other than the committed one: older snapshots and what a killed
 * save left. One process owns an index folder (INDEX_DIR is per replica, docs/scaling.md), so
 * another process's temporary is a dead one's.
 */
async function removeUncommitted(dir: string, committed: string): Promise<void> {
  for (const name of await fs.readdir(dir)) {
    const temporary = name.startsWith(TMP_PREFIX) && name.endsWith('.tmp') && name !== ownTemporary();
    if (name !== committed && (isSnapshotFile(name) || temporary)) await fs.rm(path.join(dir, name), { force: true });
  }
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
