/**
 * Typed errors thrown by the inference layer. Services map them to domain errors
 * (UnsupportedImage -> BAD_USER_INPUT, ModelUnavailable -> SERVICE_UNAVAILABLE); the `code`
 * field lets them do so without importing these classes.
 */

/** Base class of every error raised by src/ml. */
export class MlError extends Error {
  /** Stable machine-readable code. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The bytes are not an image sharp can decode (corrupt, truncated, unknown or unsupported format). */
export class UnsupportedImageError extends MlError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNSUPPORTED_IMAGE', message, options);
  }
}

/** The image exceeds a byte or pixel limit; the message names the limit and the actual value. */
export class ImageTooLargeError extends MlError {
  readonly limit: number;
  readonly actual: number;
  readonly unit: 'bytes' | 'pixels';
  constructor(unit: 'bytes' | 'pixels', actual: number, limit: number) {
    super('IMAGE_TOO_LARGE', `image has ${actual} ${unit}; the limit is ${limit} ${unit}`);
    this.limit = limit;
    this.actual = actual;
    this.unit = unit;
  }
}

/** A model folder violates docs/model-format.md (missing file, bad hash, wrong I/O names...). */
export class ModelFormatError extends MlError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MODEL_FORMAT', message, options);
  }
}

/** Feeds that do not match a graph's declared inputs (a programming error in src/ml). */
export class InvalidFeedsError extends MlError {
  constructor(message: string) {
    super('INVALID_FEEDS', message);
  }
}

/** onnxruntime failed (or the worker running it died); message lists every input's name/dtype/dims. */
export class InferenceError extends MlError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INFERENCE_FAILED', message, options);
  }
}

/** Text input the model cannot take (e.g. empty question). */
export class InvalidTextError extends MlError {
  constructor(message: string) {
    super('INVALID_TEXT', message);
  }
}

/** The engine was closed. */
export class EngineClosedError extends MlError {
  constructor() {
    super('ENGINE_CLOSED', 'the BLIP engine is closed');
  }
}

/** The caller gave up (its request was cancelled): queued work was dropped, running work stopped between graph runs. */
export class InferenceAbortedError extends MlError {
  constructor() {
    super('ABORTED', 'the inference was cancelled');
  }
}

/** Generation options outside what the model can do (e.g. maxLength past its positions, a prompt that fills them). */
export class InvalidOptionsError extends MlError {
  constructor(message: string) {
    super('INVALID_OPTIONS', message);
  }
}
