import type { ImageFilter, JsonValue } from '../domain/image-filter.js';
import { Prisma } from '../generated/prisma-sqlite/client.js';

export type SqlDialect = 'sqlite' | 'postgresql';
type Sql = Prisma.Sql;

/** Column references are qualified, so the fragments also work beside the FTS5 table's own columns. */
const col = (name: string): Sql => Prisma.raw(`"Image"."${name}"`);

/**
 * The WHERE condition (READY rows only) for an ImageFilter, in the given SQL dialect. Prisma's
 * typed `where` cannot express a JSON subset match on SQLite, so every filtered query is raw SQL
 * built from these fragments (values are always bound parameters).
 */
export function imageFilterSql(filter: ImageFilter, dialect: SqlDialect): Sql {
  const parts: Sql[] = [Prisma.sql`${col('status')} = 'READY'`];
  if (filter.createdAfter) parts.push(Prisma.sql`${col('createdAt')} >= ${filter.createdAfter}`);
  if (filter.createdBefore) parts.push(Prisma.sql`${col('createdAt')} < ${filter.createdBefore}`);
  if (filter.takenAfter) parts.push(Prisma.sql`${col('takenAt')} >= ${filter.takenAfter}`);
  if (filter.takenBefore) parts.push(Prisma.sql`${col('takenAt')} < ${filter.takenBefore}`);
  if (filter.mimeTypes) parts.push(Prisma.sql`${col('mimeType')} IN (${Prisma.join(filter.mimeTypes)})`);
  if (filter.metadata) {
    parts.push(
      dialect === 'postgresql'
        ? Prisma.sql`(${col('metadata')})::jsonb @> CAST(${JSON.stringify(filter.metadata)} AS jsonb)`
        : Prisma.join([Prisma.sql`${col('metadata')} IS NOT NULL`, ...sqliteContains([], filter.metadata)], ' AND '),
    );
  }
  return Prisma.join(parts, ' AND ');
}

/**
 * PostgreSQL's `@>` for SQLite, written out with SQLite's JSON functions (SQLite has no
 * containment operator and no library provides one): objects match key by key, recursively;
 * an array matches a stored array that contains each given element; scalars match by JSON type
 * and value (1 matches 1.0, never "1"). Arrays of objects or arrays are refused by the input
 * rules (src/services/input-rules.ts), so elements here are scalars.
 */
function sqliteContains(path: string[], value: JsonValue): Sql[] {
  const at = jsonPath(path);
  const type = Prisma.sql`json_type(${col('metadata')}, ${at})`;
  if (value === null) return [Prisma.sql`${type} = 'null'`];
  if (Array.isArray(value)) {
    return [
      Prisma.sql`${type} = 'array'`,
      ...value.map(
        (element) => Prisma.sql`EXISTS (SELECT 1 FROM json_each(${col('metadata')}, ${at}) AS e WHERE ${scalarMatch(Prisma.raw('e.type'), Prisma.raw('e.atom'), element)})`,
      ),
    ];
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value);
    if (entries.length === 0) return [Prisma.sql`${type} = 'object'`];
    return entries.flatMap(([key, v]) => sqliteContains([...path, key], v));
  }
  return [scalarMatch(type, Prisma.sql`json_extract(${col('metadata')}, ${at})`, value)];
}

function scalarMatch(type: Sql, atom: Sql, value: JsonValue): Sql {
  if (value === null) return Prisma.sql`${type} = 'null'`;
  if (typeof value === 'boolean') return Prisma.sql`${type} = ${value ? 'true' : 'false'}`;
  if (typeof value === 'number') return Prisma.sql`${type} IN ('integer', 'real') AND ${atom} = ${value}`;
  if (typeof value === 'string') return Prisma.sql`${type} = 'text' AND ${atom} = ${value}`;
  throw new TypeError('metadata filter arrays may hold only scalars');
}

/** `$."a"."b"`: SQLite JSON path with every key quoted (keys containing `"` are refused upstream). */
function jsonPath(path: string[]): string {
  return `$${path.map((k) => `."${k}"`).join('')}`;
}

/** The document keyword search matches, exactly as the PostgreSQL index expression (migration 20261207100100_fulltext). */
export const PG_TEXT_VECTOR = Prisma.raw(`to_tsvector('english'::regconfig, coalesce("Image"."caption", '') || ' ' || coalesce("Image"."altText", ''))`);
