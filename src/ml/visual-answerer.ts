import type { BlipEngine, LoadedImage } from './blip-engine.js';

/** Model families the service loads: BLIP (MODEL_DIR) and BLIP-2 (a VQA_MODEL_DIR). */
export type ModelFamily = 'blip' | 'blip2';

/**
 * A loaded model that answers questions about an image: BLIP's VQA head (the engine that also
 * embeds and captions) or a BLIP-2 folder (src/ml/blip2/onnx-blip2-engine.ts). askImage picks one
 * by name; each preprocesses images at its own size.
 */
export interface VisualAnswerer {
  /** The manifest's name (modelId without its hash). */
  readonly name: string;
  readonly modelId: string;
  readonly family: ModelFamily;
  /** What the model is loaded for: `retrieval`, `caption`, `vqa`. */
  readonly tasks: readonly string[];
  loadImage(bytes: Uint8Array): Promise<LoadedImage>;
  /** `signal`: the asking request went away; queued model work leaves the queue. */
  answer(image: LoadedImage, question: string, options?: { signal?: AbortSignal | undefined }): Promise<string>;
  close(): Promise<void>;
}

/** The BLIP engine as an answerer (it stays owned by the application: close is a no-op here). */
export function blipAnswerer(engine: BlipEngine): VisualAnswerer {
  return {
    name: engine.modelId.split('@')[0] as string,
    modelId: engine.modelId,
    family: 'blip',
    tasks: ['retrieval', 'caption', 'vqa'],
    loadImage: (bytes) => engine.loadImage(bytes),
    answer: (image, question, options) => engine.answer(image, question, options),
    close: async () => {},
  };
}
