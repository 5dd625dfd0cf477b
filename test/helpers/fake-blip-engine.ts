import { createHash } from 'node:crypto';
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import type { BlipEngine, CaptionOptions, ImageEncoding, InferenceOptions, ItmResult, ItmStates, LoadedImage } from '../../src/ml/blip-engine.js';
import { ImageTooLargeError, InvalidTextError, UnsupportedImageError } from '../../src/ml/errors.js';
import { readCaptureInfo } from '../../src/ml/preprocess/exif-capture.js';

import { SCENE_COLOURS } from './scene-svg.js';

/** scenes.md object colours: the fake "sees" them, so colour queries behave like the real model. */
export const COLOURS = SCENE_COLOURS;
const NAMES = Object.keys(COLOURS) as Array<keyof typeof COLOURS>;
const DIM = NAMES.length + 2;

function normalize(v: Float32Array): Float32Array {
  const n = Math.hypot(...v) || 1;
  return v.map((x) => x / n);
}

function hashVector(text: string, scale: number): Float32Array {
  const h = createHash('sha256').update(text).digest();
  return Float32Array.from({ length: DIM }, (_, i) => ((h[i]! / 255) * 2 - 1) * scale);
}

export interface FakeEngineOptions {
  maxImagePixels?: number;
  /** Added to embedImage, to widen the window a crash test can hit. */
  delayMs?: number;
  modelId?: string;
}

/**
 * Deterministic stand-in for BlipEngine: decodes with sharp (so corrupt, truncated and oversized
 * images fail like they would for real), embeds an image as its histogram over the six scene
 * colours, and a text as the colour words it names.
 */
export class FakeBlipEngine implements BlipEngine {
  readonly modelId: string;
  readonly embedDim = DIM;
  readonly itmStateDims = { tokens: 2, hidden: DIM };
  readonly defaultSearchCandidates = undefined;
  calls = { embedImage: 0, embedText: 0, itmScores: 0, caption: 0, answer: 0 };
  /** The priority of each embedImage call, in order (search by image must be interactive). */
  embedPriorities: Array<InferenceOptions['priority']> = [];
  closed = false;

  constructor(private readonly options: FakeEngineOptions = {}) {
    this.modelId = options.modelId ?? 'fake-colour-v1';
  }

  async loadImage(bytes: Uint8Array): Promise<LoadedImage> {
    const limit = this.options.maxImagePixels ?? 25_000_000;
    let meta: Metadata;
    try {
      meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    } catch (error) {
      throw new UnsupportedImageError("not a decodable image (corrupt, truncated or not an image)", { cause: error });
    }
    const { width = 0, height = 0, format } = meta;
    if (width * height > limit) throw new ImageTooLargeError('pixels', width * height, limit);
    let raw: { data: Buffer; info: OutputInfo };
    try {
      raw = await sharp(bytes, { failOn: 'error' }).removeAlpha().resize(32, 32, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
    } catch (error) {
      throw new UnsupportedImageError(`corrupt or truncated image: ${(error as Error).message}`, { cause: error });
    }
    const hist = new Float32Array(DIM);
    for (let p = 0; p < raw.data.length; p += 3) {
      const [r, g, b] = [raw.data[p]!, raw.data[p + 1]!, raw.data[p + 2]!];
      NAMES.forEach((name, i) => {
        const [cr, cg, cb] = COLOURS[name];
        if (Math.abs(r - cr) + Math.abs(g - cg) + Math.abs(b - cb) < 60) hist[i]! += 1;
      });
    }
    const noise = hashVector(createHash('sha256').update(bytes).digest('hex'), 0.002);
    const pixels = normalize(hist.map((v, i) => v / (raw.data.length / 3) + noise[i]!));
    const info = { format: format ?? 'unknown', mimeType: `image/${format === 'jpeg' ? 'jpeg' : format}`, width, height, hasAlpha: !!meta.hasAlpha };
    // EXIF as the real decoder reads it (src/ml/preprocess/image-decoder.ts).
    return { info: { ...info, capture: readCaptureInfo(meta.exif) }, pixels };
  }

  async embedImage(image: LoadedImage, options: InferenceOptions = {}): Promise<ImageEncoding> {
    this.calls.embedImage++;
    this.embedPriorities.push(options.priority ?? 'background');
    if (this.options.delayMs) await new Promise((r) => setTimeout(r, this.options.delayMs));
    const feature = Float32Array.from(image.pixels);
    // Two "tokens", both the feature, quantized as the real retrieval encoder does.
    const scale = Math.max(...feature.map(Math.abs)) / 127 || 1;
    const codes = new Int8Array(2 * DIM);
    feature.forEach((v, i) => {
      codes[i] = Math.round(v / scale);
      codes[DIM + i] = Math.round(v / scale);
    });
    return { feature, itmStates: { codes, scales: Float32Array.from([scale, scale]) } };
  }

  async embedText(text: string): Promise<Float32Array> {
    this.calls.embedText++;
    const v = hashVector(text, 0.05);
    NAMES.forEach((name, i) => {
      if (text.toLowerCase().includes(name)) v[i]! += 1;
    });
    return normalize(v);
  }

  async itmScores(text: string, itmStates: ItmStates[]): Promise<ItmResult> {
    this.calls.itmScores++;
    const t = await this.embedText(text);
    const logits = itmStates.map((s): [number, number] => {
      let cos = 0;
      for (let i = 0; i < DIM; i++) cos += t[i]! * s.codes[i]! * s.scales[0]!;
      return [0, 10 * (cos - 0.5)];
    });
    return { logits, probabilities: logits.map(([a, b]) => 1 / (1 + Math.exp(a - b))) };
  }

  private dominant(image: LoadedImage): string {
    let best = 0;
    NAMES.forEach((_, i) => {
      if (image.pixels[i]! > image.pixels[best]!) best = i;
    });
    return NAMES[best]!;
  }

  async caption(image: LoadedImage, options: CaptionOptions = {}): Promise<string> {
    this.calls.caption++;
    const text = `a ${this.dominant(image)} shape`;
    return options.numBeams && options.numBeams > 1 ? `${text} (beam ${options.numBeams})` : text;
  }

  async answer(image: LoadedImage, question: string): Promise<string> {
    this.calls.answer++;
    if (!question.trim()) throw new InvalidTextError('empty question');
    return question.includes('color') ? this.dominant(image) : 'yes';
  }

  countTokens(text: string): number {
    return text.split(/\s+/).filter(Boolean).length + 2;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
