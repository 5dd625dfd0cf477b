import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ids, ingest, search } from '../helpers/gql-ops.js';
import { scenePng } from '../helpers/images.js';
import { startTestServer, type DbFlavour, type TestServer } from '../helpers/test-server.js';

const flavours: DbFlavour[] = process.env.BLIP_TEST_PG === 'off' ? ['sqlite'] : ['sqlite', 'postgresql'];

/**
 * The fake engine captions each scene "a <dominant colour> shape"; the alt texts below carry
 * words no caption has, so keyword results are known exactly.
 */
describe.each(flavours)('keyword and hybrid search (%s)', (db) => {
  let server: TestServer;
  const id: Record<string, string> = {};

  beforeAll(async () => {
    server = await startTestServer({ db });
    const scenes = {
      garden: [await scenePng([{ colour: 'blue', shape: 'square' }], 'gray'), "Grandmother's garden in spring"],
      palace: [await scenePng([{ colour: 'red', shape: 'circle' }]), 'A red circle in the gardens of the palace'],
      party: [await scenePng([{ colour: 'green', shape: 'circle' }], 'black'), 'Birthday party, café terrace'],
      plainRed: [await scenePng([{ colour: 'red', shape: 'square' }], 'black'), undefined],
      plainYellow: [await scenePng([{ colour: 'yellow', shape: 'circle' }], 'gray'), undefined],
    } as const;
    for (const [name, [png, altText]] of Object.entries(scenes)) id[name] = (await ingest(server, png, altText ? { altText } : {})).id;
  }, 60_000);
  afterAll(async () => server?.dispose());

  const names = (edges: Array<{ node: { id: string } }>) => ids(edges).map((i) => Object.keys(id).find((k) => id[k] === i));

  it('KEYWORD finds a word of the alt text, stemmed, ranked by the database, without ITM', async () => {
    const res = await search(server, { text: 'garden', mode: 'KEYWORD', first: 10 });
    expect(names(res.edges).sort()).toEqual(['garden', 'palace']); // "gardens" stems to "garden"
    expect(res).toMatchObject({ totalCount: 2, reachableCount: 2, rankedCount: 2, pageInfo: { hasNextPage: false } });
    for (const e of res.edges) {
      expect(e.itmScore).toBeNull();
      expect(e.score).toBeGreaterThan(0);
      expect(e.itcScore).toBeGreaterThanOrEqual(-1);
    }
  });

  it('KEYWORD needs every word; stop words and case do not matter; captions count too', async () => {
    expect(names((await search(server, { text: 'Gardens PALACE', mode: 'KEYWORD', first: 10 })).edges)).toEqual(['palace']);
    expect(names((await search(server, { text: 'the garden of the', mode: 'KEYWORD', first: 10 })).edges).sort()).toEqual(['garden', 'palace']);
    expect(names((await search(server, { text: 'garden birthday', mode: 'KEYWORD', first: 10 })).edges)).toEqual([]);
    // "a red shape" is the fake caption of the red scenes; "red" is also in the palace's alt text.
    expect(names((await search(server, { text: 'red', mode: 'KEYWORD', first: 10 })).edges).sort()).toEqual(['palace', 'plainRed']);
    expect(names((await search(server, { text: 'birthday-party', mode: 'KEYWORD', first: 10 })).edges)).toEqual(['party']);
  });

  it('KEYWORD finds nothing, plainly, for words no image has or only stop words', async () => {
    for (const text of ['submarine', 'the of and']) {
      const res = await search(server, { text, mode: 'KEYWORD', first: 10 });
      expect(res).toMatchObject({ totalCount: 0, reachableCount: 0, edges: [], pageInfo: { hasNextPage: false } });
    }
  });

  it('KEYWORD with rerank: true re-scores its matches with ITM, and minMatch cuts them', async () => {
    const res = await search(server, { text: 'red garden', mode: 'KEYWORD', rerank: true, first: 10 });
    expect(names(res.edges)).toEqual(['palace']);
    expect(res.edges[0]!.itmScore).toBeGreaterThan(0.5);
    const cut = await search(server, { text: 'garden', mode: 'KEYWORD', rerank: true, minMatch: 0.99, first: 10 });
    expect(cut.edges.every((e) => e.itmScore! >= 0.99)).toBe(true);
  });

  it('HYBRID fuses the keyword and ITC rankings (reciprocal rank fusion)', async () => {
    // "garden" means nothing to the colour model: ITC alone orders at random. Fused with the
    // keyword ranking, the two gardens lead.
    const fused = await search(server, { text: 'garden', mode: 'HYBRID', rerank: false, first: 2 });
    expect(names(fused.edges).sort()).toEqual(['garden', 'palace']);
    expect(fused.edges.every((e) => e.itmScore === null && e.score > 1 / 61)).toBe(true);
    // ...and every image stays reachable by paging.
    expect(await search(server, { text: 'garden', mode: 'HYBRID', rerank: false, first: 10 })).toMatchObject({ totalCount: 5, reachableCount: 5 });
  });

  it('HYBRID re-ranks a window holding the best of both rankings', async () => {
    // Two candidates: the keyword ranking's best ("spring" is only in the garden's alt text) and
    // the ITC ranking's best are both in the window ITM re-ranks, whatever ITC thinks of the garden.
    const itcBest = (await search(server, { text: 'spring', rerank: false, first: 1 })).edges[0]!.node.id;
    const window = await search(server, { text: 'spring', mode: 'HYBRID', candidates: 2, first: 2 });
    expect(ids(window.edges)).toContain(id.garden);
    expect(ids(window.edges)).toContain(itcBest === id.garden ? ids(window.edges).find((i) => i !== id.garden) : itcBest);
    expect(window).toMatchObject({ rankedCount: 2, reachableCount: 5 });
    expect(window.edges.every((e) => e.itmScore !== null)).toBe(true);
  });

  it('HYBRID puts the image that matches both ways first', async () => {
    // "red" ranks the red scenes first by ITC; only the palace also has "red" and "garden" in words.
    const res = await search(server, { text: 'red garden', mode: 'HYBRID', rerank: false, first: 5 });
    expect(names(res.edges)[0]).toBe('palace');
  });

  it('SEMANTIC stays the default and ignores the words', async () => {
    const res = await search(server, { text: 'red', first: 2 });
    expect(names(res.edges).sort()).toEqual(['palace', 'plainRed']);
    expect(res.edges.every((e) => e.itmScore !== null)).toBe(true);
  });

  it('BAD CALL - minMatch with KEYWORD needs rerank: true', async () => {
    const res = await server.gql(`{ searchImages(text: "garden", mode: KEYWORD, minMatch: 0.5) { totalCount } }`);
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const bad = await server.gql(`{ searchImages(text: "garden", mode: FUZZY) { totalCount } }`);
    expect(bad.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
  });
});
