import type { BlobStore } from './blob-store.js';
import type { DbClient } from './database.js';

/**
 * BLOB_STORE=postgres: the Blob table (bytea), for deployments that run several processes but no
 * object store. One row per original, written in one statement; fine for originals of a few MB,
 * not for very large collections (docs/scaling.md: S3 beyond that).
 */
export class PostgresBlobStore implements BlobStore {
  constructor(private readonly db: DbClient) {}

  async put(key: string, bytes: Uint8Array): Promise<void> {
    const data = bytes as Uint8Array<ArrayBuffer>;
    await this.db.blob.upsert({ where: { key }, create: { key, bytes: data }, update: { bytes: data } });
  }

  async get(key: string): Promise<Buffer | null> {
    const row = await this.db.blob.findUnique({ where: { key }, select: { bytes: true } });
    return row ? Buffer.from(row.bytes) : null;
  }

  async delete(key: string): Promise<void> {
    await this.db.blob.deleteMany({ where: { key } });
  }

  async exists(key: string): Promise<boolean> {
    return (await this.db.blob.count({ where: { key } })) > 0;
  }

  async *list(prefix: string): AsyncIterable<string> {
    let after = '';
    for (;;) {
      const rows = await this.db.blob.findMany({ where: { key: { startsWith: prefix, gt: after } }, orderBy: { key: 'asc' }, take: 1000, select: { key: true } });
      for (const row of rows) yield row.key;
      if (rows.length < 1000) return;
      after = rows[rows.length - 1]!.key;
    }
  }
}
