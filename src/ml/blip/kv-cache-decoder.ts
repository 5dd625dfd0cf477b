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
 * out, beams reordered in place). `cross_kv` [L,2,N,H,S,Dh] holds N inputs' cross-attention keys
 * and values, computed once per input by the caller and fed as per-layer views too. The rows of a
 * step are N equal groups, the beams of each input in turn (src/ml/generation/run-searches.ts);
 * the graph lets each group attend to its own input's keys and values. When an input's search
 * ends, its rows leave (`parents` names only the others) and its keys and values are dropped.
 */
export class KvCacheDecoder implements StepModel {
  private readonly layers: number;
  private readonly heads: number;
  private readonly headDim: number;
  private readonly encLen: number;
  /** Floats of one input's keys (or values) of one layer in `crossKv`. */
  private readonly perInput: number;
  /** Inputs `crossKv` has room for per layer (its N). */
  private readonly slots: number;
  private readonly cache: KvCache;
  /** All ones: every image token is visible. The same at every step, so built once. */
  private readonly encoderMask: ReturnType<typeof intTensor>;
  /** Inputs whose keys and values `crossKv` holds, in its first `live.length` slots per layer. */
  private live: number[];
  /** The input of each row of the last step; null before the first. */
  private rowInput: number[] | null = null;

  /** Number of decoder runs so far (tests count them). */
  runs = 0;

  /**
   * @param run executes a graph (in the inference worker, directly on its session).
   * @param decoderGraph manifest name of the decoder graph.
   * @param crossKv f32 [L,2,N,H,S,Dh] for N images or questions; the decoder compacts it in place
   *   as inputs finish.
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
    const [layers, two, inputs, heads, encLen, headDim] = crossKv.dims;
    if (crossKv.dims.length !== 6 || two !== 2 || !(inputs as number >= 1)) {
      throw new RangeError(`cross_kv must be [L,2,N,H,S,Dh], got [${crossKv.dims.join(',')}]`);
    }
    this.layers = layers as number;
    this.heads = heads as number;
    this.encLen = encLen as number;
    this.headDim = headDim as number;
    this.perInput = this.heads * this.encLen * this.headDim;
    this.slots = inputs as number;
    this.live = Array.from({ length: inputs as number }, (_, i) => i);
    this.cache = new KvCache({ layers: this.layers, heads: this.heads, headDim: this.headDim }, capacity, pool);
    this.encoderMask = intTensor(new Array<number>(this.encLen).fill(1), [1, this.encLen]);
  }

  async step(sequences: readonly number[][], parents: readonly number[] | null): Promise<Float32Array[]> {
    const rows = sequences.length;
    const total = (sequences[0] as number[]).length;
    if (total > this.capacity) throw new RangeError(`sequence of ${total} tokens exceeds the decoder cache capacity ${this.capacity}`);
    this.followRows(rows, parents);
    if (parents) this.cache.reorder(parents);
    this.cache.ensure(rows);
    const done = this.cache.length;
    const fresh = total - done;
    const feeds: TensorMap = {
      [IO.inputIds]: intTensor(sequences.flatMap((s) => s.slice(done)), [rows, fresh]),
      [IO.attentionMask]: intTensor(this.cache.mask(fresh), [rows, this.capacity + fresh]),
      [IO.pastLength]: intTensor([done], [1]),
      [IO.encoderAttentionMask]: this.encoderMask,
    };
    // One input per layer and key/value, each a view into the caches: nothing is copied.
    const n = this.live.length;
    for (let l = 0; l < this.layers; l++) {
      ([0, 1] as const).forEach((k) => {
        const kind = k === 0 ? 'key' : 'value';
        const start = (2 * l + k) * this.slots * this.perInput;
        feeds[LAYER_IO.past(l, kind)] = this.cache.view(l, k);
        feeds[LAYER_IO.cross(l, kind)] = { dtype: 'float32', dims: [n, this.heads, this.encLen, this.headDim], data: this.crossKv.data.subarray(start, start + n * this.perInput) };
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

  /**
   * Tracks which input each row belongs to, checks that the rows are equal groups of the live
   * inputs in order (what the graph's fold expects), and drops the keys and values of inputs no
   * row continues.
   */
  private followRows(rows: number, parents: readonly number[] | null): void {
    let rowInput: number[];
    if (!this.rowInput || !parents) {
      const n = this.live.length;
      if (rows % n !== 0) throw new RangeError(`${rows} rows cannot be split evenly among ${n} inputs`);
      rowInput = Array.from({ length: rows }, (_, r) => this.live[Math.floor(r / (rows / n))] as number);
    } else {
      const previous = this.rowInput;
      rowInput = parents.map((p) => previous[p] as number);
    }
    const kept = [...new Set(rowInput)];
    const group = rows / kept.length;
    const grouped = Number.isInteger(group) && rowInput.every((input, r) => input === kept[Math.floor(r / group)]);
    if (!grouped || kept.some((input, i) => i > 0 && input <= (kept[i - 1] as number))) {
      throw new RangeError(`rows must be equal groups of the inputs in order, got inputs [${rowInput.join(',')}]`);
    }
    if (kept.length < this.live.length) this.dropInputs(kept);
    this.rowInput = rowInput;
  }

  /** Moves the kept inputs' keys and values to the front of each layer's slots (in place). */
  private dropInputs(kept: number[]): void {
    const { data } = this.crossKv;
    const per = this.perInput;
    for (let lk = 0; lk < this.layers * 2; lk++) {
      const base = lk * this.slots * per;
      kept.forEach((input, to) => {
        const from = this.live.indexOf(input);
        if (from !== to) data.copyWithin(base + to * per, base + from * per, base + (from + 1) * per);
      });
    }
    this.live = kept;
  }

  /** Gives the cache memory back to the pool; the decoder cannot step afterwards. */
  release(): void {
    this.cache.release();
  }
}
