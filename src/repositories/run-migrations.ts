import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { DatabaseConfig } from '../config/load-config.js';
import { stripPrismaParams } from './database.js';

/**
 * Applies the committed SQL migrations (prisma/<flavour>/migrations/<name>/migration.sql) at
 * start-up. Hand-written because Prisma's migrate engine is a native binary the CLI downloads, and
 * that download is impossible here; @prisma/schema-engine-wasm could do it but is a pre-release
 * API. Applied migrations are recorded in Prisma's own `_prisma_migrations` table with Prisma's
 * checksum (sha256 of the file), so `prisma migrate deploy/status` sees the same history.
 */
export async function runMigrations(config: DatabaseConfig, migrationsRoot: string): Promise<string[]> {
  const dir = path.join(migrationsRoot, config.provider, 'migrations');
  const migrations = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const sql = fs.readFileSync(path.join(dir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });
  return config.provider === 'sqlite' ? migrateSqlite(config.filePath, migrations) : migratePostgres(config, migrations);
}

interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

function migrateSqlite(filePath: string, migrations: Migration[]): string[] {
  fs.mkdirSync(path.dirname(filePath), { recursive: true });
  const db = new Database(filePath);
  try {
    db.pragma('journal_mode = WAL');
    db.exec(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
      "id" TEXT PRIMARY KEY NOT NULL, "checksum" TEXT NOT NULL, "finished_at" DATETIME,
      "migration_name" TEXT NOT NULL, "logs" TEXT, "rolled_back_at" DATETIME,
      "started_at" DATETIME NOT NULL DEFAULT current_timestamp, "applied_steps_count" INTEGER UNSIGNED NOT NULL DEFAULT 0)`);
    const applied = new Set(
      db.prepare(`SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`)
        .all()
        .map((r) => (r as { migration_name: string }).migration_name),
    );
    const done: string[] = [];
    for (const m of migrations.filter((m) => !applied.has(m.name))) {
      // BEGIN IMMEDIATE takes the write lock first, so two starting processes cannot both apply.
      db.exec('BEGIN IMMEDIATE');
      try {
        db.exec(m.sql);
        db.prepare(
          `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, applied_steps_count) VALUES (?, ?, ?, ?, 1)`,
        ).run(randomUUID(), m.checksum, Date.now(), m.name);
        db.exec('COMMIT');
        done.push(m.name);
      } catch (error) {
        db.exec('ROLLBACK');
        throw new Error(`Migration ${m.name} failed: ${(error as Error).message}`, { cause: error });
      }
    }
    return done;
  } finally {
    db.close();
  }
}

async function migratePostgres(config: Extract<DatabaseConfig, { provider: 'postgresql' }>, migrations: Migration[]): Promise<string[]> {
  const client = new pg.Client({ connectionString: stripPrismaParams(config.url) });
  await client.connect();
  try {
    // Prisma's migrate advisory lock id, so our migrator and `prisma migrate` exclude each other.
    await client.query('SELECT pg_advisory_lock(72707369)');
    if (config.schema) {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(config.schema)}`);
      await client.query(`SET search_path TO ${quoteIdent(config.schema)}`);
    }
    await client.query(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
      "id" VARCHAR(36) PRIMARY KEY NOT NULL, "checksum" VARCHAR(64) NOT NULL, "finished_at" TIMESTAMPTZ,
      "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT, "rolled_back_at" TIMESTAMPTZ,
      "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(), "applied_steps_count" INTEGER NOT NULL DEFAULT 0)`);
    const { rows } = await client.query<{ migration_name: string }>(
      `SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`,
    );
    const applied = new Set(rows.map((r) => r.migration_name));
    const done: string[] = [];
    for (const m of migrations.filter((m) => !applied.has(m.name))) {
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query(
          `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, applied_steps_count) VALUES ($1, $2, now(), $3, 1)`,
          [randomUUID(), m.checksum, m.name],
        );
        await client.query('COMMIT');
        done.push(m.name);
      } catch (error) {
        await client.query('ROLLBACK');
        throw new Error(`Migration ${m.name} failed: ${(error as Error).message}`, { cause: error });
      }
    }
    return done;
  } finally {
    await client.end();
  }
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
