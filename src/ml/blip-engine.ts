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
}

/** A decoded, validated image, preprocessed for the model: [3, S, S] float32, CLIP-normalised. */
export interface LoadedImage {
  info: ImageInfo;
  pixels: Float32Array;
}

/** What an image contributes to retrieval. */
export interface ImageEncoding {
  /** ITC image feature, L2-normalised, length = embedDim. Goes to the database and the HNSW index. */
  feature: Float32Array;
  /**
   * The retrieval vision encoder's image_embeds [imageTokens, visionHidden], flattened. ITM
   * re-ranking needs them; callers cache them (they are derived: recomputable from the image).
   */
  itmStates: Float32Array;
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

export interface BlipEngine {
  /** Changes whenever any weight changes: embeddings are keyed by it. */
  readonly modelId: string;
  readonly embedDim: number;
  /** Length of one ImageEncoding.itmStates. */
  readonly itmStatesLength: number;
  /** Decode + validate + preprocess. Throws UnsupportedImageError or ImageTooLargeError (src/ml/errors.ts). */
  loadImage(bytes: Uint8Array): Promise<LoadedImage>;
  embedImage(image: LoadedImage): Promise<ImageEncoding>;
  /** Unimodal ITC text feature, L2-normalised. Interactive priority. */
  embedText(text: string): Promise<Float32Array>;
  /** ITM of one text against several images (rows batched). Interactive priority. */
  itmScores(text: string, itmStates: Float32Array[]): Promise<ItmResult>;
  /** Background priority (ingest). */
  caption(image: LoadedImage, options?: CaptionOptions): Promise<string>;
  /** VQA, one-word answers on the bundled model. Interactive priority. */
  answer(image: LoadedImage, question: string): Promise<string>;
  /** Number of tokens `text` takes (with [CLS]/[SEP]); lets callers reject overlong text clearly. */
  countTokens(text: string): number;
  close(): Promise<void>;
}
