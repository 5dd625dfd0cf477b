import type { GenerationConfig } from '../generation/generation-config.js';
import type { FloatTensor, TensorMap } from './tensor.js';

/** Run one graph on named feeds. Jobs on batchable graphs may be merged along axis 0. */
export interface RunJob {
  kind: 'run';
  graph: string;
  feeds: TensorMap;
  /** Outputs to return (default: every declared output). */
  outputs?: string[];
}

/**
 * Several callers' runs of one batchable graph, merged by the scheduler into one run along axis 0.
 * The executor joins the feeds and splits the outputs where the sessions live, so the event loop
 * copies no tensors: each part's outputs come back in buffers of their own (shared memory when
 * large, see shared-memory.ts), not as views that would keep the whole batch alive.
 */
export interface MergedRunJob {
  kind: 'runMerged';
  graph: string;
  /** Each caller's feeds, in order; same names and inner dims. */
  parts: TensorMap[];
  outputs?: string[];
}

/**
 * A whole generation (caption or VQA answer) for one input: `crossKvGraph` once on
 * `encoderStates` [1,S,D], then the decoder step by step with greedy or beam search. Runs where
 * the sessions live, so the key/value caches never cross a thread boundary.
 */
export interface GenerateJob {
  kind: 'generate';
  crossKvGraph: string;
  decoderGraph: string;
  encoderStates: FloatTensor;
  /** Start tokens, e.g. [DEC] or [DEC] + prompt ids. */
  prefix: number[];
  config: GenerationConfig;
}

/**
 * Several callers' {@link GenerateJob}s with the same graphs, prefix, settings and encoder state
 * shape, merged by the scheduler: one cross-attention run over all inputs, then one decoder run
 * per step for every input's beams (src/ml/generation/run-searches.ts), so each step reads the
 * decoder's weights once for all of them. Only for decoders that take keys and values per input
 * (docs/model-format.md).
 */
export interface MergedGenerateJob extends Omit<GenerateJob, 'kind' | 'encoderStates'> {
  kind: 'generateMerged';
  /** Each caller's encoder states [1,S,D], in order. */
  parts: FloatTensor[];
}

/**
 * A whole generation of a decoder-only language model (BLIP-2's OPT) for one input: the decoder
 * graph step by step, `prefixEmbeds` [1,P,D] (the projected queries) before the `prefix` tokens.
 */
export interface LmGenerateJob {
  kind: 'lmGenerate';
  decoderGraph: string;
  prefixEmbeds: FloatTensor;
  /** Start tokens after the prefix embeddings: BOS + prompt ids. */
  prefix: number[];
  /** The decoder's cache shape: layers, heads, head dim. */
  layout: { layers: number; heads: number; headDim: number };
  /** maxLength counts the tokens of `prefix`, not the prefix embeddings. */
  config: GenerationConfig;
}

/** One image's stored ITM states: int8 codes [tokens, hidden], one scale per token. */
export interface ItmStateArrays {
  codes: Int8Array;
  scales: Float32Array;
}

/**
 * ITM of one text against many images. The worker builds the batches from the states (shared
 * memory, so nothing is copied on the event loop) in `chunk`-row runs.
 */
export interface ItmJob {
  kind: 'itm';
  graph: string;
  /** The text's ids, [first token] ... [SEP]. */
  inputIds: number[];
  states: ItmStateArrays[];
  /** Rows per graph run: bounds the worker's input buffers. */
  chunk: number;
}

/** Work for an inference executor. */
export type InferenceJob = RunJob | MergedRunJob | GenerateJob | MergedGenerateJob | LmGenerateJob | ItmJob;

/**
 * `run` -> the graph's outputs; `runMerged` -> each part's outputs; `generate`, `lmGenerate` -> the
 * token ids (prefix included); `generateMerged` -> each part's token ids; `itm` -> logits [n, 2],
 * flattened.
 */
export type JobResult<J extends InferenceJob> = J extends RunJob
  ? TensorMap
  : J extends MergedRunJob
    ? TensorMap[]
    : J extends GenerateJob | LmGenerateJob
      ? number[]
      : J extends MergedGenerateJob
        ? number[][]
        : Float32Array;

/** Interactive work (search, ITM re-ranking, VQA) goes before background work (ingest). */
export type Priority = 'interactive' | 'background';

/**
 * Whatever executes jobs: an in-process {@link InferenceHost}, a worker thread, a test fake. An
 * aborted `signal` stops the job between two graph runs (a generation between decoder steps, ITM
 * between batches) and rejects it with InferenceAbortedError.
 */
export interface JobExecutor {
  execute<J extends InferenceJob>(job: J, priority: Priority, signal?: AbortSignal): Promise<JobResult<J>>;
  close(): Promise<void>;
}
