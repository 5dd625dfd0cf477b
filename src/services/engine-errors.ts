import {
  DomainError,
  InvalidInputError,
  PayloadTooLargeError,
  ServiceUnavailableError,
  UnsupportedImageError,
} from '../domain/errors.js';
import type { VisualAnswerer } from '../ml/visual-answerer.js';
import { EngineDecorator } from './engine-decorator.js';

/**
 * Translates src/ml errors (by their stable `code`, see src/ml/errors.ts) into domain errors.
 * Anything unknown is rethrown untouched and ends up masked as INTERNAL_SERVER_ERROR.
 */
export function toDomainError(error: unknown): unknown {
  if (error instanceof DomainError || !(error instanceof Error)) return error;
  const code = error.name === 'AbortError' ? 'ABORTED' : 'code' in error ? error.code : undefined;
  switch (code) {
    case 'UNSUPPORTED_IMAGE':
      return new UnsupportedImageError(error.message, { cause: error });
    case 'IMAGE_TOO_LARGE':
      return new PayloadTooLargeError(error.message, pick(error, ['unit', 'limit', 'actual']), { cause: error });
    case 'INVALID_TEXT':
    case 'INVALID_OPTIONS':
      return new InvalidInputError(error.message);
    case 'ABORTED':
      // The client went away; nobody reads this answer, but it must not be logged as a bug.
      return new ServiceUnavailableError('Cancelled: the client went away', { cause: error });
    case 'ENGINE_CLOSED':
    case 'MODEL_FORMAT':
      return new ServiceUnavailableError('The model is not available', { cause: error });
    default:
      return error;
  }
}

/** Runs a model call and rethrows its failure as a domain error where one applies. */
async function translated<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw toDomainError(error);
  }
}

/**
 * The engine as services see it: every failure already a domain error. Built once around the
 * engine services get (src/app.ts, outside RequestScopedEngine so that a cancelled request's
 * AbortError is translated too), so no call site translates.
 */
export class DomainErrorEngine extends EngineDecorator {
  protected around<T>(call: () => Promise<T>): Promise<T> {
    return translated(call);
  }
  override countTokens(text: string) {
    try {
      return this.inner.countTokens(text);
    } catch (error) {
      throw toDomainError(error);
    }
  }
}

/** The same for a question-answering model (BLIP-2 folders, src/ml/visual-answerer.ts). */
export function domainErrorAnswerer(inner: VisualAnswerer): VisualAnswerer {
  return {
    name: inner.name,
    modelId: inner.modelId,
    family: inner.family,
    tasks: inner.tasks,
    loadImage: (bytes) => translated(() => inner.loadImage(bytes)),
    answer: (image, question, options) => translated(() => inner.answer(image, question, options)),
    close: () => inner.close(),
  };
}

function pick(source: object, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => k in source).map((k) => [k, (source as Record<string, unknown>)[k]]));
}
