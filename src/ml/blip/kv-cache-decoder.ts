import type { StepModel } from '../generation/generation-config.js';
import type { BufferPool } from '../runtime/buffer-pool.js';
import { intTensor, sizeOf, type FloatTensor, type TensorMap } from '../runtime/tensor.js';
import { IO, LAYER_IO } from './blip-io-names.js';

/** Runs one graph by manifest name, returning the named outputs. */
export type RunGraph = (graph: string, feeds: TensorMap, outputs?: string[]) => Promise<TensorMap>;

/**
 * A {@link StepModel} over a `*_decoder` graph (docs/model-format.md) with a fixed-capacity
 * self-attention cache that this class owns.
 *
 * The cache [L,2,rows,H,capacity,Dh] lives in pooled memory and is fed at every step as one
 * view per layer and key/value (a graph that slices one stacked input copies it per step); the
 * graph hides the unused slots with the attention mask and returns only the new tokens' keys and
 * values, which are written into the cache here. So a step copies kilobytes, not the cache:
 * onnxruntime-node copies every output into a fresh buffer, and fresh memory is slow to touch.
 * Beam reordering copies rows within the cache (only the filled positions). `cross_kv`
 * [L,2,1,H,S,Dh] is computed once per input by the caller, fed as per-layer views too, and
 * broadcast to every row by the graph.
 */
export class KvCacheDecoder implements StepModel {
  private readonly layers: number;
  private readonly heads: number;
  private readonly headDim: number;
  private readonly encLen: number;
  private rows = 0;
  /** Positions filled in every row of the cache. */
  private length = 0;
  private cache: Float32Array | null = null;
  private spare: Float32Array | null = null;
  private readonly held: ArrayBuffer[] = [];

  /** Number of decoder runs so far (tests count them). */
  runs = 0;

  /**
   * @param run executes a graph (in the inference worker, directly on its session).
   * @param decoderGraph manifest name of the decoder graph.
   * @param crossKv f32 [L,2,1,H,S,Dh] for a single image or question.
   * @param capacity the longest sequence this decoder will see (the generation's maxLength).
   * @param pool where the cache memory comes from; {@link release} gives it back.
   */
  constructor(
    private readonly run: RunGraph,
    private readonly decoderGraph: string,
    private readonly crossKv: FloatTensor,
    private readonly capacity: number,
    private readonly pool: BufferPool,
  ) {
    const [layers, two, batch, heads, encLen, headDim] = crossKv.dims;
    if (crossKv.dims.length !== 6 || two !== 2 || batch !== 1) {
      throw new RangeError(`cross_kv must be [L,2,1,H,S,Dh], got [${crossKv.dims.join(',')}]`);
    }
    this.layers = layers as number;
    this.heads = heads as number;
    this.encLen = encLen as number;
    this.headDim = headDim as number;
  }

  async step(sequences: readonly number[][], parents: readonly number[] | null): Promise<Float32Array[]> {
    const rows = sequences.length;
    const total = (sequences[0] as number[]).length;
    if (total > this.capacity) throw new RangeError(`sequence of ${total} tokens exceeds the decoder cache capacity ${this.capacity}`);
    if (!this.cache) this.allocate(rows);
    else if (rows !== this.rows) throw new RangeError(`decoder started with ${this.rows} rows, got ${rows}`);
    if (parents && this.length > 0 && !parents.every((p, i) => p === i)) this.reorder(parents);
    const fresh = total - this.length;
    const mask = new Array<number>(rows * (this.capacity + fresh));
    for (let r = 0; r < rows; r++) {
      for (let p = 0; p < this.capacity + fresh; p++) mask[r * (this.capacity + fresh) + p] = p < this.length || p >= this.capacity ? 1 : 0;
    }
    const feeds: TensorMap = {
      [IO.inputIds]: intTensor(sequences.flatMap((s) => s.slice(this.length)), [rows, fresh]),
      [IO.attentionMask]: intTensor(mask, [rows, this.capacity + fresh]),
      [IO.pastLength]: intTensor([this.length], [1]),
      [IO.encoderAttentionMask]: intTensor(new Array<number>(this.encLen).fill(1), [1, this.encLen]),
    };
    // One input per layer and key/value, each a view into the caches: nothing is copied.
    const cache = this.cache as Float32Array;
    const pastBlock = rows * this.heads * this.capacity * this.headDim;
    const crossBlock = this.heads * this.encLen * this.headDim;
    for (let l = 0; l < this.layers; l++) {
      (['key', 'value'] as const).forEach((kind, k) => {
        const i = 2 * l + k;
        feeds[LAYER_IO.past(l, kind)] = { dtype: 'float32', dims: [rows, this.heads, this.capacity, this.headDim], data: cache.subarray(i * pastBlock, (i + 1) * pastBlock) };
        feeds[LAYER_IO.cross(l, kind)] = { dtype: 'float32', dims: [1, this.heads, this.encLen, this.headDim], data: this.crossKv.data.subarray(i * crossBlock, (i + 1) * crossBlock) };
      });
    }
    const out = await this.run(this.decoderGraph, feeds, [IO.logits, IO.newKv]);
    this.runs++;
    this.append(out[IO.newKv] as FloatTensor, fresh);
    const logits = out[IO.logits] as FloatTensor;
    const vocab = logits.dims[2] as number;
    const stride = sizeOf(logits.dims.slice(1));
    return sequences.map((_, r) => logits.data.subarray(r * stride + (fresh - 1) * vocab, r * stride + fresh * vocab));
  }

  /** Gives the cache memory back to the pool; the decoder cannot step afterwards. */
  release(): void {
    for (const b of this.held.splice(0)) this.pool.release(b);
    this.cache = null;
    this.spare = null;
  }

  private cacheDims(): number[] {
    return [this.layers, 2, this.rows, this.heads, this.capacity, this.headDim];
  }

  private allocate(rows: number): void {
    this.rows = rows;
    const n = sizeOf(this.cacheDims());
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

  /** Writes new_kv [L,2,rows,H,fresh,Dh] at positions length..length+fresh-1. */
  private append(newKv: FloatTensor, fresh: number): void {
    const cache = this.cache as Float32Array;
    const dh = this.headDim;
    const blocks = this.layers * 2 * this.rows * this.heads;
    for (let b = 0; b < blocks; b++) {
      cache.set(newKv.data.subarray(b * fresh * dh, (b + 1) * fresh * dh), (b * this.capacity + this.length) * dh);
    }
    this.length += fresh;
  }

  /** Row r takes row parents[r]'s filled positions. */
  private reorder(parents: readonly number[]): void {
    const src = this.cache as Float32Array;
    const dst = this.spare as Float32Array;
    const block = this.capacity * this.headDim;
    const used = this.length * this.headDim;
    const perRow = this.heads * block;
    for (let lk = 0; lk < this.layers * 2; lk++) {
      for (let r = 0; r < this.rows; r++) {
        const from = (lk * this.rows + (parents[r] as number)) * perRow;
        const to = (lk * this.rows + r) * perRow;
        for (let h = 0; h < this.heads; h++) dst.set(src.subarray(from + h * block, from + h * block + used), to + h * block);
      }
    }
    this.cache = dst;
    this.spare = src;
  }
}
