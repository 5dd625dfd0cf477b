import pg from 'pg';
import { embeddingFromBytes } from '../domain/embedding.js';
import type { DatabaseConfig } from '../config/load-config.js';
import { Prisma } from '../generated/prisma-sqlite/client.js';
import { stripPrismaParams, type DbClient } from './database.js';

export interface FeedEntry {
  position: number;
  imageLabel: number;
  op: 'add' | 'remove';
  createdAt: Date;
}

/** The NOTIFY channel of the feed's trigger (prisma/postgresql/migrations/*_index_feed). */
const CHANNEL = 'blip_index_feed';
/** The Setting row that holds the last position trim() deleted (0 or absent: nothing deleted). */
const TRIMMED_TO_KEY = 'indexFeedTrimmedTo';

/**
 * The IndexFeed table (PostgreSQL): rows appended by a trigger on ImageEmbedding in the same
 * transaction as the change, in commit order. Raw SQL: positions are bigints, read as numbers
 * (exact up to 2^53).
 */
export class IndexFeedRepository {
  constructor(
    private readonly db: DbClient,
    private readonly config: DatabaseConfig,
  ) {}

  /** The last position written (0 when the feed is empty). */
  async head(): Promise<number> {
    const rows = await this.db.$queryRaw<Array<{ head: bigint | number | null }>>(Prisma.sql`SELECT MAX("position") AS "head" FROM "IndexFeed"`);
    return Number(rows[0]?.head ?? 0);
  }

  /** Every entry at or below this position may be gone (trim): an index behind it cannot catch up from the feed. */
  async trimmedTo(): Promise<number> {
    const rows = await this.db.$queryRaw<Array<{ value: string }>>(Prisma.sql`SELECT "value" FROM "Setting" WHERE "key" = ${TRIMMED_TO_KEY}`);
    return Number(rows[0]?.value ?? 0);
  }

  /**
   * Deletes the entries written before `before`, except the newest (head() stays the feed's real
   * head), and raises the TRIMMED_TO_KEY setting to the last deleted position in the same
   * transaction: a reader sees both or neither. Returns how many entries went.
   */
  async trim(before: Date): Promise<number> {
    return this.db.$transaction(async (tx) => {
      const cut = await tx.$queryRaw<Array<{ p: bigint | number | null }>>(
        Prisma.sql`SELECT MAX("position") AS "p" FROM "IndexFeed"
          WHERE "createdAt" < ${before} AND "position" < (SELECT MAX("position") FROM "IndexFeed")`,
      );
      const p = cut[0]?.p;
      if (p === null || p === undefined) return 0;
      await tx.$executeRaw(
        Prisma.sql`INSERT INTO "Setting" ("key", "value", "updatedAt") VALUES (${TRIMMED_TO_KEY}, ${String(p)}, now())
          ON CONFLICT ("key") DO UPDATE SET "value" = GREATEST("Setting"."value"::bigint, EXCLUDED."value"::bigint)::text, "updatedAt" = now()`,
      );
      return tx.$executeRaw(Prisma.sql`DELETE FROM "IndexFeed" WHERE "position" <= ${BigInt(p)}`);
    });
  }

  /** Entries of one model after `position`, in order. */
  async read(modelId: string, after: number, limit: number): Promise<FeedEntry[]> {
    const rows = await this.db.$queryRaw<Array<{ position: bigint; imageLabel: number; op: string; createdAt: Date }>>(
      Prisma.sql`SELECT "position", "imageLabel", "op", "createdAt" FROM "IndexFeed"
        WHERE "modelId" = ${modelId} AND "position" > ${BigInt(after)} ORDER BY "position" LIMIT ${limit}`,
    );
    return rows.map((r) => ({ position: Number(r.position), imageLabel: r.imageLabel, op: r.op === 'remove' ? 'remove' : 'add', createdAt: new Date(r.createdAt) }));
  }

  /** The current embedding of each label whose image is READY (the others are absent). */
  async readyEmbeddings(labels: number[], modelId: string): Promise<Map<number, Float32Array>> {
    if (labels.length === 0) return new Map();
    const rows = await this.db.imageEmbedding.findMany({
      where: { modelId, imageLabel: { in: labels }, image: { status: 'READY' } },
      select: { imageLabel: true, vector: true },
    });
    return new Map(rows.map((r) => [r.imageLabel, embeddingFromBytes(r.vector)]));
  }

  /**
   * LISTENs on its own connection (a pooled one may be handed to another query); `onNotice` runs
   * on every notice, `onError` when the connection drops (the caller's poll carries on meanwhile).
   * Resolves to a function that closes it.
   */
  async listen(onNotice: () => void, onError: (error: Error) => void): Promise<() => Promise<void>> {
    const client = new pg.Client({ connectionString: stripPrismaParams(this.config.url) });
    client.on('notification', () => onNotice());
    client.on('error', onError);
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    return async () => {
      client.removeAllListeners('error');
      client.on('error', () => undefined);
      await client.end().catch(() => undefined);
    };
  }
}
