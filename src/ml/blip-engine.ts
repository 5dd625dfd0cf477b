/**
 * The inference facade the rest of the service depends on. Everything behind it (sharp, the
 * tokenizer, onnxruntime-node sessions, worker threads, batching) belongs to `src/ml/`; services
 * see only these types. Implemented by `createBlipEngine` (src/ml/create-blip-engine.ts) and, in
 * service-level tests, by fakes.
 */

/** What decoding learned about an image (after EXIF orientation is applied). */
export interface ImageInfo {
  /** sharp's format name: jpeg, png, webp, gif, tiff, avif, heif. */
  format: string;
  mimeType: string;
  width: number;
  height: number;
  hasAlpha: boolean;
  /** What the file's EXIF says about the capture; absent when the decoder did not look. */
  capture?: CaptureInfo;
}

/** EXIF facts about how a picture was taken; null where the file says nothing (or nothing valid). */
export interface CaptureInfo {
  /** DateTimeOriginal (else DateTimeDigitized), shifted by OffsetTimeOriginal when given, else read as UTC. */
  takenAt: Date | null;
  cameraMake: string | null;
  cameraModel: string | null;
}


/** A decoded, validated image, preprocessed for the model: [3, S, S] float32, CLIP-normalised. */
export interface LoadedImage {
  info: ImageInfo;
  pixels: Float32Array;
  /**
   * The model's input as a lossless S x S PNG (BlipEngine.inputSize): loadImage of these bytes
   * gives the same pixels at a fraction of the cost, so callers keep it beside the original.
   */
  modelInput?: Uint8Array;
}

/**
 * The retrieval vision encoder's image_embeds [tokens, hidden] as ITM re-ranking reads them:
 * int8 codes with one scale per token (`codes[t*hidden + i] * scales[t]`), 0.44 MB per image at
 * base size instead of 1.77 MB. Callers cache them (they are derived: recomputable from the
 * image); shared memory (a SharedArrayBuffer) reaches the inference worker without a copy.
 */
export interface ItmStates {
  /** Int8Array(tokens * hidden). */
  codes: Int8Array;
  /** Float32Array(tokens), positive. */
  scales: Float32Array;
}

/** What an image contributes to retrieval. */
export interface ImageEncoding {
  /** ITC image feature, L2-normalised, length = embedDim. Goes to the database and the HNSW index. */
  feature: Float32Array;
  itmStates: ItmStates;
}

export interface CaptionOptions {
  /** 1 = greedy. */
  numBeams?: number;
  /** Total length in tokens including the [DEC] start token, as HF's max_length. */
  maxLength?: number;
  minLength?: number;
  repetitionPenalty?: number;
  /** Text the caption must start with (e.g. "a picture of"); returned captions exclude it. */
  prompt?: string;
}

export interface ItmResult {
  /** Raw ITM logits [no-match, match] per image. BLIP's retrieval score uses logits[1] + ITC cosine. */
  logits: Array<[number, number]>;
  /** softmax(logits)[1]: the match probability, comparable across queries. */
  probabilities: number[];
}

/** Per-call options of the engine's inference methods. */
export interface InferenceOptions {
  /** Which inference lane: interactive requests overtake background work (ingest); each method has its default. */
  priority?: 'interactive' | 'background';
  /**
   * The caller gave up (its request was cancelled): queued work is dropped, a generation or an
   * ITM job stops between graph runs, and the call rejects with code ABORTED.
   */
  signal?: AbortSignal;
}

export interface BlipEngine {
  /** Changes whenever any weight changes: embeddings are keyed by it. */
  readonly modelId: string;
  readonly embedDim: number;
  /** Shape of one ImageEncoding.itmStates: codes are tokens * hidden, scales are tokens. */
  readonly itmStateDims: { tokens: number; hidden: number };
  /**
   * ITC candidates ITM re-ranks when a search names none, from the model's manifest (chosen for
   * its measured quality and speed); undefined when the manifest gives none.
   */
  readonly defaultSearchCandidates?: number | undefined;
  /** Inference jobs waiting for a worker, per priority lane (metrics); absent where nothing queues. */
  queueDepth?(): { interactive: number; background: number };
  /** Side of the square model input (LoadedImage.modelInput); undefined when the engine keeps none. */
  readonly inputSize?: number | undefined;
  /** Decode + validate + preprocess. Throws UnsupportedImageError or ImageTooLargeError (src/ml/errors.ts). */
  loadImage(bytes: Uint8Array): Promise<LoadedImage>;
  /** Background priority unless told otherwise (a search by image asks for 'interactive'). */
  embedImage(image: LoadedImage, options?: InferenceOptions): Promise<ImageEncoding>;
  /** Unimodal ITC text feature, L2-normalised. Interactive priority. */
  embedText(text: string, options?: InferenceOptions): Promise<Float32Array>;
  /** ITM of one text against several images, in one batched pass. Interactive priority (ingest asks for background). */
  itmScores(text: string, itmStates: ItmStates[], options?: InferenceOptions): Promise<ItmResult>;
  /** Background priority (ingest). */
  caption(image: LoadedImage, options?: CaptionOptions & InferenceOptions): Promise<string>;
  /** VQA, one-word answers on the bundled model. Interactive priority. */
  answer(image: LoadedImage, question: string, options?: InferenceOptions): Promise<string>;
  /** Number of tokens `text` takes (with [CLS]/[SEP]); lets callers reject overlong text clearly. */
  countTokens(text: string): number;
  close(): Promise<void>;
}
