import { InvalidInputError } from '../domain/errors.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Public image ids are UUIDs; anything else is a client mistake, not a miss. */
export function requireImageId(id: string, argument = 'id'): string {
  if (typeof id !== 'string' || !UUID.test(id)) {
    throw new InvalidInputError(`${argument} is not a valid image id: ${JSON.stringify(String(id).slice(0, 64))}`, { argument });
  }
  return id;
}

/** Trimmed, non-empty, at most maxChars, no control characters. */
export function requireText(text: string, argument: string, maxChars: number): string {
  const trimmed = typeof text === 'string' ? text.trim() : '';
  if (trimmed.length === 0) throw new InvalidInputError(`${argument} must not be empty`, { argument });
  if (trimmed.length > maxChars) {
    throw new InvalidInputError(`${argument} is ${trimmed.length} characters long; the limit is ${maxChars}`, { argument, limit: maxChars });
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(trimmed)) {
    throw new InvalidInputError(`${argument} contains control characters`, { argument });
  }
  return trimmed;
}

export function requireIntInRange(value: number, argument: string, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidInputError(`${argument} must be an integer from ${min} to ${max}, got ${value}`, { argument });
  }
  return value;
}

export function requireNumberInRange(value: number, argument: string, min: number, max: number): number {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new InvalidInputError(`${argument} must be a number from ${min} to ${max}, got ${value}`, { argument });
  }
  return value;
}
