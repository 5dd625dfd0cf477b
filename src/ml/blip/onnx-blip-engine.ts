import type { BlipEngine, CaptionOptions, ImageEncoding, ItmResult, ItmStates, LoadedImage } from '../blip-engine.js';
import { InvalidOptionsError, InvalidTextError } from '../errors.js';
import type { GenerationConfig } from '../generation/generation-config.js';
import type { ModelManifest } from '../manifest/model-manifest.js';
import { decodeImage, type ImageLimits, type ResizeKernel } from '../preprocess/image-decoder.js';
import type { InferenceScheduler, Priority } from '../runtime/inference-scheduler.js';
import { floatTensor, intTensor, type FloatTensor, type Int8Tensor, type TensorMap } from '../runtime/tensor.js';
import type { BertTokenizer } from '../tokenizer/bert-tokenizer.js';
import { IO } from './blip-io-names.js';

/** Per-call scheduling options the facade methods accept in addition to the interface's. */
export interface PriorityOption {
  /** Override the method's default lane (e.g. embed a query image interactively). */
  priority?: Priority;
  /** The caller gave up: queued work is dropped, a generation or ITM job stops between graph runs. */
  signal?: AbortSignal;
}

/** Options of {@link OnnxBlipEngine} beyond the manifest. */
export interface EngineSettings {
  /** ITM candidates per graph run inside the worker. Default 16. */
  itmBatchSize?: number;
}

/**
 * {@link BlipEngine} over a manifest's graphs. Tokenizing and image decoding happen here (sharp
 * works on libuv threads); every graph run goes through the {@link InferenceScheduler} to
 * inference workers.
 */
export class OnnxBlipEngine implements BlipEngine {
  readonly modelId: string;
  readonly embedDim: number;
  readonly itmStateDims: { tokens: number; hidden: number };
  readonly defaultSearchCandidates: number | undefined;
  readonly inputSize: number;
  private readonly visionCache = new WeakMap<LoadedImage, Map<string, Promise<TensorMap>>>();
  /** Per vision graph, the outputs the tasks that name it read (only those cross the thread boundary). */
  private readonly visionOutputs = new Map<string, string[]>();
  private readonly itmBatchSize: number;
  /** Decoder position embeddings: the longest caption, prompt included (BERT's 512 when the manifest does not say). */
  private readonly maxPositions: number;

  constructor(
    readonly manifest: ModelManifest,
    private readonly tokenizer: BertTokenizer,
    /** Exposed for tests and the bench (batch statistics). */
    readonly scheduler: InferenceScheduler,
    private readonly limits: ImageLimits,
    private readonly kernel?: ResizeKernel,
    settings: EngineSettings = {},
  ) {
    this.modelId = manifest.modelId;
    this.embedDim = manifest.dims.embed;
    this.itmStateDims = { tokens: manifest.dims.imageTokens, hidden: manifest.dims.visionHidden };
    this.defaultSearchCandidates = manifest.search?.defaultCandidates;
    this.inputSize = manifest.image.size;
    this.itmBatchSize = settings.itmBatchSize ?? 16;
    this.maxPositions = manifest.config?.text?.max_position_embeddings ?? 512;
    const t = manifest.tasks;
    const need = (graph: string, names: string[]) => this.visionOutputs.set(graph, [...new Set([...(this.visionOutputs.get(graph) ?? []), ...names])]);
    need(t.retrieval.vision, [IO.imageFeat, IO.itmStates, IO.itmScales]);
    need(t.caption.vision, [IO.imageEmbeds]);
    need(t.vqa.vision, [IO.imageEmbeds]);
  }

  /**
   * Decodes and preprocesses an image.
   * @returns pixels Float32Array(3*S*S), CHW, CLIP-normalised.
   */
  async loadImage(bytes: Uint8Array): Promise<LoadedImage> {
    return decodeImage(bytes, this.manifest.image, this.limits, this.kernel);
  }

  /**
   * Outputs of a vision graph for one image, computed once per (image, graph): tasks naming the
   * same graph share them.
   */
  private vision(image: LoadedImage, graph: string, priority: Priority, signal?: AbortSignal): Promise<TensorMap> {
    let byGraph = this.visionCache.get(image);
    if (!byGraph) {
      byGraph = new Map();
      this.visionCache.set(image, byGraph);
    }
    let outputs = byGraph.get(graph);
    if (!outputs) {
      const s = this.manifest.image.size;
      outputs = this.scheduler.run(graph, { [IO.pixelValues]: floatTensor(image.pixels, [1, 3, s, s]) }, priority, this.visionOutputs.get(graph), signal);
      const cache = byGraph;
      outputs.catch(() => cache.delete(graph));
      byGraph.set(graph, outputs);
    }
    return outputs;
  }

