import type { GraphManifest } from '../manifest/model-manifest.js';
import type { InferenceJob, Priority } from './inference-job.js';
import type { TensorMap } from './tensor.js';
import type { InferenceHostOptions } from './inference-host.js';

/** `workerData` of an inference worker. */
export interface WorkerInit {
  modelDir: string;
  manifest: GraphManifest;
  options: InferenceHostOptions;
}

/** Main -> worker. */
export interface JobMessage {
  id: number;
  job: InferenceJob;
  priority: Priority;
}

/** Main -> worker: stop job `cancel` between two graph runs. */
export interface CancelMessage {
  cancel: number;
}

/** A serialisable error: class name, code and message survive the thread boundary. */
export interface WireError {
  name: string;
  code?: string;
  message: string;
}

/** What a job returns across the thread boundary (inference-job.ts, JobResult). */
export type ReplyResult = TensorMap | TensorMap[] | number[] | number[][] | Float32Array;

/** Worker -> main. `id` 0 announces readiness (or a failed start). */
export type ReplyMessage =
  | { id: number; ok: true; result: ReplyResult }
  | { id: number; ok: false; error: WireError };
