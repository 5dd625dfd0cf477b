/** A JSON value as clients send it in `metadata` filters. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * Which stored images a listing or a search may return (GraphQL `ImageFilter`, validated by
 * src/services/input-rules.ts). Every given part must hold. Ranges are half-open: `after` is
 * inclusive, `before` exclusive, so consecutive ranges neither overlap nor leave gaps.
 */
export interface ImageFilter {
  /** Subset match, as PostgreSQL's `@>`: every key given equals the stored value (recursively; arrays contain the given elements). */
  metadata?: { [key: string]: JsonValue };
  createdAfter?: Date;
  createdBefore?: Date;
  /** EXIF capture time; images without one never match a taken range. */
  takenAfter?: Date;
  takenBefore?: Date;
  mimeTypes?: string[];
}

export function isEmptyFilter(filter: ImageFilter): boolean {
  return Object.values(filter).every((v) => v === undefined);
}

/** A canonical text for cache keys: same filter, same key (object keys sorted). */
export function filterKey(filter: ImageFilter): string {
  const canonical = (value: unknown): unknown => {
    if (value instanceof Date) return value.toISOString();
    if (Array.isArray(value)) return value.map(canonical);
    if (value && typeof value === 'object') {
      return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]));
    }
    return value;
  };
  return JSON.stringify(canonical(filter));
}
