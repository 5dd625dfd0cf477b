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
    const res = await server.gql(`{ searchImages(text: "yellow", first: 5) { totalCount rankedCount reachableCount edges { itcScore itmScore score } } }`);
    // The first window: SEARCH_CANDIDATES (5) candidates; the sixth image is not ranked yet.
    expect(res.data.searchImages).toMatchObject({ totalCount: 6, rankedCount: 5, reachableCount: 6 });
    expect(engine.calls.itmScores - before).toBe(1);
    const scores = res.data.searchImages.edges.map((e: { score: number }) => e.score);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
  });

  it('ranks the next window of candidates when the pages reach the end of the first', async () => {
    const q = `query($a: String) { searchImages(text: "orange", first: 5, after: $a) {
      totalCount rankedCount edges { itmScore node { id } } pageInfo { hasNextPage endCursor } } }`;
    const page1 = (await server.gql(q)).data.searchImages;
    expect(page1).toMatchObject({ rankedCount: 5, pageInfo: { hasNextPage: true } });
    const before = engine.calls.itmScores;
    const page2 = (await server.gql(q, { a: page1.pageInfo.endCursor })).data.searchImages;
    expect(engine.calls.itmScores - before).toBe(1); // the one image left, re-ranked too
    expect(page2).toMatchObject({ totalCount: 6, rankedCount: 6, pageInfo: { hasNextPage: false } });
    expect(page2.edges).toHaveLength(1);
    expect(page2.edges[0].itmScore).not.toBeNull();
    const ids = [...page1.edges, ...page2.edges].map((e: { node: { id: string } }) => e.node.id);
    expect(new Set(ids).size).toBe(6);
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

  it('a larger candidates value ranks more in the first window', async () => {
    const res = await server.gql(`{ searchImages(text: "red", first: 2, candidates: 50) { totalCount rankedCount pageInfo { hasNextPage } } }`);
    expect(res.data.searchImages).toMatchObject({ totalCount: 6, rankedCount: 6, pageInfo: { hasNextPage: true } });
  });
});
