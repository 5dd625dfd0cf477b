import type { StepModel } from '../generation/generation-config.js';
import { concat, gather, intTensor, sizeOf, type FloatTensor, type TensorMap } from '../runtime/tensor.js';
import { IO } from './blip-io-names.js';

/** Runs one graph by manifest name. */
export type RunGraph = (graph: string, feeds: TensorMap) => Promise<TensorMap>;

/**
 * A {@link StepModel} over a `*_decoder` graph with a self-attention KV cache.
 *
 * `cross_kv` [L,2,1,H,S,Dh] is computed once per image/question by the caller and tiled here
 * once per row count, then fed unchanged at every step. The self-attention cache `present_kv`
 * [L,2,rows,H,past,Dh] is fed back as `past_kv`, reordered along the batch axis when beam search
 * changes parents. The first call of a beam search (all rows equal) runs one row and tiles.
 */
export class KvCacheDecoder implements StepModel {
  private past: FloatTensor | null = null;
  private pastLen = 0;
  private readonly tiled = new Map<number, FloatTensor>();
  private readonly layers: number;
  private readonly heads: number;
  private readonly headDim: number;
  private readonly encLen: number;

  /**
   * @param run executes a graph (in the inference worker, directly on its session).
   * @param decoderGraph manifest name of the decoder graph.
   * @param crossKv f32 [L,2,1,H,S,Dh] for a single image or question.
   */
  constructor(private readonly run: RunGraph, private readonly decoderGraph: string, private readonly crossKv: FloatTensor) {
    const [layers, two, batch, heads, encLen, headDim] = crossKv.dims;
    if (crossKv.dims.length !== 6 || two !== 2 || batch !== 1) {
      throw new RangeError(`cross_kv must be [L,2,1,H,S,Dh], got [${crossKv.dims.join(',')}]`);
    }
    this.layers = layers as number;
    this.heads = heads as number;
    this.encLen = encLen as number;
    this.headDim = headDim as number;
  }

  /** Number of decoder runs so far (tests count them). */
  runs = 0;

  async step(sequences: readonly number[][], parents: readonly number[] | null): Promise<Float32Array[]> {
    const rows = sequences.length;
    const allSame = this.past === null && sequences.every((s) => s.join() === (sequences[0] as number[]).join());
    if (allSame && rows > 1) {
      const [logits] = await this.forward([sequences[0] as number[]]);
      this.past = gather(this.past as unknown as FloatTensor, new Array<number>(rows).fill(0), 2);
      return new Array<Float32Array>(rows).fill(logits as Float32Array);
    }
    if (this.past && parents && !parents.every((p, i) => p === i)) this.past = gather(this.past, parents, 2);
    return this.forward(sequences);
  }

  private async forward(sequences: readonly number[][]): Promise<Float32Array[]> {
    const rows = sequences.length;
    const total = (sequences[0] as number[]).length;
    const fresh = total - this.pastLen;
    const ids = sequences.flatMap((s) => s.slice(this.pastLen));
    const past = this.past ?? { dtype: 'float32' as const, dims: [this.layers, 2, rows, this.heads, 0, this.headDim], data: new Float32Array(0) };
    const feeds: TensorMap = {
      [IO.inputIds]: intTensor(ids, [rows, fresh]),
      [IO.attentionMask]: intTensor(new Array<number>(rows * total).fill(1), [rows, total]),
      [IO.pastKv]: past,
      [IO.crossKv]: this.crossFor(rows),
      [IO.encoderAttentionMask]: intTensor(new Array<number>(rows * this.encLen).fill(1), [rows, this.encLen]),
    };
    const out = await this.run(this.decoderGraph, feeds);
    this.runs++;
    const logits = out[IO.logits] as FloatTensor;
    this.past = out[IO.presentKv] as FloatTensor;
    this.pastLen = total;
    const vocab = logits.dims[2] as number;
    const stride = sizeOf(logits.dims.slice(1));
    return sequences.map((_, r) => logits.data.slice(r * stride + (fresh - 1) * vocab, r * stride + fresh * vocab));
  }

  private crossFor(rows: number): FloatTensor {
    let t = this.tiled.get(rows);
    if (!t) {
      t = rows === 1 ? this.crossKv : concat(new Array<FloatTensor>(rows).fill(this.crossKv), 2);
      this.tiled.set(rows, t);
    }
    return t;
  }
}
