import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgSchema, postGraphql, type DbFlavour } from '../helpers/test-server.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crash-child.ts');
const INGEST = `mutation($input: IngestImageInput!) { ingestImage(input: $input) { image { id } } }`;

async function startChild(env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /READY (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`child exited with ${code} before it was ready`)));
  });
  return { child, url: `http://127.0.0.1:${port}` };
}

function distinctPng(i: number): Promise<Buffer> {
  return sharp({ create: { width: 24, height: 24, channels: 3, background: { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 53) % 256 } } })
    .png()
    .toBuffer();
}

const flavours: DbFlavour[] = process.env.BLIP_TEST_PG === 'off' ? ['sqlite'] : ['sqlite', 'postgresql'];

describe.each(flavours)('crash safety: SIGKILL a real server process mid-ingest (%s)', (db) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-crash-'));
  const env: Record<string, string> = { DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', SEED_SAMPLES: 'false', LOG_LEVEL: 'silent', FAKE_DELAY_MS: '15', INDEX_SAVE_DELAY_MS: '5000' };
  let dropPg: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    if (db !== 'postgresql') return;
    const schema = await createPgSchema();
    env.DATABASE_URL = schema.url;
    dropPg = schema.drop;
  });
  afterAll(async () => {
    await dropPg?.();
    if (!process.env.KEEP_CRASH_DIR) fs.rmSync(dataDir, { recursive: true, force: true });
    else console.log('kept', dataDir);
  });

  it('after restarts, every acknowledged image is searchable and nothing half-made is returned', async () => {
    const acknowledged = new Set<string>();
    let next = 0;
    // Kill once a few more ingests were acknowledged (others are then in flight), plus a varying
    // delay, so kills land at different steps of an ingest however fast this machine is today.
    for (const [round, extraDelayMs] of [0, 7, 19, 31].entries()) {
      const { child, url } = await startChild(env);
      const exited = new Promise((r) => child.once('exit', r));
      let killed = false;
      const worker = async () => {
        while (!killed) {
          const png = await distinctPng(next++);
          try {
            const res = await postGraphql<{ ingestImage: { image: { id: string } } }>(url, INGEST, { input: { base64: png.toString('base64') } });
            if (res.data?.ingestImage) acknowledged.add(res.data.ingestImage.image.id);
          } catch {
            return; // connection died with the process
          }
        }
      };
      const workers = [worker(), worker(), worker()];
      const target = acknowledged.size + 2 + round;
      while (acknowledged.size < target) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, extraDelayMs));
      killed = true;
      child.kill('SIGKILL');
      await exited;
      await Promise.all(workers);
    }
    expect(acknowledged.size).toBeGreaterThanOrEqual(14);

    const { child, url } = await startChild(env);
    try {
      const search = await postGraphql<{ searchImages: { edges: Array<{ node: { id: string } }> } }>(
        url,
        `{ searchImages(text: "anything", first: 100, candidates: 500, rerank: false) { edges { node { id } } } }`,
      );
      const searchable = new Set(search.data!.searchImages.edges.map((e) => e.node.id));
      for (const id of acknowledged) expect(searchable.has(id), `acknowledged ${id} is searchable`).toBe(true);

      const listed = await postGraphql<{ images: { totalCount: number; edges: Array<{ node: { id: string } }> } }>(
        url,
        `{ images(first: 100) { totalCount edges { node { id } } } }`,
      );
      // Every stored row is complete: searchable, with its bytes.
      expect(listed.data!.images.totalCount).toBe(searchable.size);
      for (const { node } of listed.data!.images.edges) {
        expect(searchable.has(node.id)).toBe(true);
        expect((await fetch(`${url}/images/${node.id}`)).status).toBe(200);
      }
      // No leftover files from interrupted writes.
      const imagesDir = path.join(dataDir, 'images');
      const files = fs.readdirSync(imagesDir).flatMap((d) => fs.readdirSync(path.join(imagesDir, d)));
      expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([]);
      expect(files.length).toBe(listed.data!.images.totalCount);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  }, 180_000);

  it('SIGTERM drains, saves the index and exits 0', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-term-'));
    // A data folder of its own needs a database of its own (src/services/data-dir-binding.service.ts).
    const schema = db === 'postgresql' ? await createPgSchema() : null;
    const own: Record<string, string> = schema ? { DATABASE_URL: schema.url } : {};
    const { child, url } = await startChild({ ...env, ...own, DATA_DIR: dir, INDEX_SAVE_DELAY_MS: '600000', FAKE_DELAY_MS: '0' });
    const res = await postGraphql<{ ingestImage: { image: { id: string } } }>(url, INGEST, { input: { base64: (await distinctPng(999)).toString('base64') } });
    expect(res.data?.ingestImage.image.id).toBeTruthy();
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'index', 'hnsw.json'), 'utf8'));
    expect(manifest.modelId).toBe('fake-colour-v1');
    expect(fs.statSync(path.join(dir, 'index', manifest.file)).size).toBeGreaterThan(100);
    fs.rmSync(dir, { recursive: true, force: true });
    await schema?.drop();
  }, 90_000);
});
