import type { StepModel } from '../generation/generation-config.js';
import type { RunGraph } from '../blip/kv-cache-decoder.js';
import type { BufferPool } from '../runtime/buffer-pool.js';
import { intTensor, type FloatTensor, type TensorMap } from '../runtime/tensor.js';
import { KvCache, type CacheLayout } from '../generation/kv-cache.js';
import { BLIP2_IO } from './blip2-manifest.js';

/**
 * A {@link StepModel} over BLIP-2's `llm_decoder` graph: OPT with the repo's fixed-capacity cache
 * ({@link KvCache}, as src/ml/blip/kv-cache-decoder.ts: per-layer views in, only the new tokens'
 * keys and values out).
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
  private readonly cache: KvCache;
  /** Tokens of the sequences already in the cache. */
  private seen = 0;

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
    pool: BufferPool,
  ) {
    const [batch, queries, hidden] = prefixEmbeds.dims as [number, number, number];
    if (prefixEmbeds.dims.length !== 3 || batch !== 1) throw new RangeError(`prefix_embeds must be [1,P,D], got [${prefixEmbeds.dims.join(',')}]`);
    this.queries = queries;
    this.hidden = hidden;
    this.cache = new KvCache(layout, queries + maxTokens, pool);
  }

  async step(sequences: readonly number[][], parents: readonly number[] | null): Promise<Float32Array[]> {
    const rows = sequences.length;
    const total = (sequences[0] as number[]).length;
    if (this.queries + total > this.cache.capacity) throw new RangeError(`sequence of ${total} tokens exceeds the decoder cache capacity`);
    this.cache.ensure(rows);
    if (parents) this.cache.reorder(parents);
    const done = this.cache.length;
    const prefix = done === 0 ? this.queries : 0;
    const freshIds = total - this.seen;
    const fresh = prefix + freshIds;
    const prefixData = new Float32Array(rows * prefix * this.hidden);
    for (let r = 0; r < rows && prefix > 0; r++) prefixData.set(this.prefixEmbeds.data, r * prefix * this.hidden);
    const feeds: TensorMap = {
      [BLIP2_IO.inputIds]: intTensor(sequences.flatMap((s) => s.slice(this.seen)), [rows, freshIds]),
      [BLIP2_IO.prefixEmbeds]: { dtype: 'float32', dims: [rows, prefix, this.hidden], data: prefixData },
      [BLIP2_IO.attentionMask]: intTensor(this.cache.mask(fresh), [rows, this.cache.capacity + fresh]),
      [BLIP2_IO.pastLength]: intTensor([done], [1]),
    };
    for (let l = 0; l < this.layout.layers; l++) {
      feeds[BLIP2_IO.past(l, 'key')] = this.cache.view(l, 0);
      feeds[BLIP2_IO.past(l, 'value')] = this.cache.view(l, 1);
    }
    const out = await this.run(this.decoderGraph, feeds, [BLIP2_IO.logits, BLIP2_IO.newKv]);
    this.runs++;
    this.cache.append(out[BLIP2_IO.newKv] as FloatTensor, fresh);
    this.seen = total;
    const logits = out[BLIP2_IO.logits] as FloatTensor;
    const vocab = logits.dims[1] as number;
    return sequences.map((_, r) => logits.data.subarray(r * vocab, (r + 1) * vocab));
  }

  /** Gives the cache memory back to the pool. */
  release(): void {
    this.cache.release();
  }
}
