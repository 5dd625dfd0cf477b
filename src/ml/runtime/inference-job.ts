import type { GenerationConfig } from '../generation/generation-config.js';
import type { FloatTensor, TensorMap } from './tensor.js';

/** Run one graph on named feeds. Jobs on batchable graphs may be merged along axis 0. */
export interface RunJob {
  kind: 'run';
  graph: string;
  feeds: TensorMap;
  /**
   * The feeds' buffers belong to this job alone (the scheduler built them by merging requests),
   * so a worker executor may move them to its thread instead of copying them on the event loop.
   */
  ownsFeeds?: boolean;
}

/**
 * A whole generation (caption or VQA answer) for one input: `crossKvGraph` once on
 * `encoderStates` [1,S,D], then the decoder step by step with greedy or beam search. Runs where
 * the sessions live, so the KV cache and the tiled cross K/V never cross a thread boundary.
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

/** Work for an inference executor. */
export type InferenceJob = RunJob | GenerateJob;

/** `run` -> the graph's outputs; `generate` -> the token ids (prefix included). */
export type JobResult<J extends InferenceJob> = J extends RunJob ? TensorMap : number[];

/** Whatever executes jobs: an in-process {@link InferenceHost}, a worker thread, a test fake. */
export interface JobExecutor {
  execute(job: RunJob): Promise<TensorMap>;
  execute(job: GenerateJob): Promise<number[]>;
  execute(job: InferenceJob): Promise<TensorMap | number[]>;
  close(): Promise<void>;
}
