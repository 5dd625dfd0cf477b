import type { BufferPool } from '../runtime/buffer-pool.js';
import { sizeOf, type FloatTensor } from '../runtime/tensor.js';

/** Shape of a decoder's self-attention cache. */
export interface CacheLayout {
  layers: number;
  heads: number;
  headDim: number;
}

/**
 * The fixed-capacity self-attention cache of the repo's decoder graphs (docs/model-format.md):
 * [L,2,rows,H,capacity,Dh] in pooled memory, fed at every step as one view per layer and
 * key/value (a graph that slices one stacked input copies it per step). The graph hides the
 * unused slots with the attention mask and returns only the new positions' keys and values, which
 * {@link append} writes in; so a step copies kilobytes, not the cache (onnxruntime-node copies
 * every output into a fresh buffer, and fresh memory is slow to touch). Beam reordering copies rows
 * within the cache, only the filled positions. BLIP's and BLIP-2's decoders
 * (src/ml/blip/kv-cache-decoder.ts, src/ml/blip2/opt-kv-decoder.ts) each own one.
 */
export class KvCache {
  private rowCount = 0;
  /** Positions filled in every row. */
  private filled = 0;
  private cache: Float32Array | null = null;
  private spare: Float32Array | null = null;
  private readonly held: ArrayBuffer[] = [];

  constructor(
    private readonly layout: CacheLayout,
    readonly capacity: number,
    private readonly pool: BufferPool,
  ) {}

  /** Positions filled in every row. */
  get length(): number {
    return this.filled;
  }

  /**
   * Takes the memory for `rows` on first use; a later step must keep the rows it has (after
   * {@link reorder}, which may drop some).
   */
  ensure(rows: number): void {
    if (this.cache) {
      if (rows !== this.rowCount) throw new RangeError(`decoder cache holds ${this.rowCount} rows, got ${rows}`);
      return;
    }
    this.rowCount = rows;
    const { layers, heads, headDim } = this.layout;
    const n = sizeOf([layers, 2, rows, heads, this.capacity, headDim]);
    const take = (): Float32Array => {
      const b = this.pool.acquire(n * 4);
      this.held.push(b);
      // Pooled memory holds whatever its last user wrote, possibly NaN bit patterns; the graph
      // only masks unused slots (additively), so they must hold finite values.
      return new Float32Array(b, 0, n).fill(0);
    };
    this.cache = take();
    this.spare = take();
  }

  /** The attention mask [rows, capacity + fresh]: the filled positions and the `fresh` new ones. */
  mask(fresh: number): number[] {
    const width = this.capacity + fresh;
    const mask = new Array<number>(this.rowCount * width);
    for (let r = 0; r < this.rowCount; r++) {
      for (let p = 0; p < width; p++) mask[r * width + p] = p < this.filled || p >= this.capacity ? 1 : 0;
    }
    return mask;
  }

  /** Layer `layer`'s keys (k = 0) or values (k = 1), [rows,H,capacity,Dh], a view: nothing is copied. */
  view(layer: number, k: 0 | 1): FloatTensor {
    const { heads, headDim } = this.layout;
    const block = this.rowCount * heads * this.capacity * headDim;
    const i = 2 * layer + k;
    return { dtype: 'float32', dims: [this.rowCount, heads, this.capacity, headDim], data: (this.cache as Float32Array).subarray(i * block, (i + 1) * block) };
  }

  /** Writes new_kv [L,2,rows,H,fresh,Dh] at positions length..length+fresh-1. */
  append(newKv: FloatTensor, fresh: number): void {
    const cache = this.cache as Float32Array;
    const dh = this.layout.headDim;
    const blocks = this.layout.layers * 2 * this.rowCount * this.layout.heads;
    for (let b = 0; b < blocks; b++) {
      cache.set(newKv.data.subarray(b * fresh * dh, (b + 1) * fresh * dh), (b * this.capacity + this.filled) * dh);
    }
    this.filled += fresh;
  }

  /**
   * Row r takes row parents[r]'s filled positions (nothing to do when every row keeps its own).
   * `parents` may be shorter than the rows held: the rows no one takes are dropped (a finished
   * input of a batched generation, src/ml/generation/run-searches.ts), and the cache holds
   * `parents.length` rows from then on.
   */
  reorder(parents: readonly number[]): void {
    const rows = parents.length;
    if (rows > this.rowCount || parents.some((p) => !Number.isInteger(p) || p < 0 || p >= this.rowCount)) {
      throw new RangeError(`cannot reorder ${this.rowCount} cached rows by [${parents.join(',')}]`);
    }
    if (this.filled === 0) {
      this.rowCount = rows;
      return;
    }
    if (rows === this.rowCount && parents.every((p, i) => p === i)) return;
    const src = this.cache as Float32Array;
    const dst = this.spare as Float32Array;
    const block = this.capacity * this.layout.headDim;
    const used = this.filled * this.layout.headDim;
    const perRow = this.layout.heads * block;
    for (let lk = 0; lk < this.layout.layers * 2; lk++) {
      for (let r = 0; r < rows; r++) {
        const from = (lk * this.rowCount + (parents[r] as number)) * perRow;
        const to = (lk * rows + r) * perRow;
        for (let h = 0; h < this.layout.heads; h++) dst.set(src.subarray(from + h * block, from + h * block + used), to + h * block);
      }
    }
    this.rowCount = rows;
    this.cache = dst;
    this.spare = src;
  }

  /** Gives the memory back to the pool; the cache cannot be used afterwards. */
  release(): void {
    for (const b of this.held.splice(0)) this.pool.release(b);
    this.cache = null;
    this.spare = null;
  }
}
