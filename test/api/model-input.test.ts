import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlipEngine } from '../../src/ml/blip-engine.js';
import { createBlipEngine } from '../../src/ml/create-blip-engine.js';
import { startTestServer, type DbFlavour, type TestServer } from '../helpers/test-server.js';

const flavours: DbFlavour[] = process.env.BLIP_TEST_PG === 'off' ? ['sqlite'] : ['sqlite', 'postgresql'];

describe.each(flavours)('questions and captions read the kept model input, not the original (%s)', (db) => {
  let server: TestServer;
  const decoded: number[] = [];
  let size = 0;
  beforeAll(async () => {
    const real = await createBlipEngine({ modelDir: 'test/fixtures/tiny-random', workers: 1, threads: 1 });
    size = real.inputSize!;
    // Records the byte length of every decode; everything else is the real engine.
    const recording: BlipEngine = Object.assign(Object.create(real) as BlipEngine, {
      loadImage: (bytes: Uint8Array) => {
        decoded.push(bytes.byteLength);
        return real.loadImage(bytes);
      },
      close: () => real.close(),
    });
    server = await startTestServer({ db, engine: recording });
  }, 60_000);
  afterAll(async () => server?.dispose());

  it('ingest keeps an S x S PNG; askImage and recaption decode only it; delete removes it', async () => {
    const original = await sharp({ create: { width: 1600, height: 1200, channels: 3, background: '#4080c0' } })
      .composite([{ input: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="800" height="600"><circle cx="400" cy="300" r="250" fill="#e03020"/></svg>'), top: 300, left: 400 }])
      .jpeg()
      .toBuffer();
    const res = await server.gql(`mutation($b: String!) { ingestImage(input: { base64: $b }) { image { id sha256 } } }`, { b: original.toString('base64') });
    expect(res.errors).toBeUndefined();
    const { id, sha256 } = res.data.ingestImage.image as { id: string; sha256: string };
    const kept = path.join(server.dataDir, 'model-input', String(size), sha256.slice(0, 2), `${sha256}.png`);
    const meta = await sharp(fs.readFileSync(kept)).metadata();
    expect([meta.width, meta.height]).toEqual([size, size]);

    decoded.length = 0;
    for (const q of ['what colour is it?', 'is there a circle?']) {
      expect((await server.gql(`query($id: ID!, $q: String!) { askImage(imageId: $id, question: $q) { answer } }`, { id, q })).errors).toBeUndefined();
    }
    expect((await server.gql(`mutation($id: ID!) { recaption(imageId: $id) { caption } }`, { id })).errors).toBeUndefined();
    expect(decoded).toEqual([fs.statSync(kept).size, fs.statSync(kept).size, fs.statSync(kept).size]);
    expect(decoded.every((n) => n < original.length / 10)).toBe(true);

    expect((await server.admin(`mutation($id: ID!) { deleteImage(id: $id) { deleted } }`, { id })).errors).toBeUndefined();
    expect(fs.existsSync(kept)).toBe(false);
  });
});
