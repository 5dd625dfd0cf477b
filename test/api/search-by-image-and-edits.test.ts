import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeBlipEngine } from '../helpers/fake-blip-engine.js';
import { allPages, BY_IMAGE, IMAGE_FIELDS, ids, ingest, search, type SearchResult } from '../helpers/gql-ops.js';
import { scenePng } from '../helpers/images.js';
import { startTestServer, type DbFlavour, type TestServer } from '../helpers/test-server.js';

const flavours: DbFlavour[] = process.env.BLIP_TEST_PG === 'off' ? ['sqlite'] : ['sqlite', 'postgresql'];

function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => path.join(d.parentPath, d.name));
}

describe.each(flavours)('search by image and edits (%s)', (db) => {
  let server: TestServer;
  const id: Record<string, string> = {};
  let redPng: Buffer;

  beforeAll(async () => {
    server = await startTestServer({ db });
    redPng = await scenePng([{ colour: 'red', shape: 'circle' }]);
    const scenes: Record<string, Buffer> = {
      red: redPng,
      blue: await scenePng([{ colour: 'blue', shape: 'square' }], 'black'),
      green: await scenePng([{ colour: 'green', shape: 'circle' }], 'gray'),
      redBlue: await scenePng([{ colour: 'red', shape: 'circle', size: 'small' }, { colour: 'blue', shape: 'square', size: 'small' }]),
      orange: await scenePng([{ colour: 'orange', shape: 'square' }]),
    };
    for (const [name, png] of Object.entries(scenes)) id[name] = (await ingest(server, png)).id;
  }, 60_000);
  afterAll(async () => server?.dispose());

  const byImage = async (input: Record<string, unknown>, extra: Record<string, unknown> = {}) => server.gql(BY_IMAGE, { input, first: 10, ...extra });

  it('searchByImage finds the stored image first from a near-duplicate, and stores nothing', async () => {
    // Another size, another format, lossy: the same picture to a person.
    const nearDuplicate = await sharp(redPng).resize(100, 100).jpeg({ quality: 70 }).toBuffer();
    const filesBefore = filesUnder(server.dataDir).filter((f) => !f.includes(`${path.sep}index${path.sep}`));
    const countBefore = (await server.gql(`{ images(first: 1) { totalCount } }`)).data.images.totalCount;
    const priorities = (server.engine as FakeBlipEngine).embedPriorities.length;

    const res = await byImage({ base64: `data:image/jpeg;base64,${nearDuplicate.toString('base64')}` });
    expect(res.errors).toBeUndefined();
    const result: SearchResult = res.data.searchByImage;
    expect(result.edges[0]!.node.id).toBe(id.red);
    expect(result.edges[0]!.itcScore).toBeGreaterThan(0.99);
    expect(result.edges[0]!.itmScore).toBeNull();
    expect(result).toMatchObject({ totalCount: 5, reachableCount: 5, pageInfo: { hasNextPage: false } });

    // Embedded at interactive priority (ahead of ingest work), and not kept anywhere.
    expect((server.engine as FakeBlipEngine).embedPriorities.slice(priorities)).toEqual(['interactive']);
    expect((await server.gql(`{ images(first: 1) { totalCount } }`)).data.images.totalCount).toBe(countBefore);
    expect(filesUnder(server.dataDir).filter((f) => !f.includes(`${path.sep}index${path.sep}`))).toEqual(filesBefore);
  });

  it('searchByImage takes a multipart upload (with the CSRF preflight header) and pages with it', async () => {
    const upload = (after: string | null, headers: Record<string, string>) => {
      const form = new FormData();
      form.append('operations', JSON.stringify({ query: BY_IMAGE, variables: { input: { file: null }, first: 2, after } }));
      form.append('map', JSON.stringify({ 0: ['variables.input.file'] }));
      form.append('0', new Blob([new Uint8Array(redPng)], { type: 'image/png' }), 'query.png');
      return fetch(`${server.url}/graphql`, { method: 'POST', body: form, headers });
    };
    const pages = await allPages(async (after) => {
      const res = await upload(after, { 'Apollo-Require-Preflight': 'true' });
      const body = (await res.json()) as { data: { searchByImage: SearchResult } };
      return body.data.searchByImage;
    });
    const seen = ids(pages.flatMap((p) => p.edges));
    expect(seen[0]).toBe(id.red);
    expect(new Set(seen).size).toBe(5);
    expect(pages).toHaveLength(3);
    const refused = await upload(null, {});
    expect(refused.status).toBe(400); // Apollo's CSRF prevention
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['no byte source', {}, 'BAD_USER_INPUT'],
    ['empty base64', { base64: '' }, 'BAD_USER_INPUT'],
    ['base64 that is not', { base64: '!!!not base64!!!' }, 'BAD_USER_INPUT'],
    ['bytes that are not an image', { base64: Buffer.from('just some notes').toString('base64') }, 'UNSUPPORTED_IMAGE'],
  ])('BAD CALL - searchByImage with %s', async (_name, input, code) => {
    const res = await byImage(input);
    expect(res.errors?.[0]?.extensions?.code).toBe(code);
  });

  it('updateImage: a new alt text is scored against the image and can become the description', async () => {
    const before = (await server.gql(`query($id: ID!) { image(id: $id) { ${IMAGE_FIELDS} } }`, { id: id.redBlue })).data.image;
    expect(before).toMatchObject({ altText: null, altTextMatch: null, description: before.caption });
    // The caption names one colour of two; this alt text names both, so ITM rates it higher.
    const res = await server.gql(`mutation($id: ID!) { updateImage(id: $id, input: { altText: "red and blue shapes" }) { ${IMAGE_FIELDS} } }`, { id: id.redBlue });
    expect(res.errors).toBeUndefined();
    const after = res.data.updateImage;
    expect(after.altText).toBe('red and blue shapes');
    expect(after.altTextMatch).toBeGreaterThan(after.captionMatch);
    expect(after.description).toBe('red and blue shapes');
    expect(after.caption).toBe(before.caption);
    // A poor alt text is kept but not shown (CapFilt).
    const poor = (await server.gql(`mutation($id: ID!) { updateImage(id: $id, input: { altText: "a green banana" }) { altText altTextMatch description caption } }`, { id: id.redBlue })).data.updateImage;
    expect(poor.altTextMatch).toBeLessThan(0.5);
    expect(poor.description).toBe(poor.caption);
    // null removes it.
    const cleared = (await server.gql(`mutation($id: ID!) { updateImage(id: $id, input: { altText: null }) { altText altTextMatch description caption } }`, { id: id.redBlue })).data.updateImage;
    expect(cleared).toMatchObject({ altText: null, altTextMatch: null, description: cleared.caption });
  });

  it('updateImage: keyword search and metadata filters see an edit at once; absent fields stay', async () => {
    expect(ids((await search(server, { text: 'lighthouse', mode: 'KEYWORD', first: 5 })).edges)).toEqual([]);
    await server.gql(`mutation($id: ID!) { updateImage(id: $id, input: { altText: "an orange lighthouse", metadata: { place: "coast" } }) { id } }`, { id: id.orange });
    expect(ids((await search(server, { text: 'lighthouse', mode: 'KEYWORD', first: 5 })).edges)).toEqual([id.orange]);
    const filtered = await server.gql(`{ images(first: 5, filter: { metadata: { place: "coast" } }) { edges { node { id } } } }`);
    expect(ids(filtered.data.images.edges)).toEqual([id.orange]);
    // Metadata only: the alt text stays; then null clears the metadata.
    const meta = (await server.gql(`mutation($id: ID!) { updateImage(id: $id, input: { metadata: { place: "harbour", n: 2 } }) { altText metadata } }`, { id: id.orange })).data.updateImage;
    expect(meta).toEqual({ altText: 'an orange lighthouse', metadata: { place: 'harbour', n: 2 } });
    const none = (await server.gql(`mutation($id: ID!) { updateImage(id: $id, input: { metadata: null }) { altText metadata } }`, { id: id.orange })).data.updateImage;
    expect(none).toEqual({ altText: 'an orange lighthouse', metadata: null });
  });

  it.each<[string, string, Record<string, unknown>, string]>([
    ['an empty input', 'blue', {}, 'BAD_USER_INPUT'],
    ['an alt text over MAX_TEXT_CHARS', 'blue', { altText: 'x'.repeat(501) }, 'BAD_USER_INPUT'],
    ['metadata that is not an object', 'blue', { metadata: [1] }, 'BAD_USER_INPUT'],
    ['metadata over 16 KB', 'blue', { metadata: { big: 'x'.repeat(17_000) } }, 'BAD_USER_INPUT'],
    ['an unknown image', 'unknown', { altText: 'a' }, 'NOT_FOUND'],
  ])('BAD CALL - updateImage with %s changes nothing', async (_name, target, input, code) => {
    const imageId = target === 'unknown' ? '00000000-0000-4000-8000-000000000000' : id[target]!;
    const query = `query($id: ID!) { image(id: $id) { altText altTextMatch metadata description } }`;
    const before = target === 'unknown' ? null : (await server.gql(query, { id: imageId })).data.image;
    const res = await server.gql(`mutation($id: ID!, $input: UpdateImageInput!) { updateImage(id: $id, input: $input) { id } }`, { id: imageId, input });
    expect(res.errors?.[0]?.extensions?.code).toBe(code);
    if (before) expect((await server.gql(query, { id: imageId })).data.image).toEqual(before);
  });

  it('serviceInfo tells a client the limits and the accepted types', async () => {
    const res = await server.gql(`{ serviceInfo { maxTextChars maxUploadBytes maxImagePixels maxPageSize defaultCandidates maxCandidates acceptedMimeTypes } }`);
    expect(res.data.serviceInfo).toEqual({
      maxTextChars: 500,
      maxUploadBytes: 20 * 1024 * 1024,
      maxImagePixels: 25_000_000,
      maxPageSize: 100,
      defaultCandidates: 128,
      maxCandidates: 500,
      acceptedMimeTypes: ['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/tiff', 'image/avif', 'image/heif'],
    });
  });
});

describe('PUBLIC_URL', () => {
  it('makes url and thumbnailUrl absolute, and the bytes are there', async () => {
    const server = await startTestServer({ env: { PUBLIC_URL: 'https://photos.example.com/blip/' } });
    try {
      const image = await ingest(server, await scenePng([{ colour: 'green', shape: 'square' }]));
      expect(image.url).toBe(`https://photos.example.com/blip/images/${image.id}`);
      expect(image.thumbnailUrl).toBe(`https://photos.example.com/blip/images/${image.id}/thumbnail`);
      const local = image.url.replace('https://photos.example.com/blip', server.url);
      expect((await fetch(local)).status).toBe(200);
    } finally {
      await server.dispose();
    }
  });
});
