import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { COLOURS } from '../helpers/fake-blip-engine.js';
import { allPages, IMAGES, ids, ingest, search, SIMILAR, type SearchResult } from '../helpers/gql-ops.js';
import { scenePng } from '../helpers/images.js';
import { startTestServer, type DbFlavour, type TestServer } from '../helpers/test-server.js';

const flavours: DbFlavour[] = process.env.BLIP_TEST_PG === 'off' ? ['sqlite'] : ['sqlite', 'postgresql'];
const COLOUR_LIST = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'] as const satisfies ReadonlyArray<keyof typeof COLOURS>;

/** Distinct scenes: colour x shape x background x size. */
function scene(i: number): Promise<Buffer> {
  const colour = COLOUR_LIST[i % 6]!;
  const shape = Math.floor(i / 6) % 2 === 0 ? 'circle' : 'square';
  const background = (['white', 'gray', 'black'] as const)[Math.floor(i / 12) % 3]!;
  return scenePng([{ colour, shape, size: Math.floor(i / 36) % 2 === 0 ? undefined : 'small' }], background);
}

interface ImagesPage {
  totalCount: number;
  edges: Array<{ cursor: string; node: { id: string; createdAt: string } }>;
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; endCursor: string | null };
}

describe.each(flavours)('paging that holds (%s)', (db) => {
  let server: TestServer;
  let next = 0;
  const add = async () => (await ingest(server, await scene(next++))).id;
  const remove = async (id: string) => expect((await server.admin(`mutation($id: ID!) { deleteImage(id: $id) { deleted } }`, { id })).data.deleteImage.deleted).toBe(true);
  const images = async (variables: Record<string, unknown>): Promise<ImagesPage> => {
    const res = await server.gql(IMAGES, variables);
    expect(res.errors).toBeUndefined();
    return res.data.images;
  };

  beforeAll(async () => {
    // Four candidates per ITM window, so that lists must grow to reach every image.
    server = await startTestServer({ db, env: { SEARCH_CANDIDATES: '4', MAX_SEARCH_CANDIDATES: '8' } });
    for (let i = 0; i < 12; i++) await add();
  }, 60_000);
  afterAll(async () => server?.dispose());

  it('images: keyset pages never repeat or skip an image while others are added and deleted', async () => {
    const before = ids((await images({ first: 100 })).edges);
    const deletedUnseen: string[] = [];
    const added: string[] = [];
    const seenSoFar = new Set<string>();
    const pages = await allPages(
      async (after) => {
        const page = await images({ first: 3, after });
        ids(page.edges).forEach((id) => seenSoFar.add(id));
        return page;
      },
      async (i) => {
        const unseen = before.filter((id) => !seenSoFar.has(id) && !deletedUnseen.includes(id));
        // An insert racing the next page, a delete ahead of the cursor and (once) one behind it.
        const victim = unseen[unseen.length - 1];
        await Promise.all([add().then((id) => added.push(id)), victim ? remove(victim).then(() => deletedUnseen.push(victim)) : undefined]);
        if (i === 0) await remove(before[0]!);
      },
    );
    const seen = ids(pages.flatMap((p) => p.edges));
    expect(new Set(seen).size).toBe(seen.length); // no repeats
    const expected = before.filter((id) => !deletedUnseen.includes(id));
    expect(seen).toEqual(expected); // no gaps, same order
    expect(seen.some((id) => added.includes(id))).toBe(false); // newer than the cursor
    const times = pages.flatMap((p) => p.edges.map((e) => Date.parse(e.node.createdAt)));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    expect(pages[0]!.pageInfo.hasPreviousPage).toBe(false);
    expect(pages[1]!.pageInfo.hasPreviousPage).toBe(true);
  });

  it('images: after an upload, page 2 does not repeat the last image of page 1', async () => {
    const page1 = await images({ first: 4 });
    await add();
    const page2 = await images({ first: 4, after: page1.pageInfo.endCursor });
    expect(ids(page2.edges).filter((id) => ids(page1.edges).includes(id))).toEqual([]);
    const all = ids((await images({ first: 100 })).edges);
    expect(ids(page2.edges)).toEqual(all.slice(all.indexOf(ids(page1.edges)[3]!) + 1, all.indexOf(ids(page1.edges)[3]!) + 5));
  });

  it('similarImages counts every other image and pages to the end', async () => {
    const all = await images({ first: 100 });
    const n = all.totalCount;
    const self = all.edges[0]!.node.id;
    const pages = await allPages(async (after) => (await server.gql(SIMILAR, { id: self, first: n - 4, after })).data.similarImages as SearchResult);
    expect(pages).toHaveLength(2);
    expect(pages[0]).toMatchObject({ totalCount: n - 1, reachableCount: n - 1, pageInfo: { hasNextPage: true } });
    expect(pages[1]!.edges).toHaveLength(3);
    const seen = ids(pages.flatMap((p) => p.edges));
    expect(new Set(seen)).toEqual(new Set(ids(all.edges).filter((id) => id !== self)));
    expect(seen).toHaveLength(n - 1);
    const scores = pages.flatMap((p) => p.edges.map((e) => e.itcScore));
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
  });

  it('search pages past `candidates`: every image once, a window of 4 re-ranked at a time', async () => {
    const n = (await images({ first: 1 })).totalCount;
    const pages = await allPages((after) => search(server, { text: 'red', first: 3, after }));
    const seen = ids(pages.flatMap((p) => p.edges));
    expect(seen).toHaveLength(n);
    expect(new Set(seen).size).toBe(n);
    expect(pages.every((p) => p.totalCount === n && p.reachableCount === n)).toBe(true);
    expect(pages.map((p) => p.rankedCount)).toEqual(pages.map((_, i) => Math.min(n, Math.ceil((3 * (i + 1)) / 4) * 4)));
    expect(pages.flatMap((p) => p.edges).every((e) => e.itmScore !== null)).toBe(true);
    // Each window is in score order; the first holds the best ITC candidates, re-ranked.
    const scores = pages.flatMap((p) => p.edges.map((e) => e.score));
    expect(scores.slice(0, 4)).toEqual([...scores.slice(0, 4)].sort((a, b) => b - a));
  });

  it('with minMatch, search ends plainly: no more pages once every image was ranked', async () => {
    const n = (await images({ first: 1 })).totalCount;
    const pages = await allPages((after) => search(server, { text: 'green', first: 2, minMatch: 0.9, after }));
    const last = pages[pages.length - 1]!;
    expect(last).toMatchObject({ rankedCount: n, reachableCount: n, pageInfo: { hasNextPage: false } });
    const hits = pages.flatMap((p) => p.edges);
    expect(hits.length).toBe(last.totalCount);
    expect(hits.every((e) => e.itmScore! >= 0.9)).toBe(true);
    expect(hits.length).toBeGreaterThan(0);
    expect(hits.length).toBeLessThan(n);
  });

  it('search pages are a snapshot: an image added between pages neither shifts nor repeats them', async () => {
    const page1 = await search(server, { text: 'blue', first: 4 });
    const added = await add();
    const rest = await allPages((after) => search(server, { text: 'blue', first: 4, after: after ?? page1.pageInfo.endCursor }));
    const seen = [...ids(page1.edges), ...ids(rest.flatMap((p) => p.edges))];
    expect(new Set(seen).size).toBe(seen.length);
    // A new search sees the new image.
    const fresh = await allPages((after) => search(server, { text: 'blue', first: 50, after }));
    expect(ids(fresh.flatMap((p) => p.edges))).toContain(added);
  });

  it('node(id) resolves an image (Relay object identification)', async () => {
    const id = (await images({ first: 1 })).edges[0]!.node.id;
    const res = await server.gql(`query($id: ID!) { node(id: $id) { __typename id ... on Image { caption mimeType } } }`, { id });
    expect(res.data.node).toMatchObject({ __typename: 'Image', id, mimeType: 'image/png' });
    const missing = await server.gql(`{ node(id: "00000000-0000-4000-8000-000000000000") { id } }`);
    expect(missing.errors).toBeUndefined();
    expect(missing.data.node).toBeNull();
  });

  it('BAD CALL - node with a malformed id', async () => {
    const res = await server.gql(`{ node(id: "42") { id } }`);
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('BAD CALL - a cursor of one search given to another', async () => {
    const page = await search(server, { text: 'red', first: 2 });
    const res = await server.gql(`query($a: String) { searchImages(text: "green", first: 2, after: $a) { totalCount } }`, { a: page.pageInfo.endCursor });
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(res.errors?.[0]?.message).toMatch(/another search/);
  });

  it.each([
    ['images', `query($a: String) { images(first: 2, after: $a) { totalCount } }`],
    ['searchImages', `query($a: String) { searchImages(text: "red", first: 2, after: $a) { totalCount } }`],
  ])('BAD CALL - %s with malformed or tampered cursors', async (_name, query) => {
    const good = (await images({ first: 1 })).pageInfo.endCursor!;
    const tampered = Buffer.from(Buffer.from(good, 'base64url').toString().replace('k:', 'k:x'), 'utf8').toString('base64url');
    for (const after of ['nope', 'bzo1', tampered, good.slice(0, -2)]) {
      const res = await server.gql(query, { a: after });
      expect(res.errors?.[0]?.extensions?.code, after).toBe('BAD_USER_INPUT');
    }
  });
});

describe('a search cursor outlives its server (sqlite)', () => {
  it('after a restart the next page is ranked again and resumes after the cursor image', async () => {
    let server = await startTestServer({ env: { SEARCH_CANDIDATES: '3' } });
    try {
      for (let i = 0; i < 8; i++) await ingest(server, await scene(i));
      const before = await allPages((after) => search(server, { text: 'purple', first: 3, after }));
      expect(before.length).toBeGreaterThanOrEqual(3);
      await server.stop();
      server = await startTestServer({ reuse: { dataDir: server.dataDir, env: server.env } });
      const page2 = await search(server, { text: 'purple', first: 3, after: before[0]!.pageInfo.endCursor });
      expect(ids(page2.edges)).toEqual(ids(before[1]!.edges));
      const page3 = await search(server, { text: 'purple', first: 3, after: page2.pageInfo.endCursor });
      expect(ids(page3.edges)).toEqual(ids(before[2]!.edges));
    } finally {
      await server.dispose();
    }
  });
});
