import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobStore } from '../../src/repositories/blob-store.js';
import { createPrismaClient, type DbClient } from '../../src/repositories/database.js';
import { LocalBlobStore } from '../../src/repositories/local-blob-store.js';
import { PostgresBlobStore } from '../../src/repositories/postgres-blob-store.js';
import { runMigrations } from '../../src/repositories/run-migrations.js';
import { S3BlobStore } from '../../src/repositories/s3-blob-store.js';
import { loadConfig } from '../../src/config/load-config.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { createPgSchema } from '../helpers/test-server.js';

const pgOn = process.env.BLIP_TEST_PG !== 'off';

/** The same contract, each store against its real backend. */
const stores: Array<{ name: string; open: () => Promise<{ store: BlobStore; close: () => Promise<void> }> }> = [
  {
    name: 'local folder',
    open: async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-blobs-'));
      return { store: new LocalBlobStore(dir), close: async () => fs.rmSync(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'S3-compatible (s3rver)',
    open: async () => {
      const s3: S3TestServer = await startS3Server();
      const store = new S3BlobStore({ bucket: s3.bucket, prefix: 'blip/', region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
      return { store, close: async () => { store.close(); await s3.close(); } };
    },
  },
  ...(pgOn
    ? [{
        name: 'PostgreSQL (bytea)',
        open: async () => {
          const schema = await createPgSchema();
          const config = loadConfig({ DATABASE_URL: schema.url }).db;
          await runMigrations(config, 'prisma');
          const db: DbClient = createPrismaClient(config);
          return { store: new PostgresBlobStore(db) as BlobStore, close: async () => { await db.$disconnect(); await schema.drop(); } };
        },
      }]
    : []),
];

describe.each(stores)('BlobStore: $name', ({ open }) => {
  let store: BlobStore;
  let close: () => Promise<void>;
  beforeAll(async () => ({ store, close } = await open()));
  afterAll(() => close());

  it('put/get/exists/delete/list round-trip bytes exactly; absent keys are null/false, deletes idempotent', async () => {
    const bytes = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 31) % 256);
    expect(await store.get('images/ab/missing')).toBeNull();
    expect(await store.exists('images/ab/missing')).toBe(false);
    await store.put('images/ab/one', bytes);
    await store.put('images/cd/two', new Uint8Array([1, 2, 3]));
    await store.put('quarantine/x/three', new Uint8Array([4]));
    expect(Buffer.compare(await store.get('images/ab/one') as Buffer, Buffer.from(bytes))).toBe(0);
    expect(await store.exists('images/ab/one')).toBe(true);
    const listed: string[] = [];
    for await (const key of store.list('images/')) listed.push(key);
    expect(listed.sort()).toEqual(['images/ab/one', 'images/cd/two']);
    // Replacing a key replaces its bytes.
    await store.put('images/cd/two', new Uint8Array([9]));
    expect([...(await store.get('images/cd/two'))!]).toEqual([9]);
    await store.delete('images/ab/one');
    await store.delete('images/ab/one');
    expect(await store.get('images/ab/one')).toBeNull();
    expect(await store.exists('images/ab/one')).toBe(false);
  });
});
