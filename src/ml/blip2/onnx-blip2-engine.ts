import { availableParallelism } from 'node:os';
import type { LoadedImage } from '../blip-engine.js';
import type { PriorityOption } from '../blip/onnx-blip-engine.js';
import type { GenerationConfig } from '../generation/generation-config.js';
import { decodeImage, DEFAULT_IMAGE_LIMITS, type ImageLimits, type ResizeKernel } from '../preprocess/image-decoder.js';
import { InferenceHost } from '../runtime/inference-host.js';
import type { JobExecutor } from '../runtime/inference-job.js';
import { InferenceScheduler } from '../runtime/inference-scheduler.js';
import { verifyGraphFiles, type VerifyMode } from '../runtime/onnx-session.js';
import { floatTensor, type FloatTensor } from '../runtime/tensor.js';
import { WorkerExecutor } from '../runtime/worker-executor.js';
import type { VisualAnswerer } from '../visual-answerer.js';
import { BLIP2_IO, loadBlip2Manifest, type Blip2Manifest } from './blip2-manifest.js';
import { OptTokenizer } from './opt-tokenizer.js';

/** Per-question generation settings; defaults from the manifest's generation.vqa. */
export interface Blip2AnswerOptions extends PriorityOption {
  numBeams?: number;
  maxNewTokens?: number;
}

/**
 * BLIP-2 visual question answering over a `family: "blip2"` folder (docs/model-format.md):
 * vision encoder, Q-Former with the language projection, then OPT generating after the 32 query
 * embeddings and `[BOS] Question: {q} Answer:`, greedy or beam search (src/ml/generation) with the
 * fixed-capacity cache of {@link OptKvDecoder}, stopping at EOS or a newline. Graph runs go through
 * the same scheduler and inference workers as BLIP's.
 */
export class OnnxBlip2Engine implements VisualAnswerer {
  readonly modelId: string;
  readonly name: string;
  readonly family = 'blip2' as const;
  readonly tasks = ['vqa'] as const;

  constructor(
    readonly manifest: Blip2Manifest,
    private readonly tokenizer: OptTokenizer,
    readonly scheduler: InferenceScheduler,
    private readonly limits: ImageLimits = DEFAULT_IMAGE_LIMITS,
    private readonly kernel?: ResizeKernel,
  ) {
    this.modelId = manifest.modelId;
    this.name = manifest.name;
  }

  /** Decodes and preprocesses an image for this model (its own size, 224 for the OPT checkpoints). */
  async loadImage(bytes: Uint8Array): Promise<LoadedImage> {
    return decodeImage(bytes, this.manifest.image, this.limits, this.kernel);
  }

  /** Vision states [1,N,Dv] of a preprocessed image. */
  async imageEmbeds(image: LoadedImage, options: PriorityOption = {}): Promise<FloatTensor> {
    const s = this.manifest.image.size;
    const out = await this.scheduler.run(this.manifest.tasks.vqa.vision, { [BLIP2_IO.pixelValues]: floatTensor(image.pixels, [1, 3, s, s]) },
      options.priority ?? 'interactive', [BLIP2_IO.imageEmbeds], options.signal);
    return out[BLIP2_IO.imageEmbeds] as FloatTensor;
  }

  /** The 32 query embeddings in the language model's space [1,Q,D]. */
  async queryEmbeds(imageEmbeds: FloatTensor, options: PriorityOption = {}): Promise<FloatTensor> {
    const out = await this.scheduler.run(this.manifest.tasks.vqa.qformer, { [BLIP2_IO.imageEmbeds]: imageEmbeds },
      options.priority ?? 'interactive', [BLIP2_IO.queryEmbeds], options.signal);
    return out[BLIP2_IO.queryEmbeds] as FloatTensor;
  }

  /** Generated ids after the prompt (the stop token included when one ended the answer). */
  async answerIds(image: LoadedImage, question: string, options: Blip2AnswerOptions = {}): Promise<{ ids: number[]; promptIds: number[] }> {
    const promptIds = this.tokenizer.promptIds(question);
    const queries = await this.queryEmbeds(await this.imageEmbeds(image, options), options);
    return { ids: await this.generate(queries, promptIds, options), promptIds };
  }

