import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBlipEngine } from '../../src/ml/create-blip-engine.js';
import { pixelBombPng } from '../helpers/images.js';
import { renderScene } from '../helpers/scene-svg.js';
import { startTestServer, type GqlResponse, type TestServer } from '../helpers/test-server.js';

const INGEST = `mutation($b: String!, $alt: String) { ingestImage(input: { base64: $b, altText: $alt }) { created image { id caption captionMatch altTextMatch width height mimeType } } }`;
const code = (res: GqlResponse<unknown>) => res.errors?.[0]?.extensions?.code;

/** The real createBlipEngine over the tiny random-weight fixture: plumbing, not meaning. */
describe('the service over the real engine (test/fixtures/tiny-random)', () => {
  let server: TestServer;
  const ids: string[] = [];

  beforeAll(async () => {
    const engine = await createBlipEngine({ modelDir: 'test/fixtures/tiny-random', workers: 1 });
    server = await startTestServer({ engine, env: { ITM_BATCH_SIZE: '2' } });
  }, 60_000);
  afterAll(async () => server?.dispose());

  it('ingests, captions and scores alt text', async () => {
    for (const colour of ['red', 'blue', 'green'] as const) {
      const png = await renderScene('white', [{ shape: 'circle', colour, size: 'large', x: 64, y: 64 }]);
      const res = await server.gql(INGEST, { b: png.toString('base64'), alt: `a ${colour} circle` });
      expect(res.errors).toBeUndefined();
      const { image } = res.data.ingestImage;
      expect(image).toMatchObject({ width: 128, height: 128, mimeType: 'image/png' });
      expect(typeof image.caption).toBe('string');
      expect(image.altTextMatch).toBeGreaterThanOrEqual(0);
      expect(image.altTextMatch).toBeLessThanOrEqual(1);
      ids.push(image.id);
    }
  });

  it('searches with ITM re-ranking in batches; score = logit + cosine is ordered', async () => {
    const res = await server.gql(`{ searchImages(text: "a red circle", first: 3) { edges { score itcScore itmScore node { id } } } }`);
    expect(res.errors).toBeUndefined();
    const edges = res.data.searchImages.edges as Array<{ score: number; itcScore: number; itmScore: number }>;
    expect(edges).toHaveLength(3);
    expect(edges.map((e) => e.score)).toEqual([...edges.map((e) => e.score)].sort((a, b) => b - a));
    for (const e of edges) {
      expect(Math.abs(e.itcScore)).toBeLessThanOrEqual(1.0001);
      expect(e.itmScore).toBeGreaterThanOrEqual(0);
    }
  });

  it('answers questions and recaptions', async () => {
    const ask = await server.gql(`query($id: ID!) { askImage(imageId: $id, question: "what color is the circle?") { answer } }`, { id: ids[0] });
    expect(ask.errors).toBeUndefined();
    expect(typeof ask.data.askImage.answer).toBe('string');
    const re = await server.gql(`mutation($id: ID!) { recaption(imageId: $id, options: { numBeams: 2, maxLength: 8 }) { caption captionMatch } }`, { id: ids[1] });
    expect(re.errors).toBeUndefined();
  });

  it('EXPECTED FAILURE - the real decoder refuses bad bytes with typed errors', async () => {
    const good = await renderScene('black', [{ shape: 'square', colour: 'yellow', size: 'large', x: 64, y: 64 }]);
    expect(code(await server.gql(INGEST, { b: Buffer.from('not an image at all').toString('base64') }))).toBe('UNSUPPORTED_IMAGE');
    expect(code(await server.gql(INGEST, { b: good.subarray(0, good.length >> 1).toString('base64') }))).toBe('UNSUPPORTED_IMAGE');
    expect(code(await server.gql(INGEST, { b: pixelBombPng().toString('base64') }))).toBe('PAYLOAD_TOO_LARGE');
    expect((await server.gql(`{ images { totalCount } }`)).data.images.totalCount).toBe(3);
  });
});
