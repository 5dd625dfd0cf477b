import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BY_IMAGE, IMAGES, ids, ingest, search, SIMILAR } from '../helpers/gql-ops.js';
import { jpegWithExif, scenePng } from '../helpers/images.js';
import { startTestServer, type DbFlavour, type TestServer } from '../helpers/test-server.js';

const flavours: DbFlavour[] = process.env.BLIP_TEST_PG === 'off' ? ['sqlite'] : ['sqlite', 'postgresql'];

/** Known images, their files and metadata; the cases below name them by key. */
const METADATA = {
  A: { album: 'trip', year: 2021, tags: ['beach', 'sun'], person: { name: 'Ana', age: 30 }, flag: true },
  B: { album: 'trip', year: '2021', tags: ['city'] },
  C: { album: 'home', year: 2019, flag: false, note: null },
  D: undefined,
  E: { album: 'trip', year: 2021.0, person: { name: 'Ana', city: 'Porto' } },
} as const;
type Key = keyof typeof METADATA;

describe.each(flavours)('filters and EXIF (%s)', (db) => {
  let server: TestServer;
  const id: Record<Key, string> = { A: '', B: '', C: '', D: '', E: '' };
  const created: Record<string, string> = {};
  const keyOf = (imageId: string) => (Object.keys(id) as Key[]).find((k) => id[k] === imageId) ?? imageId;
  const listed = async (filter: unknown): Promise<string[]> => {
    const res = await server.gql(IMAGES, { first: 50, filter });
    expect(res.errors, JSON.stringify(filter)).toBeUndefined();
    return ids(res.data.images.edges).map(keyOf).sort();
  };

  beforeAll(async () => {
    server = await startTestServer({ db });
    const red = await scenePng([{ colour: 'red', shape: 'circle' }]);
    const files: Record<Key, Buffer> = {
      A: red,
      B: await jpegWithExif(await scenePng([{ colour: 'red', shape: 'square' }], 'gray'), {
        make: 'Canon',
        model: 'Canon EOS R5',
        dateTimeOriginal: '2021:06:01 12:34:56',
        offsetTimeOriginal: '+02:00',
      }),
      C: await jpegWithExif(await scenePng([{ colour: 'green', shape: 'circle' }], 'gray'), {
        make: 'NIKON CORPORATION',
        model: 'NIKON D750',
        dateTimeOriginal: '2019:12:31 23:00:00',
      }),
      D: await sharp(await scenePng([{ colour: 'yellow', shape: 'square' }], 'black')).webp({ lossless: true }).toBuffer(),
      E: await scenePng([{ colour: 'red', shape: 'circle', size: 'small' }, { colour: 'purple', shape: 'square', size: 'small' }]),
    };
    for (const key of Object.keys(files) as Key[]) {
      const image = await ingest(server, files[key], METADATA[key] ? { metadata: METADATA[key] } : {});
      id[key] = image.id;
      created[key] = image.createdAt;
    }
  }, 60_000);
  afterAll(async () => server?.dispose());

  it('extracts the EXIF capture time and camera at ingest and shows them on Image', async () => {
    const res = await server.gql(`{ images(first: 10) { edges { node { id mimeType takenAt cameraMake cameraModel } } } }`);
    const byKey = Object.fromEntries(res.data.images.edges.map((e: { node: { id: string } }) => [keyOf(e.node.id), e.node]));
    // 12:34:56 at +02:00 is 10:34:56 UTC; without an offset the wall-clock time is read as UTC.
    expect(byKey.B).toMatchObject({ mimeType: 'image/jpeg', takenAt: '2021-06-01T10:34:56.000Z', cameraMake: 'Canon', cameraModel: 'Canon EOS R5' });
    expect(byKey.C).toMatchObject({ takenAt: '2019-12-31T23:00:00.000Z', cameraMake: 'NIKON CORPORATION', cameraModel: 'NIKON D750' });
    expect(byKey.A).toMatchObject({ mimeType: 'image/png', takenAt: null, cameraMake: null, cameraModel: null });
  });

  it.each<[unknown, Key[]]>([
    [{ album: 'trip' }, ['A', 'B', 'E']],
    [{ year: 2021 }, ['A', 'E']],
    [{ year: '2021' }, ['B']],
    [{ album: 'trip', year: 2021 }, ['A', 'E']],
    [{ tags: ['beach'] }, ['A']],
    [{ tags: ['sun', 'beach', 'sun'] }, ['A']],
    [{ tags: ['beach', 'city'] }, []],
    [{ tags: [] }, ['A', 'B']],
    [{ tags: 'beach' }, []],
    [{ person: { name: 'Ana' } }, ['A', 'E']],
    [{ person: { name: 'Ana', city: 'Porto' } }, ['E']],
    [{ person: {} }, ['A', 'E']],
    [{ person: 'Ana' }, []],
    [{ flag: true }, ['A']],
    [{ flag: false }, ['C']],
    [{ note: null }, ['C']],
    [{ missing: null }, []],
    [{}, ['A', 'B', 'C', 'E']],
  ])('metadata %j matches as PostgreSQL @> does: %j', async (metadata, expected) => {
    expect(await listed({ metadata })).toEqual(expected);
  });

  it('created ranges are half-open: after is inclusive, before exclusive', async () => {
    const at = created.C!;
    const older = (Object.keys(created) as Key[]).filter((k) => created[k]! < at);
    const newer = (Object.keys(created) as Key[]).filter((k) => created[k]! >= at);
    expect(await listed({ createdAfter: at })).toEqual(newer.sort());
    expect(await listed({ createdBefore: at })).toEqual(older.sort());
    expect(await listed({ createdAfter: created.A, createdBefore: created.C })).toEqual(older.sort());
  });

  it('taken ranges use the EXIF capture time; images without one never match', async () => {
    expect(await listed({ takenAfter: '2020-01-01T00:00:00Z' })).toEqual(['B']);
    expect(await listed({ takenBefore: '2020-01-01T00:00:00Z' })).toEqual(['C']);
    expect(await listed({ takenAfter: '2021-06-01T10:34:56Z' })).toEqual(['B']);
    expect(await listed({ takenBefore: '2021-06-01T10:34:56Z' })).toEqual(['C']);
    expect(await listed({ takenAfter: '2000-01-01T00:00:00Z', takenBefore: '2030-01-01T00:00:00Z' })).toEqual(['B', 'C']);
  });

  it('mimeTypes keeps the listed types', async () => {
    expect(await listed({ mimeTypes: ['image/jpeg'] })).toEqual(['B', 'C']);
    expect(await listed({ mimeTypes: ['image/png', 'IMAGE/WEBP'] })).toEqual(['A', 'D', 'E']);
    expect(await listed({ mimeTypes: ['image/avif'] })).toEqual([]);
  });

  it('every part of a filter must hold', async () => {
    expect(await listed({ metadata: { album: 'trip' }, mimeTypes: ['image/png'], createdAfter: created.A })).toEqual(['A', 'E']);
    const res = await server.gql(IMAGES, { first: 1, filter: { metadata: { album: 'trip' } } });
    expect(res.data.images).toMatchObject({ totalCount: 3, pageInfo: { hasNextPage: true } });
  });

  it('searchImages ranks only the filtered rows (every mode), and counts them', async () => {
    const filter = { metadata: { album: 'trip' } };
    const semantic = await search(server, { text: 'red', first: 10, filter });
    expect(ids(semantic.edges).map(keyOf).sort()).toEqual(['A', 'B', 'E']);
    expect(semantic).toMatchObject({ totalCount: 3, reachableCount: 3, pageInfo: { hasNextPage: false } });
    expect(keyOf(semantic.edges[2]!.node.id)).toBe('E'); // A and B are all red, E half purple
    const itcOnly = await search(server, { text: 'red', first: 10, rerank: false, filter: { mimeTypes: ['image/jpeg'] } });
    expect(ids(itcOnly.edges).map(keyOf)).toEqual(['B', 'C']);
    const keyword = await search(server, { text: 'red shape', mode: 'KEYWORD', first: 10, filter: { takenAfter: '2020-01-01T00:00:00Z' } });
    expect(ids(keyword.edges).map(keyOf)).toEqual(['B']);
    const hybrid = await search(server, { text: 'red', mode: 'HYBRID', first: 10, filter: { metadata: { person: { name: 'Ana' } } } });
    expect(ids(hybrid.edges).map(keyOf).sort()).toEqual(['A', 'E']);
  });

  it('similarImages and searchByImage take the filter too', async () => {
    const similar = await server.gql(SIMILAR, { id: id.A, first: 10, filter: { metadata: { album: 'trip' } } });
    expect(ids(similar.data.similarImages.edges).map(keyOf).sort()).toEqual(['B', 'E']);
    expect(similar.data.similarImages.totalCount).toBe(2);
    const red = await scenePng([{ colour: 'red', shape: 'circle' }]);
    const byImage = await server.gql(BY_IMAGE, { input: { base64: red.toString('base64') }, first: 10, filter: { mimeTypes: ['image/jpeg'] } });
    expect(ids(byImage.data.searchByImage.edges).map(keyOf)).toEqual(['B', 'C']);
  });

  it('an edit that takes an image out of a filter takes it out of the next search and page', async () => {
    const filter = { metadata: { album: 'trip' } };
    const page1 = await search(server, { text: 'red', first: 1, filter });
    const rest = ids(page1.edges);
    const leaving = (await search(server, { text: 'red', first: 3, filter })).edges[2]!.node.id;
    await server.gql(`mutation($id: ID!) { updateImage(id: $id, input: { metadata: { album: "elsewhere" } }) { id } }`, { id: leaving });
    // The running list keeps its order but no longer shows the image; a new search ranks without it.
    const page2 = await search(server, { text: 'red', first: 5, filter, after: page1.pageInfo.endCursor });
    expect([...rest, ...ids(page2.edges)]).not.toContain(leaving);
    const fresh = await search(server, { text: 'red', first: 5, filter });
    expect(fresh.totalCount).toBe(2);
    expect(ids(fresh.edges)).not.toContain(leaving);
    await server.gql(`mutation($id: ID!, $m: JSON) { updateImage(id: $id, input: { metadata: $m }) { id } }`, { id: leaving, m: METADATA[keyOf(leaving) as Key] });
  });

  it.each<[string, unknown]>([
    ['metadata that is not an object', { metadata: [1, 2] }],
    ['a metadata array of objects', { metadata: { tags: [{ a: 1 }] } }],
    ['a metadata key with a quote', { metadata: { 'a"b': 1 } }],
    ['metadata nested too deep', { metadata: { a: { b: { c: { d: { e: { f: { g: { h: { i: 1 } } } } } } } } } }],
    ['createdAfter not before createdBefore', { createdAfter: '2024-01-02T00:00:00Z', createdBefore: '2024-01-01T00:00:00Z' }],
    ['takenAfter equal to takenBefore', { takenAfter: '2024-01-01T00:00:00Z', takenBefore: '2024-01-01T00:00:00Z' }],
    ['an empty mimeTypes list', { mimeTypes: [] }],
    ['a mime type that is not one', { mimeTypes: ['png'] }],
    ['a date that is not one', { createdAfter: 'yesterday' }],
  ])('BAD CALL - %s is refused with BAD_USER_INPUT', async (_name, filter) => {
    for (const query of [IMAGES, `query($filter: ImageFilter) { searchImages(text: "red", filter: $filter) { totalCount } }`]) {
      const res = await server.gql(query, { first: 5, filter });
      expect(res.errors?.[0]?.extensions?.code, JSON.stringify(filter)).toBe('BAD_USER_INPUT');
    }
  });
});
