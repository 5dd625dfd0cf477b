import type { StepModel } from '../generation/generation-config.js';
import type { RunGraph } from '../blip/kv-cache-decoder.js';
import type { BufferPool } from '../runtime/buffer-pool.js';
import { intTensor, sizeOf, type FloatTensor, type TensorMap } from '../runtime/tensor.js';
import { BLIP2_IO } from './blip2-manifest.js';

/** Shape of the language model's self-attention cache. */
export interface CacheLayout {
  layers: number;
  heads: number;
  headDim: number;
}

/**
 * A {@link StepModel} over BLIP-2's `llm_decoder` graph: OPT with the repo's fixed-capacity cache
 * (the same convention as src/ml/blip/kv-cache-decoder.ts: the cache [L,2,rows,H,capacity,Dh] is
 * owned here and fed as per-layer views, the graph returns only the new tokens' keys and values).
 *
 * The projected Q-Former queries come first in the language model's sequence, as embeddings, not
 * tokens: the first step feeds them as `prefix_embeds` (tiled to every row: beam search starts
 * with identical rows) before the prompt's ids, later steps feed zero prefix rows. The token
 * sequences the search sees hold only the tokens (BOS + prompt + answer); the cache holds the
 * queries too, so its capacity is queries + maxLength.
 */
export class OptKvDecoder implements StepModel {
  private readonly queries: number;
  private readonly hidden: number;
  private readonly capacity: number;
  private rows = 0;
  /** Positions filled in every row of the cache (queries included). */
  private length = 0;
  /** Tokens of the sequences already in the cache. */
  private seen = 0;
  private cache: Float32Array | null = null;
  private spare: Float32Array | null = null;
  private readonly held: ArrayBuffer[] = [];

  /** Number of decoder runs so far. */
  runs = 0;

  /**
   * @param prefixEmbeds f32 [1,P,D]: the query embeddings of one image.
   * @param maxTokens the longest token sequence (BOS + prompt + answer) the search will reach.
   */
  constructor(
    private readonly run: RunGraph,
    private readonly decoderGraph: string,
    private readonly prefixEmbeds: FloatTensor,
    private readonly layout: CacheLayout,
    maxTokens: number,
    private readonly pool: BufferPool,
  ) {
    const [batch, queries, hidden] = prefixEmbeds.dims as [number, number, number];
    if (prefixEmbeds.dims.length !== 3 || batch !== 1) throw new RangeError(`prefix_embeds must be [1,P,D], got [${prefixEmbeds.dims.join(',')}]`);
    this.queries = queries;
    this.hidden = hidden;
    this.capacity = queries + maxTokens;
  }

  async step(sequences: readonly number[][], parents: readonly number[] | null): Promise<Float32Array[]> {
    const rows = sequences.length;
    const total = (sequences[0] as number[]).length;
    if (this.queries + total > this.capacity) throw new RangeError(`sequence of ${total} tokens exceeds the decoder cache capacity`);
    if (!this.cache) this.allocate(rows);
    else if (rows !== this.rows) throw new RangeError(`decoder started with ${this.rows} rows, got ${rows}`);
    if (parents && this.length > 0 && !parents.every((p, i) => p === i)) this.reorder(parents);
    const first = this.length === 0;
    const prefix = first ? this.queries : 0;
    const freshIds = total - this.seen;
    const fresh = prefix + freshIds;
    const width = this.capacity + fresh;
    const mask = new Array<number>(rows * width);
    for (let r = 0; r < rows; r++) {
      for (let p = 0; p < width; p++) mask[r * width + p] = p < this.length || p >= this.capacity ? 1 : 0;
    }
    const prefixData = new Float32Array(rows * prefix * this.hidden);
    for (let r = 0; r < rows && prefix > 0; r++) prefixData.set(this.prefixEmbeds.data, r * prefix * this.hidden);
    const feeds: TensorMap = {
      [BLIP2_IO.inputIds]: intTensor(sequences.flatMap((s) => s.slice(this.seen)), [rows, freshIds]),
      [BLIP2_IO.prefixEmbeds]: { dtype: 'float32', dims: [rows, prefix, this.hidden], data: prefixData },
      [BLIP2_IO.attentionMask]: intTensor(mask, [rows, width]),
      [BLIP2_IO.pastLength]: intTensor([this.length], [1]),
    };
    const cache = this.cache as Float32Array;
    const { layers, heads, headDim } = this.layout;
    const block = rows * heads * this.capacity * headDim;
    for (let l = 0; l < layers; l++) {
      (['key', 'value'] as const).forEach((kind, k) => {
        const i = 2 * l + k;
        feeds[BLIP2_IO.past(l, kind)] = { dtype: 'float32', dims: [rows, heads, this.capacity, headDim], data: cache.subarray(i * block, (i + 1) * block) };
      });
    }
    const out = await this.run(this.decoderGraph, feeds, [BLIP2_IO.logits, BLIP2_IO.newKv]);
    this.runs++;
    this.append(out[BLIP2_IO.newKv] as FloatTensor, fresh);
    this.seen = total;
    const logits = out[BLIP2_IO.logits] as FloatTensor;
    const vocab = logits.dims[1] as number;
    return sequences.map((_, r) => logits.data.subarray(r * vocab, (r + 1) * vocab));
  }

  /** Gives the cache memory back to the pool. */
  release(): void {
    for (const b of this.held.splice(0)) this.pool.release(b);
    this.cache = null;
    this.spare = null;
  }

  private allocate(rows: number): void {
    this.rows = rows;
    const { layers, heads, headDim } = this.layout;
    const n = sizeOf([layers, 2, rows, heads, this.capacity, headDim]);
    const take = (): Float32Array => {
      const b = this.pool.acquire(n * 4);
      this.held.push(b);
      // Pooled memory may hold NaN bit patterns; masked slots must be finite (the mask is additive).
      return new Float32Array(b, 0, n).fill(0);
    };
    this.cache = take();
    this.spare = take();
  }

  /** Writes new_kv [L,2,rows,H,fresh,Dh] at positions length..length+fresh-1. */
  private append(newKv: FloatTensor, fresh: number): void {
    const cache = this.cache as Float32Array;
    const dh = this.layout.headDim;
    const blocks = this.layout.layers * 2 * this.rows * this.layout.heads;
    for (let b = 0; b < blocks; b++) {
      cache.set(newKv.data.subarray(b * fresh * dh, (b + 1) * fresh * dh), (b * this.capacity + this.length) * dh);
    }
    this.length += fresh;
  }

  /** Row r takes row parents[r]'s filled positions. */
  private reorder(parents: readonly number[]): void {
    const src = this.cache as Float32Array;
    const dst = this.spare as Float32Array;
    const block = this.capacity * this.layout.headDim;
    const used = this.length * this.layout.headDim;
    const perRow = this.layout.heads * block;
    for (let lk = 0; lk < this.layout.layers * 2; lk++) {
      for (let r = 0; r < this.rows; r++) {
        const from = (lk * this.rows + (parents[r] as number)) * perRow;
        const to = (lk * this.rows + r) * perRow;
        for (let h = 0; h < this.layout.heads; h++) dst.set(src.subarray(from + h * block, from + h * block + used), to + h * block);
      }
    }
    this.cache = dst;
    this.spare = src;
  }
}
