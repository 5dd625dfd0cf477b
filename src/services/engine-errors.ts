import {
  DomainError,
  InvalidInputError,
  PayloadTooLargeError,
  ServiceUnavailableError,
  UnsupportedImageError,
} from '../domain/errors.js';

/**
 * Translates src/ml errors (by their stable `code`, see src/ml/errors.ts) into domain errors.
 * Anything unknown is rethrown untouched and ends up masked as INTERNAL_SERVER_ERROR.
 */
export function toDomainError(error: unknown): unknown {
  if (error instanceof DomainError || !(error instanceof Error)) return error;
  const code = error.name === 'AbortError' ? 'ABORTED' : (error as { code?: unknown }).code;
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

/** Runs an engine call and rethrows its failure as a domain error where one applies. */
export async function engineCall<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw toDomainError(error);
  }
}

function pick(source: object, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => k in source).map((k) => [k, (source as Record<string, unknown>)[k]]));
}
