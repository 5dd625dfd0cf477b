import fs from 'node:fs/promises';
import path from 'node:path';
import hnswlib from 'hnswlib-node';
import type { VectorIndex, VectorMatch } from './vector-index.js';
import { readIndexManifest, writeIndexManifest } from './index-manifest.js';

export interface HnswOptions {
  m: number;
  efConstruction: number;
  efSearch: number;
  initialCapacity: number;
}

export type HnswOpenResult =
  | { status: 'loaded'; index: HnswVectorIndex }
  | { status: 'empty'; index: HnswVectorIndex; reason: string };

/**
 * hnswlib-node behind VectorIndex: cosine space, doubles capacity when full, deletes by markDelete
 * (tracked here, since hnswlib-node cannot report them) and compacts by rebuilding from live points.
 * Persisted as `<dir>/hnsw.bin` plus a manifest naming the model and dimension that built it.
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
    const raw = new hnswlib.HierarchicalNSW('cosine', dim);
    try {
      await fs.access(path.join(dir, 'hnsw.bin'));
      await raw.readIndex(path.join(dir, 'hnsw.bin'));
    } catch (error) {
      return empty(`index file unreadable: ${(error as Error).message}`);
    }
    raw.setEf(options.efSearch);
    const index = new HnswVectorIndex(dim, modelId, options, raw);
    for (const label of raw.getIdsList()) index.present.add(label);
    for (const label of manifest.deleted) if (index.present.has(label)) index.deleted.add(label);
    return { status: 'loaded', index };
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

  labels(): number[] {
    return [...this.present].filter((l) => !this.deleted.has(l));
  }

  search(query: Float32Array, k: number): VectorMatch[] {
    const n = Math.min(k, this.size);
    if (n <= 0) return [];
    // ef below k silently returns fewer than k results.
    this.hnsw.setEf(Math.max(this.options.efSearch, n));
    const { neighbors, distances } = this.hnsw.searchKnn(Array.from(query), n);
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

  /** Index file first, then the manifest; both atomic renames. */
  async save(dir: string): Promise<void> {
    await fs.mkdir(dir, { recursive: true });
    const tmp = path.join(dir, `.hnsw.bin.${process.pid}.tmp`);
    // Synchronous on purpose: the async writeIndex reads the graph on a libuv thread while
    // addPoint/markDelete may mutate it from the event loop; a torn snapshot would be saved.
    this.hnsw.writeIndexSync(tmp);
    await fs.rename(tmp, path.join(dir, 'hnsw.bin'));
    await writeIndexManifest(path.join(dir, 'hnsw.json'), {
      formatVersion: 1,
      modelId: this.modelId,
      dim: this.dim,
      deleted: [...this.deleted],
      savedAt: new Date().toISOString(),
    });
  }
}
