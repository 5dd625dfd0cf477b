import { InvalidInputError } from './errors.js';

export interface Page<T> {
  items: Array<{ cursor: string; node: T }>;
  hasNextPage: boolean;
  hasPreviousPage: boolean;
  totalCount: number;
}

/** Validates a connection's `first`. */
export function requireFirst(first: number, maxFirst: number): number {
  if (!Number.isInteger(first) || first < 1 || first > maxFirst) {
    throw new InvalidInputError(`first must be an integer from 1 to ${maxFirst}, got ${first}`, { argument: 'first' });
  }
  return first;
}

// Cursors are opaque to clients (base64url of a tagged text) and checked by re-encoding, so a
// hand-edited or truncated cursor is a BAD_USER_INPUT, never a silent restart from the top.

function encode(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

function decode(cursor: string, pattern: RegExp): RegExpExecArray | null {
  if (typeof cursor !== 'string' || cursor.length > 512) return null;
  const match = pattern.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  return match && encode(match[0]) === cursor ? match : null;
}

function invalid(cursor: string): InvalidInputError {
  return new InvalidInputError(`Invalid cursor ${JSON.stringify(String(cursor).slice(0, 64))}`, { argument: 'after' });
}

/** A position in the (createdAt desc, id desc) order of `images`: inserts and deletes never move it. */
export interface KeysetPosition {
  createdAt: Date;
  id: string;
}

export function encodeKeysetCursor(position: KeysetPosition): string {
  return encode(`k:${position.createdAt.getTime()}:${position.id}`);
}

export function decodeKeysetCursor(cursor: string): KeysetPosition {
  const m = decode(cursor, /^k:(-?\d{1,16}):([0-9a-f-]{36})$/);
  const ms = m ? Number(m[1]) : Number.NaN;
  if (!m || !Number.isSafeInteger(ms)) throw invalid(cursor);
  return { createdAt: new Date(ms), id: m[2]! };
}

/**
 * A position in one ranked search list (src/services/ranked-list.ts): the list's id, the offset
 * in it, and the image there, so that a list lost from memory (restart, eviction) can be ranked
 * again and resumed after that image.
 */
export interface ListPosition {
  listId: string;
  offset: number;
  imageId: string;
}

export function encodeListCursor(position: ListPosition): string {
  return encode(`s:${position.listId}:${position.offset}:${position.imageId}`);
}

export function decodeListCursor(cursor: string): ListPosition {
  const m = decode(cursor, /^s:([A-Za-z0-9_-]{8,32}):(\d{1,9}):([0-9a-f-]{36})$/);
  if (!m) throw invalid(cursor);
  return { listId: m[1]!, offset: Number(m[2]), imageId: m[3]! };
}
