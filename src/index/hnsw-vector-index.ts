import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import hnswlib from 'hnswlib-node';
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
  private readonly deleted = new Set<number>();
  private readonly present = new Set<number>();

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
    if (!this.present.has(label) && this.hnsw.getCurrentCount() >= this.hnsw.getMaxElements()) {
      // A saved empty index reloads with capacity 0, hence the floor.
      this.hnsw.resizeIndex(Math.max(this.options.initialCapacity, this.hnsw.getMaxElements() * 2));
    }
    // hnswlib updates an existing label in place and un-marks it if it was deleted.
    this.hnsw.addPoint(Array.from(vector), label);
    this.present.add(label);
    this.deleted.delete(label);
  }

  remove(label: number): void {
    if (!this.present.has(label) || this.deleted.has(label)) return;
    this.hnsw.markDelete(label);
    this.deleted.add(label);
  }

  has(label: number): boolean {
    return this.present.has(label) && !this.deleted.has(label);
  }

  /** The stored vector of a live label (normalised: the cosine space stores unit vectors). */
  vector(label: number): Float32Array {
    if (!this.has(label)) throw new RangeError(`label ${label} is not in the index`);
    return Float32Array.from(this.hnsw.getPoint(label));
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
    // ef below k silently returns fewer than k results.
    this.hnsw.setEf(Math.max(this.options.efSearch, n));
    const { neighbors, distances } = allow ? this.hnsw.searchKnn(Array.from(query), n, allow) : this.hnsw.searchKnn(Array.from(query), n);
    return neighbors.map((label, i) => ({ label, score: 1 - (distances[i] as number) }));
  }

  /** Rebuilds the graph from live points when deletions pass `ratio` of all entries. */
  compactIfNeeded(ratio: number): boolean {
    if (this.deleted.size === 0 || this.deleted.size < ratio * this.present.size) return false;
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
   */
  async save(dir: string, feedPosition?: () => number): Promise<void> {
    await fs.mkdir(dir, { recursive: true });
    const tmp = path.join(dir, ownTemporary());
    // Synchronous on purpose: the async writeIndex reads the graph on a libuv thread while
    // addPoint/markDelete may mutate it from the event loop; a torn snapshot would be saved.
    this.hnsw.writeIndexSync(tmp);
    // Read in the same tick as the write: the snapshot holds exactly the feed up to here.
    const position = feedPosition?.();
    const deleted = [...this.deleted];
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
