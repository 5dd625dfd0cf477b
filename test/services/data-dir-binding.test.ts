import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HnswVectorIndex } from '../../src/index/hnsw-vector-index.js';
import { scenePng } from '../helpers/images.js';
import { createPgSchema, startTestServer, type DbFlavour, type TestServer } from '../helpers/test-server.js';

const INGEST = `mutation($input: IngestImageInput!) { ingestImage(input: $input) { image { id sha256 } } }`;
const SEARCH = `{ searchImages(text: "red", first: 10, rerank: false) { edges { node { id } } } }`;
const flavours: DbFlavour[] = process.env.BLIP_TEST_PG === 'off' ? ['sqlite'] : ['sqlite', 'postgresql'];

function originals(dataDir: string): string[] {
  const root = path.join(dataDir, 'images');
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root).flatMap((p) => fs.readdirSync(path.join(root, p))).sort();
}

async function populated(db: DbFlavour): Promise<{ server: TestServer; ids: string[]; red: string }> {
  const server = await startTestServer({ db });
  const ids: string[] = [];
  for (const colour of ['red', 'blue', 'green'] as const) {
    const res = await server.gql(INGEST, { input: { base64: (await scenePng([{ colour, shape: 'circle' }])).toString('base64') } });
    ids.push(res.data.ingestImage.image.id);
  }
  await server.stop();
  return { server, ids, red: ids[0]! };
}

