import { availableParallelism } from 'node:os';
import { OnnxBlipEngine } from './blip/onnx-blip-engine.js';
import { decodersTakingSeveralInputs, loadModelManifest } from './manifest/model-manifest.js';
import { DEFAULT_IMAGE_LIMITS, type ImageLimits, type ResizeKernel } from './preprocess/image-decoder.js';
import { InferenceHost } from './runtime/inference-host.js';
import type { JobExecutor } from './runtime/inference-job.js';
import { InferenceScheduler } from './runtime/inference-scheduler.js';
import { verifyGraphFiles, type VerifyMode } from './runtime/onnx-session.js';
import { WorkerExecutor } from './runtime/worker-executor.js';
import { BertTokenizer } from './tokenizer/bert-tokenizer.js';

/** Options of {@link createBlipEngine}. */
export interface CreateBlipEngineOptions {
  /** Folder with manifest.json, tokenizer.json and the graphs (docs/model-format.md). */
  modelDir: string;
  /** ORT intra-op threads per worker. Default: cores / workers, at least 1. */
  threads?: number;
  /**
   * Inference worker threads, each with its own copy of the sessions. Default 1: one worker with
   * every core runs a lone request fastest and holds one copy of the weights; its run gate shares
   * it between interactive and background work (src/ml/runtime/run-gate.ts). More workers add
   * throughput on machines with many cores, at the cost of a copy of the weights each. 0 runs ORT
   * on the calling thread: it blocks the event loop, and exists for comparisons in tests and the bench.
   */
  workers?: number;
  /** Executors background work may not use. Default 0. */
  reservedInteractive?: number;
  /** ITM candidates per graph run inside the worker. Default 16. */
  itmBatchSize?: number;
  /** Byte and pixel limits of loadImage. */
  limits?: Partial<ImageLimits>;
  /**
   * Request merging: rows per run, how long a request may wait for companions, and how many
   * queued generations may run as one (decoders that take several inputs only).
   */
  batching?: { maxBatchSize?: number; maxWaitMs?: number; maxGenerateBatch?: number };
  /** Graph file verification at load. Default 'sha256'. */
  verify?: VerifyMode;
  /** Run every graph once at start. Default true. */
  warmUp?: boolean;
  /** sharp kernel for the resize to the model size; default the measured closest to PIL. */
  resizeKernel?: ResizeKernel;
  /** Seconds of each inference job, by graph (metrics). */
  onJobDone?: (graph: string, seconds: number) => void;
}

/**
 * Loads a model folder and starts its inference workers: validates the manifest, verifies the
 * graph files, loads the tokenizer, opens (and warms up) the sessions in each worker.
 * @throws ModelFormatError when the folder breaks the manifest contract.
 */
export async function createBlipEngine(options: CreateBlipEngineOptions): Promise<OnnxBlipEngine> {
  const { modelDir } = options;
  const manifest = await loadModelManifest(modelDir);
  await verifyGraphFiles(modelDir, manifest, options.verify ?? 'sha256');
  const tokenizer = await BertTokenizer.load(modelDir, manifest);
  const cores = availableParallelism();
  const workers = options.workers ?? 1;
  const threads = options.threads ?? Math.max(1, Math.floor(cores / Math.max(1, workers)));
  const hostOptions = { intraOpNumThreads: threads, warmUp: options.warmUp ?? true };
  let executors: JobExecutor[];
  if (workers === 0) {
    executors = [await InferenceHost.open(modelDir, manifest, hostOptions)];
  } else {
    const started = await Promise.allSettled(
      Array.from({ length: workers }, () => WorkerExecutor.start({ modelDir, manifest, options: hostOptions })),
    );
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) {
      await Promise.all(started.map((r) => (r.status === 'fulfilled' ? r.value.close() : undefined)));
      throw (failed as PromiseRejectedResult).reason;
    }
    executors = started.map((r) => (r as PromiseFulfilledResult<WorkerExecutor>).value);
  }
  const t = manifest.tasks;
  const scheduler = new InferenceScheduler(executors, {
    maxBatchSize: options.batching?.maxBatchSize,
    maxWaitMs: options.batching?.maxWaitMs,
    reservedInteractive: options.reservedInteractive,
    batchableGraphs: [t.retrieval.vision, t.caption.vision, t.vqa.vision, t.retrieval.textFeature, t.vqa.questionEncoder],
    batchableDecoders: decodersTakingSeveralInputs(manifest),
    maxGenerateBatch: options.batching?.maxGenerateBatch,
    onJobDone: options.onJobDone,
  });
  return new OnnxBlipEngine(manifest, tokenizer, scheduler, { ...DEFAULT_IMAGE_LIMITS, ...options.limits }, options.resizeKernel, {
    ...(options.itmBatchSize ? { itmBatchSize: options.itmBatchSize } : {}),
  });
}
