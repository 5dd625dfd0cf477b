import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeBlipEngine } from '../helpers/fake-blip-engine.js';
import { scenePng } from '../helpers/images.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

describe('SearchService with a fake engine', () => {
  const engine = new FakeBlipEngine();
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ engine, env: { ITM_BATCH_SIZE: '2', SEARCH_CANDIDATES: '5' } });
    const colours = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'] as const;
    for (const colour of colours) {
      const png = await scenePng([{ colour, shape: 'circle' }]);
      await server.gql(`mutation($b: String!) { ingestImage(input: { base64: $b }) { created } }`, { b: png.toString('base64') });
    }
  });
  afterAll(async () => server?.dispose());

  it('re-ranks all SEARCH_CANDIDATES ITC candidates with ITM in one engine call', async () => {
    const before = engine.calls.itmScores;
    const res = await server.gql(`{ searchImages(text: "yellow", first: 5) { totalCount edges { itcScore itmScore score } } }`);
    expect(res.data.searchImages.totalCount).toBe(5);
    expect(engine.calls.itmScores - before).toBe(1);
    const scores = res.data.searchImages.edges.map((e: { score: number }) => e.score);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
  });

  it('caches the text embedding and the ranked list across pages', async () => {
    const first = await server.gql(`{ searchImages(text: "purple", first: 2) { pageInfo { endCursor } } }`);
    const calls = { ...engine.calls };
    await server.gql(`query($a: String) { searchImages(text: "purple", first: 2, after: $a) { edges { score } } }`, {
      a: first.data.searchImages.pageInfo.endCursor,
    });
    expect(engine.calls.embedText).toBe(calls.embedText);
    expect(engine.calls.itmScores).toBe(calls.itmScores);
  });

  it('a larger candidates value widens the ranked list', async () => {
    const res = await server.gql(`{ searchImages(text: "red", first: 10, candidates: 50) { totalCount } }`);
    expect(res.data.searchImages.totalCount).toBe(6);
  });
});