  /** Generation from given query embeddings (the parity test feeds PyTorch's pixels through here). */
  async generate(queries: FloatTensor, promptIds: number[], options: Blip2AnswerOptions = {}): Promise<number[]> {
    const d = this.manifest.generation.vqa;
    const special = this.manifest.text.specialTokens;
    const maxNew = options.maxNewTokens ?? d.maxNewTokens;
    const config: GenerationConfig = {
      maxLength: promptIds.length + maxNew,
      minLength: promptIds.length + d.minNewTokens,
      numBeams: options.numBeams ?? d.numBeams,
      repetitionPenalty: d.repetitionPenalty,
      eosTokenId: special.eos,
      ...(special.newline !== undefined ? { stopTokenIds: [special.newline] } : {}),
    };
    const bad: string[] = [];
    if (!Number.isInteger(config.numBeams) || config.numBeams < 1 || config.numBeams > 8) bad.push(`numBeams ${config.numBeams} (1..8)`);
    if (!Number.isInteger(maxNew) || maxNew < 1 || maxNew > 64) bad.push(`maxNewTokens ${maxNew} (1..64)`);
    if (this.manifest.dims.queryTokens + config.maxLength > this.manifest.dims.maxPositions) bad.push('the question is too long');
    if (bad.length > 0) throw new RangeError(`invalid answer options: ${bad.join(', ')}`);
    const { llmLayers: layers, llmHeads: heads, llmHeadDim: headDim } = this.manifest.dims;
    const ids = await this.scheduler.generate({
      kind: 'lmGenerate', decoderGraph: this.manifest.tasks.vqa.decoder, prefixEmbeds: queries, prefix: promptIds,
      layout: { layers, heads, headDim }, config,
    }, options.priority ?? 'interactive', options.signal);
    return ids.slice(promptIds.length);
  }

  /** The answer text: generated ids decoded as HF's batch_decode(skip_special_tokens=True), stripped. */
  async answer(image: LoadedImage, question: string, options: Blip2AnswerOptions = {}): Promise<string> {
    return this.decode((await this.answerIds(image, question, options)).ids);
  }

  decode(ids: readonly number[]): string {
    return this.tokenizer.decode(ids);
  }

  promptIds(question: string): number[] {
    return this.tokenizer.promptIds(question);
  }

  async close(): Promise<void> {
    await this.scheduler.close();
  }
}

/** Options of {@link createBlip2Engine}; as createBlipEngine's (src/ml/create-blip-engine.ts). */
export interface CreateBlip2EngineOptions {
  modelDir: string;
  threads?: number;
  /** Inference workers; 0 runs ORT on the calling thread (tests). Default 1. */
  workers?: number;
  verify?: VerifyMode;
  warmUp?: boolean;
  limits?: Partial<ImageLimits>;
  resizeKernel?: ResizeKernel;
}

/** Loads a BLIP-2 folder: manifest, graph files, tokenizer, sessions in inference workers. */
export async function createBlip2Engine(options: CreateBlip2EngineOptions): Promise<OnnxBlip2Engine> {
  const { modelDir } = options;
  const manifest = await loadBlip2Manifest(modelDir);
  await verifyGraphFiles(modelDir, manifest, options.verify ?? 'sha256');
  const tokenizer = await OptTokenizer.load(modelDir, manifest);
  const workers = options.workers ?? 1;
  const threads = options.threads ?? Math.max(1, Math.floor(availableParallelism() / Math.max(1, workers)));
  const hostOptions = { intraOpNumThreads: threads, warmUp: options.warmUp ?? false };
  let executors: JobExecutor[];
  if (workers === 0) {
    executors = [await InferenceHost.open(modelDir, manifest, hostOptions)];
  } else {
    const started = await Promise.allSettled(Array.from({ length: workers }, () => WorkerExecutor.start({ modelDir, manifest, options: hostOptions })));
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) {
      await Promise.all(started.map((r) => (r.status === 'fulfilled' ? r.value.close() : undefined)));
      throw (failed as PromiseRejectedResult).reason;
    }
    executors = started.map((r) => (r as PromiseFulfilledResult<WorkerExecutor>).value);
  }
  const scheduler = new InferenceScheduler(executors, { batchableGraphs: [manifest.tasks.vqa.vision] });
  return new OnnxBlip2Engine(manifest, tokenizer, scheduler, { ...DEFAULT_IMAGE_LIMITS, ...options.limits }, options.resizeKernel);
}