  /**
   * ITC feature and ITM states of an image (retrieval vision graph). Background priority by default.
   * @returns feature Float32Array(embed), L2-normalised; itmStates int8 codes (imageTokens*visionHidden)
   *   and per-token scales (imageTokens).
   */
  async embedImage(image: LoadedImage, options: PriorityOption = {}): Promise<ImageEncoding> {
    const out = await this.vision(image, this.manifest.tasks.retrieval.vision, options.priority ?? 'background', options.signal);
    return {
      feature: (out[IO.imageFeat] as FloatTensor).data,
      itmStates: { codes: (out[IO.itmStates] as Int8Tensor).data, scales: (out[IO.itmScales] as FloatTensor).data },
    };
  }

  /** {@link embedImage} for several images; their runs are merged by the scheduler. */
  embedImages(images: readonly LoadedImage[], options: PriorityOption = {}): Promise<ImageEncoding[]> {
    return Promise.all(images.map((im) => this.embedImage(im, options)));
  }

  /**
   * Unimodal ITC text feature ([CLS] first, truncated to text.maxLength). Interactive priority.
   * @returns Float32Array(embed), L2-normalised.
   */
  async embedText(text: string, options: PriorityOption = {}): Promise<Float32Array> {
    const enc = this.tokenizer.encode(text, 'cls');
    const n = enc.ids.length;
    const out = await this.scheduler.run(
      this.manifest.tasks.retrieval.textFeature,
      { [IO.inputIds]: intTensor(enc.ids, [1, n]), [IO.attentionMask]: intTensor(enc.attentionMask, [1, n]) },
      options.priority ?? 'interactive',
      undefined,
      options.signal,
    );
    return (out[IO.textFeat] as FloatTensor).data;
  }

  /** {@link embedText} for several texts; runs of equal token length are merged. */
  embedTexts(texts: readonly string[], options: PriorityOption = {}): Promise<Float32Array[]> {
    return Promise.all(texts.map((t) => this.embedText(t, options)));
  }

  /**
   * ITM of `text` against each image's states, in one job: the inference worker assembles the
   * batches ({@link EngineSettings.itmBatchSize} rows per run) from the states' memory, so the
   * event loop copies nothing. Token 0 is [CLS] or [ENC] per manifest text.itmFirstToken.
   * Interactive priority.
   * @returns raw logits [no-match, match] and softmax(logits)[1] per image, in input order.
   */
  async itmScores(text: string, itmStates: ItmStates[], options: PriorityOption = {}): Promise<ItmResult> {
    const { tokens, hidden } = this.itmStateDims;
    for (const [i, s] of itmStates.entries()) {
      if (s.codes.length !== tokens * hidden || s.scales.length !== tokens) {
        throw new RangeError(`itmStates[${i}] has ${s.codes.length} codes and ${s.scales.length} scales; this model needs ${tokens * hidden} (${tokens}x${hidden}) and ${tokens}`);
      }
    }
    if (itmStates.length === 0) return { logits: [], probabilities: [] };
    const enc = this.tokenizer.encode(text, this.manifest.text.itmFirstToken);
    const flat = await this.scheduler.itm({
      kind: 'itm',
      graph: this.manifest.tasks.retrieval.itm,
      inputIds: enc.ids,
      states: itmStates.map((s) => ({ codes: s.codes, scales: s.scales })),
      chunk: this.itmBatchSize,
    }, options.priority ?? 'interactive', options.signal);
    const logits: Array<[number, number]> = [];
    for (let r = 0; r < itmStates.length; r++) logits.push([flat[2 * r] as number, flat[2 * r + 1] as number]);
    const probabilities = logits.map(([a, b]) => {
      const m = Math.max(a, b);
      return Math.exp(b - m) / (Math.exp(a - m) + Math.exp(b - m));
    });
    return { logits, probabilities };
  }