describe.each(flavours)('DATA_DIR belongs to one database (%s)', (db) => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0)) await c();
  });

  it('EXPECTED FAILURE - a dropped DATABASE_URL refuses to start and deletes no original', async () => {
    const { server } = await populated(db);
    cleanup.push(() => server.dispose());
    const before = originals(server.dataDir);
    expect(before).toHaveLength(3);
    const { DATABASE_URL: _dropped, ...env } = server.env;
    // With PostgreSQL dropped this falls back to a new SQLite file; with SQLite, point at a new one.
    const wrongEnv = db === 'sqlite' ? { ...env, DATABASE_URL: `file:${path.join(server.dataDir, 'typo.db')}` } : env;
    await expect(startTestServer({ reuse: { dataDir: server.dataDir, env: wrongEnv } })).rejects.toThrow(/Refusing to start.*has no instance id/s);
    expect(originals(server.dataDir)).toEqual(before);
    expect(fs.existsSync(path.join(server.dataDir, 'quarantine'))).toBe(false);
  });

  it('EXPECTED FAILURE - another database with its own instance id is refused; the right one still serves everything', async () => {
    const { server, red } = await populated(db);
    cleanup.push(() => server.dispose());
    const other = await startTestServer({ db });
    cleanup.push(() => other.dispose());
    await other.stop();
    const before = originals(server.dataDir);
    const env = { ...server.env, DATABASE_URL: other.env.DATABASE_URL ?? `file:${path.join(other.dataDir, 'blip-search.db')}` };
    await expect(startTestServer({ reuse: { dataDir: server.dataDir, env } })).rejects.toThrow(/belongs to instance .* but the database .* is instance/s);
    expect(originals(server.dataDir)).toEqual(before);

    const again = await startTestServer({ reuse: { dataDir: server.dataDir, env: server.env } });
    expect((await again.gql(`{ images { totalCount } }`)).data.images.totalCount).toBe(3);
    expect((await again.gql(SEARCH)).data.searchImages.edges[0].node.id).toBe(red);
    const res = await fetch(`${again.url}/images/${red}`);
    expect(res.status).toBe(200);
    await again.stop();
  });

  it('CLAIM_DATA_DIR binds the folder to an empty database, moving unknown originals to quarantine rather than deleting them', async () => {
    const { server } = await populated(db);
    cleanup.push(() => server.dispose());
    const before = originals(server.dataDir);
    const fresh = db === 'postgresql' ? await createPgSchema() : null;
    if (fresh) cleanup.push(fresh.drop);
    const env = { ...server.env, CLAIM_DATA_DIR: 'true', DATABASE_URL: fresh?.url ?? `file:${path.join(server.dataDir, 'claimed.db')}` };
    const claimed = await startTestServer({ reuse: { dataDir: server.dataDir, env } });
    expect((await claimed.gql(`{ images { totalCount } }`)).data.images.totalCount).toBe(0);
    await claimed.stop();
    expect(originals(server.dataDir)).toEqual([]);
    const quarantine = path.join(server.dataDir, 'quarantine');
    const moved = fs.readdirSync(quarantine).flatMap((batch) => fs.readdirSync(path.join(quarantine, batch))).sort();
    expect(moved).toEqual(before);
  });

  it('a folder and database from before instance ids are bound to each other on their next start', async () => {
    const { server, red } = await populated(db);
    cleanup.push(() => server.dispose());
    fs.rmSync(path.join(server.dataDir, 'instance.json'));
    const { default: pg } = await import('pg');
    if (db === 'postgresql') {
      const url = new URL(server.env.DATABASE_URL!);
      const schema = url.searchParams.get('schema')!;
      url.searchParams.delete('schema');
      const client = new pg.Client({ connectionString: url.toString() });
      await client.connect();
      await client.query(`DELETE FROM "${schema}"."Setting"`);
      await client.end();
    } else {
      const { default: Database } = await import('better-sqlite3');
      const sqlite = new Database(path.join(server.dataDir, 'blip-search.db'));
      sqlite.prepare('DELETE FROM "Setting"').run();
      sqlite.close();
    }
    const again = await startTestServer({ reuse: { dataDir: server.dataDir, env: server.env } });
    expect((await again.gql(SEARCH)).data.searchImages.edges[0].node.id).toBe(red);
    await again.stop();
    expect(JSON.parse(fs.readFileSync(path.join(server.dataDir, 'instance.json'), 'utf8')).instanceId).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('start-up recovery and the index file', () => {
  it('moves an orphan original (a crash between file and commit) to quarantine and logs it; never deletes it', async () => {
    const server = await startTestServer();
    await server.stop();
    const orphan = 'ab'.padEnd(64, '0');
    fs.mkdirSync(path.join(server.dataDir, 'images', 'ab'), { recursive: true });
    fs.writeFileSync(path.join(server.dataDir, 'images', 'ab', orphan), 'half an ingest');
    const again = await startTestServer({ reuse: { dataDir: server.dataDir, env: server.env } });
    await again.stop();
    const quarantine = path.join(server.dataDir, 'quarantine');
    const [batch] = fs.readdirSync(quarantine);
    expect(fs.readFileSync(path.join(quarantine, batch!, orphan), 'utf8')).toBe('half an ingest');
    await server.dispose();
  });

  it('EXPECTED FAILURE - an index file whose vectors were replaced (checksum rewritten too) is detected and rebuilt', async () => {
    const { server, red } = await populated('sqlite');
    const dir = path.join(server.dataDir, 'index');
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'hnsw.json'), 'utf8'));
    const loaded = await HnswVectorIndex.open(dir, manifest.modelId, manifest.dim, { m: 16, efConstruction: 200, efSearch: 100, initialCapacity: 16 });
    expect(loaded.status).toBe('loaded');
    // Same labels, structure valid, vectors rotated among the images.
    const labels = loaded.index.labels().sort((a, b) => a - b);
    const vectors = labels.map((l) => loaded.index.vector(l));
    const swapped = HnswVectorIndex.create(manifest.dim, manifest.modelId, { m: 16, efConstruction: 200, efSearch: 100, initialCapacity: 16 });
    labels.forEach((l, i) => swapped.add(l, vectors[(i + 1) % vectors.length]!));
    await swapped.save(dir);
    const again = await startTestServer({ reuse: { dataDir: server.dataDir, env: server.env } });
    expect((await again.gql(SEARCH)).data.searchImages.edges[0].node.id).toBe(red);
    await again.dispose();
  });

  it('EXPECTED FAILURE - an index file that does not match its checksum is not loaded', async () => {
    const { server, red } = await populated('sqlite');
    const committed = JSON.parse(fs.readFileSync(path.join(server.dataDir, 'index', 'hnsw.json'), 'utf8')).file;
    const file = path.join(server.dataDir, 'index', committed);
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff;
    fs.writeFileSync(file, bytes);
    const manifest = JSON.parse(fs.readFileSync(path.join(server.dataDir, 'index', 'hnsw.json'), 'utf8'));
    const reopened = await HnswVectorIndex.open(path.join(server.dataDir, 'index'), manifest.modelId, manifest.dim, { m: 16, efConstruction: 200, efSearch: 100, initialCapacity: 16 });
    expect(reopened).toMatchObject({ status: 'empty', reason: expect.stringMatching(/checksum/) });
    const again = await startTestServer({ reuse: { dataDir: server.dataDir, env: server.env } });
    expect((await again.gql(SEARCH)).data.searchImages.edges[0].node.id).toBe(red);
    await again.dispose();
  });
});
