import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FakeBlipEngine } from '../helpers/fake-blip-engine.js';
import { scenePng } from '../helpers/images.js';
import { startTestServer } from '../helpers/test-server.js';

const INGEST = `mutation($input: IngestImageInput!) { ingestImage(input: $input) { image { id } } }`;
const SEARCH = `{ searchImages(text: "red", first: 10) { edges { node { id } itmScore } } }`;

describe('restarts: the index is a derived cache of the database', () => {
  it('rebuilds a missing index file, re-embeds after a model change, recomputes lost ITM states', async () => {
    const first = await startTestServer();
    const red = (await first.gql(INGEST, { input: { base64: (await scenePng([{ colour: 'red', shape: 'circle' }])).toString('base64') } })).data.ingestImage.image.id;
    await first.gql(INGEST, { input: { base64: (await scenePng([{ colour: 'blue', shape: 'circle' }])).toString('base64') } });
    await first.stop();
    const reuse = { dataDir: first.dataDir, env: first.env };

    fs.rmSync(path.join(first.dataDir, 'index'), { recursive: true });
    const second = await startTestServer({ reuse });
    expect((await second.gql(SEARCH)).data.searchImages.edges[0].node.id).toBe(red);
    await second.stop();

    const engine = new FakeBlipEngine({ modelId: 'fake-colour-v2' });
    const third = await startTestServer({ reuse, engine });
    await expect.poll(async () => (await third.gql(`{ serviceInfo { indexedImages } }`)).data.serviceInfo.indexedImages, { timeout: 15_000 }).toBe(2);
    fs.rmSync(path.join(first.dataDir, 'itm-states'), { recursive: true });
    const res = await third.gql(SEARCH);
    expect(res.data.searchImages.edges[0].node.id).toBe(red);
    expect(res.data.searchImages.edges[0].itmScore).toBeGreaterThan(0.5);
    await third.stop();
    expect(JSON.parse(fs.readFileSync(path.join(first.dataDir, 'index', 'hnsw.json'), 'utf8')).modelId).toBe('fake-colour-v2');
    await first.dispose();
  });

  it('seeds the bundled samples on a first start only', async () => {
    const samples = fs.mkdtempSync(path.join(os.tmpdir(), 'samples-'));
    fs.writeFileSync(path.join(samples, 'a.png'), await scenePng([{ colour: 'green', shape: 'square' }]));
    fs.writeFileSync(path.join(samples, 'a.txt'), 'a green square');
    fs.writeFileSync(path.join(samples, 'broken.png'), 'not a png');
    const server = await startTestServer({ env: { SEED_SAMPLES: 'true', SAMPLES_DIR: samples } });
    await expect.poll(async () => (await server.gql(`{ images { totalCount } }`)).data.images.totalCount, { timeout: 15_000 }).toBe(1);
    const img = (await server.gql(`{ images { edges { node { altText metadata } } } }`)).data.images.edges[0].node;
    expect(img).toEqual({ altText: 'a green square', metadata: { sample: 'a.png' } });
    const id = (await server.gql(`{ images { edges { node { id } } } }`)).data.images.edges[0].node.id;
    await server.admin(`mutation($id: ID!) { deleteImage(id: $id) { deleted } }`, { id });
    await server.stop();
    const restarted = await startTestServer({ reuse: { dataDir: server.dataDir, env: server.env } });
    await new Promise((r) => setTimeout(r, 300));
    expect((await restarted.gql(`{ images { totalCount } }`)).data.images.totalCount).toBe(0);
    await restarted.dispose();
    fs.rmSync(samples, { recursive: true, force: true });
  });
});