  /**
   * Caption token ids, prefix ([DEC] + prompt) and final [SEP] included (HF generate output).
   * Defaults from manifest generation.caption. Background priority by default.
   */
  async captionIds(image: LoadedImage, options: CaptionOptions & PriorityOption = {}): Promise<{ ids: number[]; prefixLength: number }> {
    const task = this.manifest.tasks.caption;
    const d = this.manifest.generation.caption;
    const priority = options.priority ?? 'background';
    const prefix = this.tokenizer.decoderPrefix(options.prompt ?? d.prompt);
    const config: GenerationConfig = {
      maxLength: options.maxLength ?? d.maxLength,
      minLength: options.minLength ?? d.minLength,
      numBeams: options.numBeams ?? d.numBeams,
      repetitionPenalty: options.repetitionPenalty ?? d.repetitionPenalty,
      eosTokenId: this.manifest.text.specialTokens.sep,
    };
    validateGeneration(config, this.maxPositions, prefix.length);
    const states = (await this.vision(image, task.vision, priority, options.signal))[IO.imageEmbeds] as FloatTensor;
    const ids = await this.scheduler.generate(
      { kind: 'generate', crossKvGraph: task.crossKv, decoderGraph: task.decoder, encoderStates: states, prefix, config },
      priority,
      options.signal,
    );
    return { ids, prefixLength: prefix.length };
  }

  /** Caption text without the prompt. See {@link captionIds}. */
  async caption(image: LoadedImage, options: CaptionOptions & PriorityOption = {}): Promise<string> {
    const { ids, prefixLength } = await this.captionIds(image, options);
    return this.tokenizer.decode(ids.slice(prefixLength));
  }

  /**
   * VQA answer ids from [DEC] (HF generate output), with manifest generation.vqa settings.
   * Question token 0 per manifest text.vqaFirstToken. Interactive priority by default.
   */
  async answerIds(image: LoadedImage, question: string, options: PriorityOption = {}): Promise<number[]> {
    if (question.trim() === '') throw new InvalidTextError('the question is empty');
    const task = this.manifest.tasks.vqa;
    const d = this.manifest.generation.vqa;
    const priority = options.priority ?? 'interactive';
    const enc = this.tokenizer.encode(question, this.manifest.text.vqaFirstToken);
    const n = enc.ids.length;
    const embeds = (await this.vision(image, task.vision, priority, options.signal))[IO.imageEmbeds] as FloatTensor;
    const q = await this.scheduler.run(task.questionEncoder, {
      [IO.inputIds]: intTensor(enc.ids, [1, n]),
      [IO.attentionMask]: intTensor(enc.attentionMask, [1, n]),
      [IO.imageEmbeds]: embeds,
    }, priority, undefined, options.signal);
    const config: GenerationConfig = {
      maxLength: d.maxLength, minLength: d.minLength, numBeams: d.numBeams, repetitionPenalty: d.repetitionPenalty,
      eosTokenId: this.manifest.text.specialTokens.sep,
    };
    return this.scheduler.generate({
      kind: 'generate', crossKvGraph: task.crossKv, decoderGraph: task.decoder,
      encoderStates: q[IO.questionStates] as FloatTensor, prefix: [this.manifest.text.specialTokens.dec], config,
    }, priority, options.signal);
  }

  /** Answer text (special tokens dropped). See {@link answerIds}. */
  async answer(image: LoadedImage, question: string, options: PriorityOption = {}): Promise<string> {
    return this.tokenizer.decode(await this.answerIds(image, question, options));
  }

  /** Token count with [CLS] and [SEP], before truncation. */
  countTokens(text: string): number {
    return this.tokenizer.countTokens(text);
  }

  queueDepth(): { interactive: number; background: number } {
    return this.scheduler.queued;
  }

  /** Stops the workers; pending calls reject with EngineClosedError. */
  async close(): Promise<void> {
    await this.scheduler.close();
  }
}

/**
 * Options the decoder can run: lengths within its position embeddings (past them the graph fails
 * deep inside onnxruntime), and room after the prompt for at least one generated token.
 */
function validateGeneration(c: GenerationConfig, maxPositions: number, prefixLength: number): void {
  const bad: string[] = [];
  if (!Number.isInteger(c.numBeams) || c.numBeams < 1 || c.numBeams > 16) bad.push(`numBeams ${c.numBeams} (1..16)`);
  if (!Number.isInteger(c.maxLength) || c.maxLength < 2 || c.maxLength > maxPositions) bad.push(`maxLength ${c.maxLength} (2..${maxPositions}, the model's positions)`);
  if (!Number.isInteger(c.minLength) || c.minLength < 0 || c.minLength > c.maxLength) bad.push(`minLength ${c.minLength} (0..maxLength)`);
  if (!(c.repetitionPenalty > 0)) bad.push(`repetitionPenalty ${c.repetitionPenalty} (> 0)`);
  if (bad.length === 0 && prefixLength >= c.maxLength) bad.push(`prompt takes ${prefixLength - 1} tokens, leaving none of maxLength ${c.maxLength}`);
  if (bad.length > 0) throw new InvalidOptionsError(`invalid caption options: ${bad.join(', ')}`);
}
