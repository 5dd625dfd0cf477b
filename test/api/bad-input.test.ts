import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pixelBombPng, scenePng } from '../helpers/images.js';
import { startTestServer, type DbFlavour, type GqlResponse, type TestServer } from '../helpers/test-server.js';

const INGEST = `mutation($input: IngestImageInput!) { ingestImage(input: $input) { created image { id } } }`;
const flavours: DbFlavour[] = process.env.BLIP_TEST_PG === 'off' ? ['sqlite'] : ['sqlite', 'postgresql'];
const MISSING_ID = '00000000-0000-4000-8000-000000000000';

function expectCode(res: GqlResponse<unknown>, code: string) {
  expect(res.errors?.[0]?.extensions?.code, JSON.stringify(res.errors)).toBe(code);
}

describe.each(flavours)('EXPECTED FAILURE - bad input gets a typed error and stores nothing (%s)', (db) => {
  let server: TestServer;
  let good: Buffer;
  let storedId: string;

  const storedCount = async () => (await server.gql(`{ images(first: 1) { totalCount } }`)).data.images.totalCount as number;
  const fileCount = () => {
    const root = path.join(server.dataDir, 'images');
    return fs.existsSync(root) ? fs.readdirSync(root).flatMap((d) => fs.readdirSync(path.join(root, d))).length : 0;
  };
  const ingestBase64 = (bytes: Buffer, extra: Record<string, unknown> = {}) =>
    server.gql(INGEST, { input: { base64: bytes.toString('base64'), ...extra } });

  beforeAll(async () => {
    server = await startTestServer({
      db,
      env: { MAX_UPLOAD_BYTES: '100000', MAX_TEXT_CHARS: '200', MAX_PAGE_SIZE: '50', MAX_QUERY_DEPTH: '5', MAX_QUERY_COMPLEXITY: '3000' },
    });
    good = await scenePng([{ colour: 'red', shape: 'circle' }]);
    storedId = (await ingestBase64(good)).data.ingestImage.image.id;
  });
  afterAll(async () => {
    expect(await storedCount()).toBe(1);
    expect(fileCount()).toBe(1);
    await server?.dispose();
  });

  it('not an image', async () => expectCode(await ingestBase64(Buffer.from('hello, I am text, not a picture')), 'UNSUPPORTED_IMAGE'));
  it('truncated image', async () => {
    const other = await scenePng([{ colour: 'blue', shape: 'circle' }]);
    expectCode(await ingestBase64(other.subarray(0, Math.floor(other.length / 2))), 'UNSUPPORTED_IMAGE');
  });
  it('corrupt image', async () => {
    const other = Buffer.from(await scenePng([{ colour: 'green', shape: 'square' }]));
    for (let i = 60; i < other.length - 20; i += 7) other[i] = other[i]! ^ 0xff;
    expectCode(await ingestBase64(other), 'UNSUPPORTED_IMAGE');
  });
  it('pixel bomb PNG claiming 25000 x 25000', async () => {
    const res = await ingestBase64(pixelBombPng());
    expectCode(res, 'PAYLOAD_TOO_LARGE');
    expect(res.errors?.[0]?.extensions).toMatchObject({ unit: 'pixels' });
  });
  it('bytes over MAX_UPLOAD_BYTES (base64)', async () => expectCode(await ingestBase64(Buffer.alloc(150_000, 1)), 'PAYLOAD_TOO_LARGE'));
  it('invalid base64', async () => expectCode(await server.gql(INGEST, { input: { base64: '!!not base64!!' } }), 'BAD_USER_INPUT'));
  it('empty base64', async () => expectCode(await server.gql(INGEST, { input: { base64: '' } }), 'BAD_USER_INPUT'));
  it('neither file nor base64', async () => expectCode(await server.gql(INGEST, { input: {} }), 'BAD_USER_INPUT'));
  it('empty altText', async () => expectCode(await ingestBase64(await scenePng([{ colour: 'blue', shape: 'square' }]), { altText: '   ' }), 'BAD_USER_INPUT'));
  it('overlong altText', async () => expectCode(await ingestBase64(await scenePng([{ colour: 'blue', shape: 'square' }]), { altText: 'x'.repeat(201) }), 'BAD_USER_INPUT'));
  it('metadata that is not an object', async () => expectCode(await ingestBase64(await scenePng([{ colour: 'blue', shape: 'square' }]), { metadata: [1, 2] }), 'BAD_USER_INPUT'));

  const search = (vars: Record<string, unknown>) =>
    server.gql(`query($text: String!, $first: Int, $after: String, $candidates: Int, $minMatch: Float, $rerank: Boolean) {
      searchImages(text: $text, first: $first, after: $after, candidates: $candidates, minMatch: $minMatch, rerank: $rerank) { edges { node { id } } } }`, vars);
  it('empty search text', async () => expectCode(await search({ text: ' ' }), 'BAD_USER_INPUT'));
  it('overlong search text', async () => expectCode(await search({ text: 'red '.repeat(100) }), 'BAD_USER_INPUT'));
  it('first = 0', async () => expectCode(await search({ text: 'red', first: 0 }), 'BAD_USER_INPUT'));
  it('first < 0', async () => expectCode(await search({ text: 'red', first: -5 }), 'BAD_USER_INPUT'));
  it('first above MAX_PAGE_SIZE', async () => expectCode(await search({ text: 'red', first: 51 }), 'BAD_USER_INPUT'));
  it('first not an Int', async () => expectCode(await search({ text: 'red', first: 'ten' }), 'BAD_USER_INPUT'));
  it('garbage cursor', async () => expectCode(await search({ text: 'red', after: 'garbage' }), 'BAD_USER_INPUT'));
  it('candidates = 0', async () => expectCode(await search({ text: 'red', candidates: 0 }), 'BAD_USER_INPUT'));
  it('minMatch outside [0,1]', async () => expectCode(await search({ text: 'red', minMatch: 1.5 }), 'BAD_USER_INPUT'));
  it('minMatch without rerank', async () => expectCode(await search({ text: 'red', minMatch: 0.5, rerank: false }), 'BAD_USER_INPUT'));
  it('images first out of range', async () => expectCode(await server.gql(`{ images(first: 1000) { totalCount } }`), 'BAD_USER_INPUT'));

  it('malformed id', async () => expectCode(await server.gql(`{ image(id: "not-an-id") { id } }`), 'BAD_USER_INPUT'));
  it('unknown id reads as null', async () => expect((await server.gql(`{ image(id: "${MISSING_ID}") { id } }`)).data).toEqual({ image: null }));
  it('askImage on an unknown id', async () => expectCode(await server.gql(`{ askImage(imageId: "${MISSING_ID}", question: "what color is the circle?") { answer } }`), 'NOT_FOUND'));
  it('askImage with an empty question', async () => expectCode(await server.gql(`{ askImage(imageId: "${storedId}", question: "") { answer } }`), 'BAD_USER_INPUT'));
  it('similarImages on a malformed id', async () => expectCode(await server.gql(`{ similarImages(imageId: "1; DROP TABLE") { edges { score } } }`), 'BAD_USER_INPUT'));
  it('deleteImage on an unknown id', async () => expectCode(await server.admin(`mutation { deleteImage(id: "${MISSING_ID}") { id } }`), 'NOT_FOUND'));
  it('recaption with out-of-range options', async () =>
    expectCode(await server.gql(`mutation { recaption(imageId: "${storedId}", options: { numBeams: 99 }) { id } }`), 'BAD_USER_INPUT'));

  it('malformed query', async () => {
    const res = await server.gql(`{ searchImages(text: "red" { edges }`);
    expect(res.status).toBe(400);
    expectCode(res, 'GRAPHQL_PARSE_FAILED');
  });
  it('unknown field', async () => expectCode(await server.gql(`{ nope }`), 'GRAPHQL_VALIDATION_FAILED'));
  it('pathologically nested query does not take the server down', async () => {
    const nested = `{ ${'a { '.repeat(3000)}b${' }'.repeat(3000)} }`;
    const res = await fetch(`${server.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: nested }) });
    expect(res.status).toBe(400);
    const body = (await res.json()) as GqlResponse<unknown>;
    expect(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED']).toContain(body.errors?.[0]?.extensions?.code);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });
  it('alias flood is refused by the complexity limit', async () => {
    const fields = Array.from({ length: 50 }, (_, i) => `s${i}: searchImages(text: "red", first: 50) { edges { node { id caption } } }`).join(' ');
    const res = await server.gql(`{ ${fields} }`);
    expect(res.status).toBe(400);
    expectCode(res, 'GRAPHQL_VALIDATION_FAILED');
  });
  it('malformed JSON body', async () => {
    const res = await fetch(`${server.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query": ' });
    expect(res.status).toBe(400);
  });
});

describe('EXPECTED FAILURE - query deeper than MAX_QUERY_DEPTH', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { MAX_QUERY_DEPTH: '2' } });
  });
  afterAll(async () => server?.dispose());

  it('is refused before execution', async () => {
    expect((await server.gql(`{ images { totalCount pageInfo { hasNextPage } } }`)).errors).toBeUndefined();
    const res = await server.gql(`{ searchImages(text: "red") { edges { node { id } } } }`);
    expect(res.status).toBe(400);
    expectCode(res, 'GRAPHQL_VALIDATION_FAILED');
    expect(res.errors?.[0]?.message).toMatch(/exceeds maximum operation depth/);
  });
});
