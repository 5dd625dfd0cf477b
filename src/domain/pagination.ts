import { InvalidInputError } from './errors.js';

export interface PageRequest {
  first: number;
  /** Opaque cursor from a previous page's edge. */
  after?: string | null | undefined;
}

export interface Page<T> {
  items: Array<{ cursor: string; node: T }>;
  hasNextPage: boolean;
  hasPreviousPage: boolean;
  totalCount: number;
}

const PREFIX = 'o:';

/** Cursors are offsets into a deterministic ordering, opaque to clients (base64url). */
export function encodeOffsetCursor(offset: number): string {
  return Buffer.from(`${PREFIX}${offset}`, 'utf8').toString('base64url');
}

export function decodeOffsetCursor(cursor: string): number {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const offset = text.startsWith(PREFIX) ? Number(text.slice(PREFIX.length)) : Number.NaN;
  if (!Number.isSafeInteger(offset) || offset < 0 || encodeOffsetCursor(offset) !== cursor) {
    throw new InvalidInputError(`Invalid cursor ${JSON.stringify(cursor.slice(0, 64))}`, { argument: 'after' });
  }
  return offset;
}

/** Validates `first` and turns `after` into the offset of the first item of the page. */
export function resolvePage(request: PageRequest, maxFirst: number): { offset: number; limit: number } {
  const { first } = request;
  if (!Number.isInteger(first) || first < 1 || first > maxFirst) {
    throw new InvalidInputError(`first must be an integer from 1 to ${maxFirst}, got ${first}`, { argument: 'first' });
  }
  const offset = request.after == null ? 0 : decodeOffsetCursor(request.after) + 1;
  return { offset, limit: first };
}

/** Slices an already ranked list into a Relay page. */
export function pageOf<T>(ranked: readonly T[], offset: number, limit: number): Page<T> {
  const slice = ranked.slice(offset, offset + limit);
  return {
    items: slice.map((node, i) => ({ cursor: encodeOffsetCursor(offset + i), node })),
    hasNextPage: offset + limit < ranked.length,
    hasPreviousPage: offset > 0,
    totalCount: ranked.length,
  };
}
