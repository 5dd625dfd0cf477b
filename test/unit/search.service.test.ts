import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/domain/errors.js';
import { createLogger } from '../../src/lib/logger.js';
import { ImageIndexService } from '../../src/services/image-index.service.js';
import { ItmStateCache } from '../../src/services/itm-state-cache.js';
import { SearchService, type SearchImagesQuery } from '../../src/services/search.service.js';
import { COLOURS, FakeBlipEngine } from '../helpers/fake-blip-engine.js';
import { InMemoryImageBlobs, InMemoryImageQueries, InMemoryImageRows, memoryIndexStore } from '../helpers/in-memory-stores.js';

// SearchService over in-memory rows, queries, index and files with the colour-seeing fake engine
// (test/helpers/fake-blip-engine.ts): ITC is the cosine of a text's colour words with the stored
// vector, ITM the same cosine with the stored ITM states. Giving an image states that disagree
// with its vector is how these tests tell the two rankings apart.
const NAMES = Object.keys(COLOURS) as Array<keyof typeof COLOURS>;
const DIM = NAMES.length + 2;

/** A unit vector with the given colour weights. */
function colours(weights: Partial<Record<keyof typeof COLOURS, number>>): Float32Array {
  const v = new Float32Array(DIM);
  for (const [name, w] of Object.entries(weights)) v[NAMES.indexOf(name as keyof typeof COLOURS)] = w;
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

/** ITM states as the fake engine makes them: two int8 tokens of the vector, one scale each. */
function states(v: Float32Array) {
  const scale = Math.max(...v.map(Math.abs)) / 127;
  const codes = new Int8Array(2 * DIM);
  v.forEach((x, i) => {
    codes[i] = Math.round(x / scale);
    codes[DIM + i] = Math.round(x / scale);
  });
  return { codes, scales: Float32Array.from([scale, scale]) };
}

async function setup(settings: { defaultCandidates?: number } = {}) {
  const engine = new FakeBlipEngine();
  const rows = new InMemoryImageRows();
  const blobs = new InMemoryImageBlobs();
  const index = new ImageIndexService(rows, memoryIndexStore(DIM), engine.modelId, DIM, { dir: 'index', saveDelayMs: 60_000, compactRatio: 0.2 }, createLogger('silent'));
  await index.open();
  const search = new SearchService(engine, rows, new InMemoryImageQueries(rows), index, new ItmStateCache(engine, blobs, 1 << 20), {
    maxPageSize: 50,
    maxTextChars: 500,
    maxUploadBytes: 1 << 20,
    defaultCandidates: settings.defaultCandidates,
    maxCandidates: 64,
    exactMaxRows: 1000,
  });
  let n = 0;
  /** Stores a READY image with its vector in the index and (unless `itm: null`) its ITM states. */
  async function store(vector: Float32Array, options: { itm?: Float32Array | null; mimeType?: string; caption?: string } = {}) {
    n++;
    const sha = n.toString(16).padStart(64, '0');
    const image = rows.insert(
      { id: `00000000-0000-4000-8000-${n.toString().padStart(12, '0')}`, sha256: sha, mimeType: options.mimeType ?? 'image/png', format: 'png', width: 8, height: 8, byteSize: 100, altText: null, metadata: null, takenAt: null, cameraMake: null, cameraModel: null, ...(options.caption ? { caption: options.caption } : {}) },
      'READY',
      { modelId: engine.modelId, vector },
    );
    index.add(image.label, vector);
    if (options.itm !== null) await blobs.writeItmStates(engine.modelId, sha, states(options.itm ?? vector));
    return image;
  }
  const ids = async (query: Partial<SearchImagesQuery>) => (await search.searchImages({ text: 'red', first: 10, ...query })).items.map((e) => e.node.image.id);
  return { engine, rows, index, search, store, ids };
}

describe('SearchService over in-memory stores', () => {
  it('re-ranks the ITC candidates by ITM, in one engine call for the window', async () => {
    const { engine, store, ids } = await setup();
    // a: nearest to "red" by its vector, but its ITM states see blue; b: the other way round
    const a = await store(colours({ red: 0.9, blue: 0.45 }), { itm: colours({ blue: 1 }) });
    const b = await store(colours({ red: 0.7, green: 0.7 }), { itm: colours({ red: 1 }) });
    expect(await ids({ rerank: false })).toEqual([a.id, b.id]);
    expect(engine.calls.itmScores).toBe(0);

    expect(await ids({})).toEqual([b.id, a.id]);
    expect(engine.calls.itmScores).toBe(1);
  });

  it('reports both scores, and minMatch keeps only probable matches (and needs re-ranking)', async () => {
    const { search, store } = await setup();
    const a = await store(colours({ red: 1 }));
    await store(colours({ blue: 1 }));
    const page = await search.searchImages({ text: 'red', first: 10, minMatch: 0.5 });
    expect(page.items.map((e) => e.node.image.id)).toEqual([a.id]);
    const [hit] = page.items.map((e) => e.node);
    expect(hit!.itmScore).toBeGreaterThan(0.9);
    expect(hit!.itcScore).toBeCloseTo(1, 1);
    await expect(search.searchImages({ text: 'red', first: 10, minMatch: 0.5, rerank: false })).rejects.toBeInstanceOf(InvalidInputError);
  });

  it('pages through one ranked list: cursors continue it without running the models again', async () => {
    const { engine, search, store } = await setup({ defaultCandidates: 8 });
    for (let i = 0; i < 6; i++) await store(colours({ red: 6 - i, blue: i + 1 }));
    const all = await search.searchImages({ text: 'red', first: 6 });
    const calls = { ...engine.calls };
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const page: Awaited<ReturnType<SearchService['searchImages']>> = await search.searchImages({ text: 'red', first: 4, after });
      seen.push(...page.items.map((e) => e.node.image.id));
      if (!page.hasNextPage) break;
      after = page.items.at(-1)!.cursor;
    }
    expect(seen).toEqual(all.items.map((e) => e.node.image.id));
    expect(engine.calls).toEqual(calls);
  });

  it('refuses a cursor of another search', async () => {
    const { search, store } = await setup();
    await store(colours({ red: 1 }));
    await store(colours({ red: 1, blue: 0.2 }));
    const page = await search.searchImages({ text: 'red', first: 1 });
    await expect(search.searchImages({ text: 'blue', first: 1, after: page.items[0]!.cursor })).rejects.toMatchObject({ details: { argument: 'after' } });
  });

  it('drops an image deleted after its list was ranked from the next page, and ranks anew for a first page', async () => {
    const { engine, rows, index, search, store } = await setup();
    const images = [];
    for (let i = 0; i < 4; i++) images.push(await store(colours({ red: 4 - i, blue: i + 1 })));
    const first = await search.searchImages({ text: 'red', first: 2 });
    const order = first.items.map((e) => e.node.image.id);
    expect(order).toEqual([images[0]!.id, images[1]!.id]);
    await rows.delete(images[2]!.label);
    index.remove(images[2]!.label);
    const calls = engine.calls.itmScores;
    const next = await search.searchImages({ text: 'red', first: 2, after: first.items[1]!.cursor });
    expect(next.items.map((e) => e.node.image.id)).toEqual([images[3]!.id]);
    expect(engine.calls.itmScores).toBe(calls);
    expect((await search.searchImages({ text: 'red', first: 10 })).items.map((e) => e.node.image.id)).toEqual([images[0]!.id, images[1]!.id, images[3]!.id]);
    expect(engine.calls.itmScores).toBe(calls + 1);
  });

  it('leaves out a candidate whose ITM states and original are gone instead of failing the search', async () => {
    const { search, store } = await setup();
    const kept = await store(colours({ red: 1, blue: 0.3 }));
    await store(colours({ red: 1 }), { itm: null }); // no states, no original to compute them from
    const page = await search.searchImages({ text: 'red', first: 10 });
    expect(page.items.map((e) => e.node.image.id)).toEqual([kept.id]);
  });

  it('applies the filter to candidates, and KEYWORD search finds every word without ITM', async () => {
    const { engine, store, ids } = await setup();
    const png = await store(colours({ red: 1 }), { caption: 'a red circle' });
    await store(colours({ red: 1, blue: 0.1 }), { mimeType: 'image/jpeg', caption: 'a red square' });
    const square = await store(colours({ blue: 1 }), { caption: 'a small red square' });
    expect(await ids({ filter: { mimeTypes: ['image/png'] } })).toEqual([png.id, square.id]);
    const calls = engine.calls.itmScores;
    expect(await ids({ text: 'red square', mode: 'KEYWORD', filter: { mimeTypes: ['image/png'] } })).toEqual([square.id]);
    expect(engine.calls.itmScores).toBe(calls);
  });

  it('re-reads rows for each page: an image edited out of the filter leaves the list it was ranked in', async () => {
    const { rows, search, store } = await setup();
    const images = [];
    for (let i = 0; i < 3; i++) images.push(await store(colours({ red: 3 - i, blue: i + 1 })));
    for (const image of images) await rows.updateDetails(image.label, { metadata: { album: 'a' } });
    const filter = { metadata: { album: 'a' } };
    const first = await search.searchImages({ text: 'red', first: 1, filter });
    expect(first.items.map((e) => e.node.image.id)).toEqual([images[0]!.id]);
    await rows.updateDetails(images[1]!.label, { metadata: { album: 'b' } });
    const next = await search.searchImages({ text: 'red', first: 2, filter, after: first.items[0]!.cursor });
    expect(next.items.map((e) => e.node.image.id)).toEqual([images[2]!.id]);
  });

  it('finds similar images by the stored vector, the image itself left out', async () => {
    const { search, store } = await setup();
    const query = await store(colours({ green: 1 }));
    const near = await store(colours({ green: 1, red: 0.2 }));
    const far = await store(colours({ red: 1, green: 0.1 }));
    const page = await search.similarImages({ imageId: query.id, first: 10 });
    expect(page.items.map((e) => e.node.image.id)).toEqual([near.id, far.id]);
    expect(page.items.every((e) => e.node.itmScore === null)).toBe(true);
  });
});
