import type { StepModel } from '../generation/generation-config.js';
import type { BufferPool } from '../runtime/buffer-pool.js';
import { intTensor, sizeOf, type FloatTensor, type TensorMap } from '../runtime/tensor.js';
import { KvCache } from '../generation/kv-cache.js';
import { IO, LAYER_IO } from './blip-io-names.js';

/** Runs one graph by manifest name, returning the named outputs. */
export type RunGraph = (graph: string, feeds: TensorMap, outputs?: string[]) => Promise<TensorMap>;

/**
 * A {@link StepModel} over a `*_decoder` graph (docs/model-format.md) with a fixed-capacity
 * self-attention cache that it owns ({@link KvCache}: per-layer views in, only the new positions
 * out, beams reordered in place). `cross_kv` [L,2,1,H,S,Dh] is computed once per input by the
 * caller, fed as per-layer views too, and broadcast to every row by the graph.
 */
export class KvCacheDecoder implements StepModel {
  private readonly layers: number;
  private readonly heads: number;
  private readonly headDim: number;
  private readonly encLen: number;
  private readonly cache: KvCache;
  /** All ones: every image token is visible. The same at every step, so built once. */
  private readonly encoderMask: ReturnType<typeof intTensor>;

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
    pool: BufferPool,
  ) {
    const [layers, two, batch, heads, encLen, headDim] = crossKv.dims;
    if (crossKv.dims.length !== 6 || two !== 2 || batch !== 1) {
      throw new RangeError(`cross_kv must be [L,2,1,H,S,Dh], got [${crossKv.dims.join(',')}]`);
    }
    this.layers = layers as number;
    this.heads = heads as number;
    this.encLen = encLen as number;
    this.headDim = headDim as number;
    this.cache = new KvCache({ layers: this.layers, heads: this.heads, headDim: this.headDim }, capacity, pool);
    this.encoderMask = intTensor(new Array<number>(this.encLen).fill(1), [1, this.encLen]);
  }

  async step(sequences: readonly number[][], parents: readonly number[] | null): Promise<Float32Array[]> {
    const rows = sequences.length;
    const total = (sequences[0] as number[]).length;
    if (total > this.capacity) throw new RangeError(`sequence of ${total} tokens exceeds the decoder cache capacity ${this.capacity}`);
    this.cache.ensure(rows);
    if (parents) this.cache.reorder(parents);
    const done = this.cache.length;
    const fresh = total - done;
    const feeds: TensorMap = {
      [IO.inputIds]: intTensor(sequences.flatMap((s) => s.slice(done)), [rows, fresh]),
      [IO.attentionMask]: intTensor(this.cache.mask(fresh), [rows, this.capacity + fresh]),
      [IO.pastLength]: intTensor([done], [1]),
      [IO.encoderAttentionMask]: this.encoderMask,
    };
    // One input per layer and key/value, each a view into the caches: nothing is copied.
    const crossBlock = this.heads * this.encLen * this.headDim;
    for (let l = 0; l < this.layers; l++) {
      ([0, 1] as const).forEach((k) => {
        const kind = k === 0 ? 'key' : 'value';
        const i = 2 * l + k;
        feeds[LAYER_IO.past(l, kind)] = this.cache.view(l, k);
        feeds[LAYER_IO.cross(l, kind)] = { dtype: 'float32', dims: [1, this.heads, this.encLen, this.headDim], data: this.crossKv.data.subarray(i * crossBlock, (i + 1) * crossBlock) };
      });
    }
    const out = await this.run(this.decoderGraph, feeds, [IO.logits, IO.newKv]);
    this.runs++;
    this.cache.append(out[IO.newKv] as FloatTensor, fresh);
    const logits = out[IO.logits] as FloatTensor;
    const vocab = logits.dims[2] as number;
    const stride = sizeOf(logits.dims.slice(1));
    return sequences.map((_, r) => logits.data.subarray(r * stride + (fresh - 1) * vocab, r * stride + fresh * vocab));
  }

  /** Gives the cache memory back to the pool; the decoder cannot step afterwards. */
  release(): void {
    this.cache.release();
  }
}
