import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scenePng } from '../helpers/images.js';
import { startTestServer, type DbFlavour, type TestServer } from '../helpers/test-server.js';

const INGEST = `mutation($input: IngestImageInput!) {
  ingestImage(input: $input) { created image { id caption captionMatch altText altTextMatch description width height mimeType byteSize sha256 url thumbnailUrl metadata createdAt } }
}`;
const SEARCH = `query($text: String!, $first: Int, $after: String, $rerank: Boolean, $candidates: Int, $minMatch: Float) {
  searchImages(text: $text, first: $first, after: $after, rerank: $rerank, candidates: $candidates, minMatch: $minMatch) {
    totalCount edges { cursor itcScore itmScore score node { id caption } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}`;

const flavours: DbFlavour[] = process.env.BLIP_TEST_PG === 'off' ? ['sqlite'] : ['sqlite', 'postgresql'];

describe.each(flavours)('GraphQL over HTTP (%s)', (db) => {
  let server: TestServer;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    server = await startTestServer({ db });
    const scenes = {
      red: await scenePng([{ colour: 'red', shape: 'circle' }]),
      blue: await scenePng([{ colour: 'blue', shape: 'square' }], 'black'),
      green: await scenePng([{ colour: 'green', shape: 'circle' }], 'gray'),
      redBlue: await scenePng([{ colour: 'red', shape: 'circle', size: 'small' }, { colour: 'blue', shape: 'square', size: 'small' }]),
    };
    for (const [name, png] of Object.entries(scenes)) {
      const res = await server.gql(INGEST, { input: { base64: png.toString('base64'), metadata: { name } } });
      expect(res.errors).toBeUndefined();
      ids[name] = res.data.ingestImage.image.id;
    }
  });
  afterAll(async () => server?.dispose());

  it('ingests base64 and returns the stored image', async () => {
    const png = await scenePng([{ colour: 'yellow', shape: 'circle' }], 'black');
    const res = await server.gql(INGEST, { input: { base64: `data:image/png;base64,${png.toString('base64')}`, altText: 'a yellow circle', metadata: { a: 1 } } });
    expect(res.errors).toBeUndefined();
    const { created, image } = res.data.ingestImage;
    expect(created).toBe(true);
    expect(image).toMatchObject({ width: 128, height: 128, mimeType: 'image/png', byteSize: png.length, metadata: { a: 1 }, altText: 'a yellow circle' });
    expect(image.altTextMatch).toBeGreaterThan(0.5);
    expect(image.captionMatch).toBeGreaterThan(0.5);
    expect(image.description).toBe(image.altTextMatch >= image.captionMatch ? 'a yellow circle' : image.caption);
    expect(image.url).toBe(`/images/${image.id}`);
    expect(new Date(image.createdAt).getTime()).toBeGreaterThan(0);
    ids.yellow = image.id;
  });

  it('stores the same bytes once (created: false)', async () => {
    const png = await scenePng([{ colour: 'red', shape: 'circle' }]);
    const res = await server.gql(INGEST, { input: { base64: png.toString('base64') } });
    expect(res.data.ingestImage).toMatchObject({ created: false, image: { id: ids.red } });
  });

  it('keeps the caption as description when the alt text does not match (CapFilt)', async () => {
    const png = await scenePng([{ colour: 'purple', shape: 'square' }]);
    const res = await server.gql(INGEST, { input: { base64: png.toString('base64'), altText: 'a green banana' } });
    const { image } = res.data.ingestImage;
    expect(image.altTextMatch).toBeLessThan(0.5);
    expect(image.description).toBe(image.caption);
    expect(image.altText).toBe('a green banana');
  });

  it('searchImages ranks by ITM + ITC and reports the match probability', async () => {
    const res = await server.gql(SEARCH, { text: 'red circle', first: 3 });
    expect(res.errors).toBeUndefined();
    const edges = res.data.searchImages.edges;
    expect([ids.red, ids.redBlue]).toContain(edges[0].node.id);
    for (const e of edges) {
      expect(e.itmScore).toBeGreaterThanOrEqual(0);
      expect(e.itmScore).toBeLessThanOrEqual(1);
      // score = ITM match logit + ITC cosine; the fake's no-match logit is 0, so logit = log(p / (1 - p))
      expect(e.score).toBeCloseTo(Math.log(e.itmScore / (1 - e.itmScore)) + e.itcScore, 4);
    }
    const scores = edges.map((e: { score: number }) => e.score);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
  });

  it('rerank: false gives ITC order with no itmScore', async () => {
    const res = await server.gql(SEARCH, { text: 'blue', first: 10, rerank: false });
    const edges = res.data.searchImages.edges;
    expect(edges[0].node.id).toBe(ids.blue);
    expect(edges.every((e: { itmScore: number | null; score: number; itcScore: number }) => e.itmScore === null && e.score === e.itcScore)).toBe(true);
  });

  it('minMatch cuts off by match probability', async () => {
    const res = await server.gql(SEARCH, { text: 'green', first: 10, minMatch: 0.9 });
    const edges = res.data.searchImages.edges;
    expect(edges.map((e: { node: { id: string } }) => e.node.id)).toEqual([ids.green]);
  });

  it('paginates the ranked list with cursors', async () => {
    const all = (await server.gql(SEARCH, { text: 'red', first: 50 })).data.searchImages;
    const page1 = (await server.gql(SEARCH, { text: 'red', first: 2 })).data.searchImages;
    expect(page1.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
    const page2 = (await server.gql(SEARCH, { text: 'red', first: 2, after: page1.pageInfo.endCursor })).data.searchImages;
    expect(page2.pageInfo.hasPreviousPage).toBe(true);
    const ids2 = [...page1.edges, ...page2.edges].map((e: { node: { id: string } }) => e.node.id);
    expect(ids2).toEqual(all.edges.slice(0, 4).map((e: { node: { id: string } }) => e.node.id));
    expect(page1.totalCount).toBe(all.totalCount);
  });

  it('similarImages excludes the image itself', async () => {
    const res = await server.gql(`query($id: ID!) { similarImages(imageId: $id, first: 3) { edges { node { id } itcScore itmScore } } }`, { id: ids.red });
    const edges = res.data.similarImages.edges;
    expect(edges.map((e: { node: { id: string } }) => e.node.id)).toContain(ids.redBlue);
    const scores = edges.map((e: { itcScore: number }) => e.itcScore);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    expect(edges.every((e: { itmScore: number | null }) => e.itmScore === null)).toBe(true);
    expect(edges.some((e: { node: { id: string } }) => e.node.id === ids.red)).toBe(false);
  });

  it('askImage answers about a stored image', async () => {
    const res = await server.gql(`query($id: ID!) { askImage(imageId: $id, question: "what color is the circle?") { answer question image { id } } }`, { id: ids.green });
    expect(res.data.askImage).toEqual({ answer: 'green', question: 'what color is the circle?', image: { id: ids.green } });
  });

  it('recaption stores a new caption', async () => {
    const res = await server.gql(`mutation($id: ID!) { recaption(imageId: $id, options: { numBeams: 3 }) { id caption } }`, { id: ids.blue });
    expect(res.data.recaption.caption).toBe('a blue shape (beam 3)');
    const again = await server.gql(`query($id: ID!) { image(id: $id) { caption } }`, { id: ids.blue });
    expect(again.data.image.caption).toBe('a blue shape (beam 3)');
  });

  it('images lists newest first with a total count', async () => {
    const res = await server.gql(`{ images(first: 2) { totalCount edges { node { id } } pageInfo { hasNextPage endCursor } } }`);
    expect(res.data.images.totalCount).toBeGreaterThanOrEqual(5);
    expect(res.data.images.pageInfo.hasNextPage).toBe(true);
    const next = await server.gql(`query($after: String) { images(first: 100, after: $after) { edges { node { id } } pageInfo { hasNextPage } } }`, {
      after: res.data.images.pageInfo.endCursor,
    });
    expect(next.data.images.edges.length + 2).toBe(res.data.images.totalCount);
    expect(next.data.images.pageInfo.hasNextPage).toBe(false);
  });

  it('serves original bytes, a thumbnail and health', async () => {
    const original = await fetch(`${server.url}/images/${ids.red}`);
    expect(original.status).toBe(200);
    expect(original.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await original.arrayBuffer()).equals(await scenePng([{ colour: 'red', shape: 'circle' }]))).toBe(true);
    const thumb = await fetch(`${server.url}/images/${ids.red}/thumbnail`);
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get('content-type')).toBe('image/webp');
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${server.url}/images/00000000-0000-4000-8000-000000000000`)).status).toBe(404);
    expect((await fetch(`${server.url}/images/nope`)).status).toBe(400);
  });

  it('answers ORIGINAL_MISSING, not a masked 500, when an original was removed by hand', async () => {
    const png = await scenePng([{ colour: 'orange', shape: 'square' }], 'gray');
    const res = await server.gql(INGEST, { input: { base64: png.toString('base64') } });
    const { id, sha256 } = res.data.ingestImage.image;
    fs.rmSync(path.join(server.dataDir, 'images', sha256.slice(0, 2), sha256));
    const http = await fetch(`${server.url}/images/${id}`);
    expect(http.status).toBe(500);
    expect(((await http.json()) as { error: { code: string } }).error.code).toBe('ORIGINAL_MISSING');
    const ask = await server.gql(`query($id: ID!) { askImage(imageId: $id, question: "what color is the background?") { answer } }`, { id });
    expect(ask.errors?.[0]?.extensions?.code).toBe('ORIGINAL_MISSING');
    expect(ask.errors?.[0]?.message).toContain(sha256);
    // the rest keeps working, and deleting the image clears it
    expect((await fetch(`${server.url}/images/${ids.red}`)).status).toBe(200);
    const del = await server.admin(`mutation($id: ID!) { deleteImage(id: $id) { id deleted } }`, { id });
    expect(del.data.deleteImage).toEqual({ id, deleted: true });
  });

  it('deleteImage removes the image from reads and search', async () => {
    const png = await scenePng([{ colour: 'orange', shape: 'square' }]);
    const id = (await server.gql(INGEST, { input: { base64: png.toString('base64') } })).data.ingestImage.image.id;
    expect((await server.gql(SEARCH, { text: 'orange', first: 1 })).data.searchImages.edges[0].node.id).toBe(id);
    const del = await server.admin(`mutation($id: ID!) { deleteImage(id: $id) { id deleted } }`, { id });
    expect(del.data.deleteImage).toEqual({ id, deleted: true });
    expect((await server.gql(`query($id: ID!) { image(id: $id) { id } }`, { id })).data.image).toBeNull();
    const after = await server.gql(SEARCH, { text: 'orange', first: 50 });
    expect(after.data.searchImages.edges.some((e: { node: { id: string } }) => e.node.id === id)).toBe(false);
    expect((await fetch(`${server.url}/images/${id}`)).status).toBe(404);
    const again = await server.gql(INGEST, { input: { base64: png.toString('base64') } });
    expect(again.data.ingestImage.created).toBe(true);
  });

  it('serviceInfo reports the model and index size', async () => {
    const res = await server.gql(`{ serviceInfo { modelId embedDim indexedImages } }`);
    expect(res.data.serviceInfo).toMatchObject({ modelId: 'fake-colour-v1', embedDim: 8 });
    expect(res.data.serviceInfo.indexedImages).toBeGreaterThanOrEqual(5);
  });
});
