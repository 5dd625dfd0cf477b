import type { ImageFilter } from '../domain/image-filter.js';
import type { KeysetPosition } from '../domain/pagination.js';
import { Prisma } from '../generated/prisma-sqlite/client.js';
import type { DbClient } from './database.js';
import { imageFilterSql, PG_TEXT_VECTOR, type SqlDialect } from './image-filter-sql.js';

export interface KeywordMatch {
  label: number;
  /** The database's own relevance, higher is better: ts_rank_cd (PostgreSQL) or -bm25 (SQLite FTS5). */
  relevance: number;
}

/**
 * Filtered and full-text queries over Image in raw SQL, for both stores (fragments from
 * image-filter-sql.ts). They return labels (and counts); records are read by
 * PrismaImageRepository, so row mapping stays in one place.
 */
export class ImageQueryRepository {
  constructor(
    private readonly db: DbClient,
    private readonly dialect: SqlDialect,
  ) {}

  async count(filter: ImageFilter): Promise<number> {
    const rows = await this.db.$queryRaw<Array<{ n: number | bigint }>>(
      Prisma.sql`SELECT COUNT(*) AS n FROM "Image" WHERE ${imageFilterSql(filter, this.dialect)}`,
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** Labels of READY images passing the filter, optionally only among `within`. */
  async matchingLabels(filter: ImageFilter, within?: readonly number[]): Promise<number[]> {
    if (within && within.length === 0) return [];
    const restrict = within ? Prisma.sql` AND "Image"."label" IN (${Prisma.join(within)})` : Prisma.empty;
    const rows = await this.db.$queryRaw<Array<{ label: number }>>(
      Prisma.sql`SELECT "Image"."label" AS label FROM "Image" WHERE ${imageFilterSql(filter, this.dialect)}${restrict}`,
    );
    return rows.map((r) => Number(r.label));
  }

  /**
   * One page of `images`: newest first, by (createdAt, id), strictly after `after`. A keyset
   * page, so rows inserted or deleted elsewhere never shift it (no repeats, no gaps).
   */
  async pageLabels(filter: ImageFilter, after: KeysetPosition | null, limit: number): Promise<number[]> {
    const createdAt = Prisma.raw('"Image"."createdAt"');
    const id = Prisma.raw('"Image"."id"');
    const keyset = after
      ? Prisma.sql` AND (${createdAt} < ${after.createdAt} OR (${createdAt} = ${after.createdAt} AND ${id} < ${after.id}))`
      : Prisma.empty;
    const rows = await this.db.$queryRaw<Array<{ label: number }>>(
      Prisma.sql`SELECT "Image"."label" AS label FROM "Image" WHERE ${imageFilterSql(filter, this.dialect)}${keyset}
        ORDER BY ${createdAt} DESC, ${id} DESC LIMIT ${limit}`,
    );
    return rows.map((r) => Number(r.label));
  }

  /**
   * Images whose caption or alt text contain the terms (stemmed): every term ('all': KEYWORD
   * search) or any of them ('any': the keyword side of HYBRID, where relevance ranks documents
   * with more of the terms first), best first, at most `limit`. `terms` are plain words (letters
   * and digits only: src/services/keyword-terms.ts), so they can be quoted into an FTS5 query
   * or joined into a tsquery without escaping.
   */
  async keywordMatches(terms: readonly string[], match: 'all' | 'any', filter: ImageFilter, limit: number): Promise<KeywordMatch[]> {
    if (terms.length === 0 || terms.some((t) => !/^[\p{L}\p{N}]+$/u.test(t))) return [];
    const where = imageFilterSql(filter, this.dialect);
    const rows =
      this.dialect === 'postgresql'
        ? await this.db.$queryRaw<Array<{ label: number; relevance: number }>>(
            Prisma.sql`SELECT "Image"."label" AS label, ts_rank_cd(${PG_TEXT_VECTOR}, q) AS relevance
              FROM "Image", to_tsquery('english'::regconfig, ${terms.join(match === 'all' ? ' & ' : ' | ')}) AS q
              WHERE ${PG_TEXT_VECTOR} @@ q AND ${where}
              ORDER BY relevance DESC, "Image"."label" DESC LIMIT ${limit}`,
          )
        : await this.db.$queryRaw<Array<{ label: number; relevance: number }>>(
            Prisma.sql`SELECT "Image"."label" AS label, -bm25("image_fts") AS relevance
              FROM "image_fts" JOIN "Image" ON "Image"."label" = "image_fts".rowid
              WHERE "image_fts" MATCH ${terms.map((t) => `"${t}"`).join(match === 'all' ? ' AND ' : ' OR ')} AND ${where}
              ORDER BY relevance DESC, "Image"."label" DESC LIMIT ${limit}`,
          );
    return rows.map((r) => ({ label: Number(r.label), relevance: Number(r.relevance) }));
  }
}
