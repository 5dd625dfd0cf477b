import { InvalidInputError } from '../domain/errors.js';
import type { ImageFilter } from '../domain/image-filter.js';

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

/** Deepest nesting a metadata filter may use, and most leaf values: bounds the SQL it becomes. */
const MAX_FILTER_DEPTH = 8;
const MAX_FILTER_VALUES = 64;
const MAX_MIME_TYPES = 16;
const MIME = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$/;

/** What GraphQL hands over for an ImageFilter (explicit nulls included). */
export interface ImageFilterInput {
  metadata?: unknown;
  createdAfter?: Date | null;
  createdBefore?: Date | null;
  takenAfter?: Date | null;
  takenBefore?: Date | null;
  mimeTypes?: readonly string[] | null;
}

/** Validates an ImageFilter; null, absent and all-null parts mean "no filter". */
export function requireFilter(input: ImageFilterInput | null | undefined, argument = 'filter'): ImageFilter {
  if (input == null) return {};
  const filter: ImageFilter = {};
  if (input.metadata != null) {
    if (typeof input.metadata !== 'object' || Array.isArray(input.metadata)) {
      throw new InvalidInputError(`${argument}.metadata must be a JSON object`, { argument: `${argument}.metadata` });
    }
    checkFilterValue(input.metadata, `${argument}.metadata`, 0, { values: 0 });
    filter.metadata = input.metadata as ImageFilter['metadata'];
  }
  for (const [after, before] of [['createdAfter', 'createdBefore'], ['takenAfter', 'takenBefore']] as const) {
    const a = input[after];
    const b = input[before];
    if (a != null) filter[after] = a;
    if (b != null) filter[before] = b;
    if (a != null && b != null && a.getTime() >= b.getTime()) {
      throw new InvalidInputError(`${argument}.${after} must be earlier than ${argument}.${before} (after is inclusive, before exclusive)`, {
        argument: `${argument}.${after}`,
      });
    }
  }
  if (input.mimeTypes != null) {
    const types = [...new Set(input.mimeTypes.map((t) => String(t).trim().toLowerCase()))];
    if (types.length === 0 || types.length > MAX_MIME_TYPES) {
      throw new InvalidInputError(`${argument}.mimeTypes must list 1 to ${MAX_MIME_TYPES} types (leave it out for any type)`, { argument: `${argument}.mimeTypes` });
    }
    const bad = types.find((t) => !MIME.test(t));
    if (bad !== undefined) {
      throw new InvalidInputError(`${argument}.mimeTypes: ${JSON.stringify(bad.slice(0, 64))} is not a content type such as image/png`, { argument: `${argument}.mimeTypes` });
    }
    filter.mimeTypes = types;
  }
  return filter;
}

function checkFilterValue(value: unknown, path: string, depth: number, count: { values: number }): void {
  const fail = (why: string) => new InvalidInputError(`${path}: ${why}`, { argument: path.split('.').slice(0, 2).join('.') });
  if (depth > MAX_FILTER_DEPTH) throw fail(`nested deeper than ${MAX_FILTER_DEPTH} levels`);
  if (++count.values > MAX_FILTER_VALUES) throw fail(`more than ${MAX_FILTER_VALUES} values`);
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw fail('numbers must be finite');
    return;
  }
  if (Array.isArray(value)) {
    // PostgreSQL's @> also matches objects inside arrays; the SQLite translation
    // (src/repositories/image-filter-sql.ts) keeps to scalars, so both stores answer alike.
    if (value.some((v) => v !== null && typeof v === 'object')) throw fail('arrays in a filter may hold only strings, numbers, booleans or null');
    value.forEach((v, i) => checkFilterValue(v, `${path}[${i}]`, depth + 1, count));
    return;
  }
  if (typeof value === 'object') {
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      // eslint-disable-next-line no-control-regex
      if (key.length === 0 || key.length > 128 || /["\u0000-\u001f]/.test(key)) throw fail(`key ${JSON.stringify(key.slice(0, 64))} must be 1 to 128 characters without quotes or control characters`);
      checkFilterValue(v, `${path}.${key}`, depth + 1, count);
    }
    return;
  }
  throw fail('not a JSON value');
}

/** Deepest nesting of stored metadata: JSON.stringify and the filter's SQL recurse, 20,000 levels overflow the stack. */
const MAX_METADATA_DEPTH = 64;

/** Nesting depth of a JSON value, counted without recursion and stopping past `limit`. */
function jsonDepth(value: unknown, limit: number): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    deepest = Math.max(deepest, depth);
    if (deepest > limit) return deepest;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return deepest;
}

/** A metadata object to store (ingest, updateImage): any JSON object up to maxBytes as JSON text. */
export function requireMetadata(metadata: unknown, argument: string, maxBytes: number): Record<string, unknown> | null {
  if (metadata === undefined || metadata === null) return null;
  if (typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new InvalidInputError(`${argument} must be a JSON object`, { argument });
  }
  const depth = jsonDepth(metadata, MAX_METADATA_DEPTH);
  if (depth > MAX_METADATA_DEPTH) {
    throw new InvalidInputError(`${argument} nests deeper than ${MAX_METADATA_DEPTH} levels`, { argument, limit: MAX_METADATA_DEPTH });
  }
  const size = Buffer.byteLength(JSON.stringify(metadata));
  if (size > maxBytes) {
    throw new InvalidInputError(`${argument} is ${size} bytes of JSON; the limit is ${maxBytes}`, { argument, limit: maxBytes });
  }
  return metadata as Record<string, unknown>;
}
