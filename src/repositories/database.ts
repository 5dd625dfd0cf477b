import fs from 'node:fs';
import path from 'node:path';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient as SqlitePrismaClient } from '../generated/prisma-sqlite/client.js';
import { PrismaClient as PgPrismaClient } from '../generated/prisma-pg/client.js';
import type { DatabaseConfig } from '../config/load-config.js';

/**
 * One Prisma client type for both stores. The two generated clients come from schemas that differ
 * only in the provider line, so their model APIs are identical; repositories are typed against the
 * SQLite flavour and the PostgreSQL client is used through the same type.
 */
export type DbClient = SqlitePrismaClient;

export function createPrismaClient(config: DatabaseConfig): DbClient {
  if (config.provider === 'postgresql') {
    // search_path too: Prisma qualifies its own queries with the schema, raw SQL (full-text search,
    // filters: src/repositories/image-query.repository.ts) relies on the connection's search path.
    const options = config.schema ? `-c search_path=${quoteIdent(config.schema).replaceAll(' ', '\\ ')}` : undefined;
    const adapter = new PrismaPg({ connectionString: stripPrismaParams(config.url), options }, { schema: config.schema });
    return new PgPrismaClient({ adapter }) as unknown as DbClient;
  }
  fs.mkdirSync(path.dirname(config.filePath), { recursive: true });
  const adapter = new PrismaBetterSqlite3({ url: config.filePath });
  return new SqlitePrismaClient({ adapter });
}

/** `?schema=` is Prisma's convention, not libpq's: pg would reject it. */
export function stripPrismaParams(url: string): string {
  const u = new URL(url);
  u.searchParams.delete('schema');
  return u.toString();
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
