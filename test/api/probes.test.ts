import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBlipEngine } from '../../src/ml/create-blip-engine.js';
import { scenePng } from '../helpers/images.js';
import { startTestServer, type DbFlavour, type GqlResponse, type TestServer } from '../helpers/test-server.js';

const flavours: DbFlavour[] = process.env.BLIP_TEST_PG === 'off' ? ['sqlite'] : ['sqlite', 'postgresql'];
const INGEST = `mutation($input: IngestImageInput!) { ingestImage(input: $input) { image { id } } }`;
const RECAPTION = `mutation($id: ID!, $o: CaptionOptions) { recaption(imageId: $id, options: $o) { caption } }`;
const code = (res: GqlResponse<unknown>) => res.errors?.[0]?.extensions?.code;

/** The probes of issue 40, against the real engine over the tiny model (64 decoder positions). */
describe.each(flavours)('every probe gets a typed error and the server keeps serving (%s)', (db) => {
  let server: TestServer;
  let id: string;
  const stillServing = async () => expect((await server.gql(`{ images { totalCount } }`)).data.images.totalCount).toBeGreaterThan(0);

  beforeAll(async () => {
    const engine = await createBlipEngine({ modelDir: 'test/fixtures/tiny-random', workers: 1, threads: 1 });
    server = await startTestServer({ db, engine, env: { NODE_ENV: 'production' } });
    const res = await server.gql(INGEST, { input: { base64: (await scenePng([{ colour: 'red', shape: 'circle' }])).toString('base64') } });
    expect(res.errors).toBeUndefined();
    id = res.data.ingestImage.image.id;
  }, 60_000);
  afterAll(async () => server?.dispose());

  it('EXPECTED FAILURE - a fragment cycle: GRAPHQL_VALIDATION_FAILED', async () => {
    const res = await server.gql(`{ ...A } fragment A on Query { images { totalCount } ...B } fragment B on Query { ...A }`);
    expect(res.status).toBe(400);
    expect(code(res)).toBe('GRAPHQL_VALIDATION_FAILED');
    await stillServing();
  });

  it('EXPECTED FAILURE - metadata nested 20,000 deep, as a variable and inline: BAD_USER_INPUT or a refused document', async () => {
    // Sent as text: JSON.stringify itself overflows on 20,000 levels.
    const deep = `${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}`;
    const b64 = (await scenePng([{ colour: 'blue', shape: 'square' }])).toString('base64');
    const post = async (query: string, variables: string) => {
      const res = await fetch(`${server.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"query":${JSON.stringify(query)},"variables":${variables}}` });
      return { status: res.status, ...((await res.json()) as Omit<GqlResponse<unknown>, 'status'>) };
    };
    expect(code(await post(INGEST, `{"input":{"base64":"${b64}","metadata":${deep}}}`))).toBe('BAD_USER_INPUT');
    expect(code(await post(`mutation($id: ID!, $m: JSON) { updateImage(id: $id, input: { metadata: $m }) { id } }`, `{"id":"${id}","m":${deep}}`))).toBe('BAD_USER_INPUT');
    expect(code(await post(`query($f: ImageFilter) { images(filter: $f) { totalCount } }`, `{"f":{"metadata":${deep}}}`))).toBe('BAD_USER_INPUT');
    const inline = await server.gql(`mutation { updateImage(id: "${id}", input: { metadata: ${'{a: '.repeat(20_000)}1${'}'.repeat(20_000)} }) { id } }`);
    expect(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_USER_INPUT']).toContain(code(inline));
    await stillServing();
  });

  it('EXPECTED FAILURE - a document of 200k aliases: GRAPHQL_PARSE_FAILED, fast', async () => {
    const started = performance.now();
    const res = await server.gql(`{ ${Array.from({ length: 200_000 }, (_, i) => `a${i}: __typename`).join(' ')} }`);
    expect(code(res)).toBe('GRAPHQL_PARSE_FAILED');
    expect(res.errors?.[0]?.message).toMatch(/tokens/);
    expect(performance.now() - started).toBeLessThan(5000);
    await stillServing();
  });

  it('EXPECTED FAILURE - recaption past the model positions or with a 360-character prompt: BAD_USER_INPUT', async () => {
    const long = await server.gql(RECAPTION, { id, o: { maxLength: 100, minLength: 90 } });
    expect(code(long)).toBe('BAD_USER_INPUT');
    expect(long.errors?.[0]?.message).toMatch(/positions/);
    const prompt = await server.gql(RECAPTION, { id, o: { prompt: 'a picture of '.repeat(28).slice(0, 360) } });
    expect(code(prompt)).toBe('BAD_USER_INPUT');
    expect(prompt.errors?.[0]?.message).toMatch(/prompt/);
    expect((await server.gql(RECAPTION, { id, o: { maxLength: 20 } })).errors).toBeUndefined();
  });

  it('EXPECTED FAILURE - recaption of an image deleted meanwhile: NOT_FOUND', async () => {
    const other = (await server.gql(INGEST, { input: { base64: (await scenePng([{ colour: 'green', shape: 'circle' }], 'gray')).toString('base64') } })).data.ingestImage.image.id;
    // Eight beams for 60 tokens keep the model busy while the delete lands.
    const recaption = server.gql(RECAPTION, { id: other, o: { numBeams: 8, maxLength: 60, minLength: 59 } });
    await new Promise((r) => setTimeout(r, 20));
    expect((await server.admin(`mutation($id: ID!) { deleteImage(id: $id) { deleted } }`, { id: other })).data.deleteImage.deleted).toBe(true);
    const res = await recaption;
    expect(code(res)).toBe('NOT_FOUND');
    await stillServing();
  });

  it("EXPECTED FAILURE - an undecodable image: UNSUPPORTED_IMAGE without sharp's words", async () => {
    const png = await scenePng([{ colour: 'yellow', shape: 'circle' }]);
    const broken = Buffer.concat([png.subarray(0, 60), Buffer.alloc(200, 7)]);
    const res = await server.gql(INGEST, { input: { base64: broken.toString('base64') } });
    expect(code(res)).toBe('UNSUPPORTED_IMAGE');
    expect(res.errors?.[0]?.message).not.toMatch(/vips|libpng|sharp|Input buffer|pngload/i);
  });

  it('EXPECTED FAILURE - NODE_ENV=production: a misspelt field gets no suggestion', async () => {
    const res = await server.gql(`{ imagez { totalCount } }`);
    expect(code(res)).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(res.errors?.[0]?.message).not.toMatch(/Did you mean/);
  });
});
