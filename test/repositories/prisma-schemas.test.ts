import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { runMigrations } from '../../src/repositories/run-migrations.js';

const read = (p: string) => fs.readFileSync(p, 'utf8');

describe('Prisma schemas and committed migrations', () => {
  it('the SQLite and PostgreSQL schemas differ only in provider, output and header', () => {
    const strip = (s: string) =>
      s
        .split('\n')
        .filter((l) => !l.startsWith('//') && !/^\s*(provider|output)\s*=/.test(l))
        .join('\n');
    expect(strip(read('prisma/postgresql/schema.prisma'))).toBe(strip(read('prisma/sqlite/schema.prisma')));
  });

  it('both providers have the same migration names', () => {
    const names = (p: string) => fs.readdirSync(p).filter((n) => fs.statSync(path.join(p, n)).isDirectory());
    expect(names('prisma/postgresql/migrations')).toEqual(names('prisma/sqlite/migrations'));
  });

  it('applies once, records Prisma-compatible rows, and is idempotent', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-migrate-'));
    const filePath = path.join(dir, 'db.sqlite');
    const config = { provider: 'sqlite' as const, url: `file:${filePath}`, filePath };
    const applied = await runMigrations(config, 'prisma');
    expect(applied.length).toBeGreaterThan(0);
    expect(await runMigrations(config, 'prisma')).toEqual([]);
    const db = new Database(filePath);
    const rows = db.prepare('SELECT migration_name, checksum, finished_at FROM _prisma_migrations ORDER BY migration_name').all() as Array<{
      migration_name: string;
      checksum: string;
      finished_at: unknown;
    }>;
    for (const row of rows) {
      const sql = read(path.join('prisma/sqlite/migrations', row.migration_name, 'migration.sql'));
      expect(row.checksum).toBe(createHash('sha256').update(sql).digest('hex'));
      expect(row.finished_at).not.toBeNull();
    }
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as Array<{ name: string }>).map((t) => t.name);
    expect(tables).toEqual(expect.arrayContaining(['Image', 'ImageEmbedding', '_prisma_migrations']));
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the full-text migration indexes the captions and alt texts already stored (SQLite FTS5)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-migrate-fts-'));
    const root = path.join(dir, 'prisma');
    const filePath = path.join(dir, 'db.sqlite');
    const config = { provider: 'sqlite' as const, url: `file:${filePath}`, filePath };
    // A database as the previous version left it: every migration before the full-text one.
    const all = fs.readdirSync('prisma/sqlite/migrations').filter((n) => fs.statSync(path.join('prisma/sqlite/migrations', n)).isDirectory()).sort();
    fs.mkdirSync(path.join(root, 'sqlite', 'migrations'), { recursive: true });
    for (const name of all.filter((n) => n < '20261207100100')) fs.cpSync(path.join('prisma/sqlite/migrations', name), path.join(root, 'sqlite', 'migrations', name), { recursive: true });
    await runMigrations(config, root);
    const db = new Database(filePath);
    db.prepare(`INSERT INTO "Image" (id, sha256, mimeType, format, width, height, byteSize, caption, altText, updatedAt) VALUES (?, ?, 'image/png', 'png', 1, 1, 1, ?, ?, ?)`).run(
      'a', 'a', 'a red circle', 'my gardens', new Date().toISOString(),
    );
    db.close();
    expect(await runMigrations(config, 'prisma')).toContain('20261207100100_fulltext');
    const after = new Database(filePath);
    const match = (q: string) => (after.prepare(`SELECT rowid FROM image_fts WHERE image_fts MATCH ?`).all(q) as unknown[]).length;
    expect(match('"garden"')).toBe(1); // stemmed
    expect(match('"circles"')).toBe(1);
    expect(match('"square"')).toBe(0);
    after.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
