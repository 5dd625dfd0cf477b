import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { meetsEvalTargets } from '../helpers/model-quality.js';
import { renderScene } from '../helpers/scene-svg.js';
import type { BlipEngine } from '../../src/ml/blip-engine.js';
import { startTestServer, type DbFlavour, type TestServer } from '../helpers/test-server.js';

const MODEL_DIR = path.resolve(process.env.MEANING_MODEL_DIR ?? 'models/blip-scenes');
const hasModel = fs.existsSync(path.join(MODEL_DIR, 'manifest.json'));
/** Exact rankings and every answer form need a model that meets its targets (EVAL.md); see model-quality.ts. */
const strict = hasModel && meetsEvalTargets(MODEL_DIR);

const SCENES = {
  redCircle: () => renderScene('white', [{ shape: 'circle', colour: 'red', size: 'large', x: 64, y: 64 }]),
  redCircleBlueSquare: () =>
    renderScene('gray', [
      { shape: 'circle', colour: 'red', size: 'small', x: 30, y: 60 },
      { shape: 'square', colour: 'blue', size: 'small', x: 96, y: 70 },
    ]),
  blueSquare: () => renderScene('black', [{ shape: 'square', colour: 'blue', size: 'large', x: 64, y: 64 }]),
  greenTriangle: () => renderScene('white', [{ shape: 'triangle', colour: 'green', size: 'large', x: 64, y: 68 }]),
  yellowStarPurpleCircle: () =>
    renderScene('black', [
      { shape: 'star', colour: 'yellow', size: 'small', x: 30, y: 40 },
      { shape: 'circle', colour: 'purple', size: 'small', x: 96, y: 90 },
    ]),
  orangeCircle: () => renderScene('gray', [{ shape: 'circle', colour: 'orange', size: 'large', x: 64, y: 64 }]),
};

const flavours: DbFlavour[] = process.env.BLIP_TEST_PG === 'off' ? ['sqlite'] : ['sqlite', 'postgresql'];

/** One engine for both databases: a server's stop() closes its engine, so hand each a view that does not. */
let shared: Promise<BlipEngine> | undefined;
function sharedEngine(): Promise<BlipEngine> {
  shared ??= import('../../src/ml/create-blip-engine.js').then(({ createBlipEngine }) => createBlipEngine({ modelDir: MODEL_DIR }));
  return shared.then((engine) => ({
    get modelId() { return engine.modelId; },
    get embedDim() { return engine.embedDim; },
    get itmStateDims() { return engine.itmStateDims; },
    get defaultSearchCandidates() { return engine.defaultSearchCandidates; },
    loadImage: (b) => engine.loadImage(b),
    embedImage: (i, o) => engine.embedImage(i, o),
    embedText: (t) => engine.embedText(t),
    itmScores: (t, s) => engine.itmScores(t, s),
    caption: (i, o) => engine.caption(i, o),
    answer: (i, q) => engine.answer(i, q),
    countTokens: (t) => engine.countTokens(t),
    close: async () => undefined,
  }));
}

afterAll(async () => {
  await (await shared)?.close();
});

describe.skipIf(!hasModel).each(flavours)('meaning: the bundled model over the real API (%s)', (db) => {
  let server: TestServer;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    server = await startTestServer({ db, engine: await sharedEngine() });
    for (const [name, render] of Object.entries(SCENES)) {
      const res = await server.gql(`mutation($b: String!) { ingestImage(input: { base64: $b }) { image { id caption } } }`, {
        b: (await render()).toString('base64'),
      });
      expect(res.errors).toBeUndefined();
      ids[name] = res.data.ingestImage.image.id;
    }
  }, 180_000);
  afterAll(async () => server?.dispose());

  const search = async (text: string, rerank = true) =>
    (await server.gql(`query($t: String!, $r: Boolean) { searchImages(text: $t, first: 6, rerank: $r) { edges { score itmScore node { id } } } }`, { t: text, r: rerank }))
      .data.searchImages.edges as Array<{ score: number; itmScore: number | null; node: { id: string } }>;

  it('"red circle" returns the red-circle scenes first', async () => {
    const top = (await search('red circle')).slice(0, 2).map((e) => e.node.id);
    expect(new Set(top)).toEqual(new Set([ids.redCircle, ids.redCircleBlueSquare]));
  });

  it.runIf(strict)('"a blue square" ranks a blue-square scene first, and its match probability is high', async () => {
    const edges = await search('a blue square');
    expect([ids.blueSquare, ids.redCircleBlueSquare]).toContain(edges[0]!.node.id);
    expect(edges[0]!.itmScore).toBeGreaterThan(0.5);
  });

  it.runIf(strict)('minMatch keeps only matching scenes', async () => {
    const res = await server.gql(`{ searchImages(text: "a green triangle", first: 6, minMatch: 0.5) { edges { node { id } } } }`);
    expect(res.data.searchImages.edges.map((e: { node: { id: string } }) => e.node.id)).toEqual([ids.greenTriangle]);
  });

  it.runIf(strict)('askImage(greenTriangle, "is there a blue square?") -> no', async () => {
    const res = await server.gql(`query($id: ID!) { askImage(imageId: $id, question: "is there a blue square?") { answer } }`, { id: ids.greenTriangle });
    expect(res.data.askImage.answer).toBe('no');
  });

  it('KEYWORD finds scenes by the words of their captions; HYBRID agrees with them', async () => {
    const keyword = await server.gql(`{ searchImages(text: "triangle", mode: KEYWORD, first: 6) { edges { node { id caption } } } }`);
    const found = keyword.data.searchImages.edges.map((e: { node: { id: string } }) => e.node.id);
    expect(found).toContain(ids.greenTriangle);
    for (const e of keyword.data.searchImages.edges) expect(e.node.caption).toMatch(/triangle/);
    const hybrid = await server.gql(`{ searchImages(text: "green triangle", mode: HYBRID, first: 1) { edges { node { id } } } }`);
    expect(hybrid.data.searchImages.edges[0].node.id).toBe(ids.greenTriangle);
  });

  it('searchByImage finds the stored scene first from a re-encoded near-duplicate', async () => {
    const sharp = (await import('sharp')).default;
    const nearDuplicate = await sharp(await SCENES.blueSquare()).resize(112, 112).jpeg({ quality: 75 }).toBuffer();
    const res = await server.gql(`query($b: String!) { searchByImage(input: { base64: $b }, first: 3) { edges { itcScore node { id } } } }`, {
      b: nearDuplicate.toString('base64'),
    });
    expect(res.errors).toBeUndefined();
    expect(res.data.searchByImage.edges[0].node.id).toBe(ids.blueSquare);
  });

  it.runIf(strict)('updateImage scores a new alt text with ITM: a wrong one stays out of the description', async () => {
    const wrong = await server.gql(`mutation($id: ID!) { updateImage(id: $id, input: { altText: "a purple star on a white background" }) { altTextMatch description caption } }`, {
      id: ids.orangeCircle,
    });
    expect(wrong.data.updateImage.altTextMatch).toBeLessThan(0.5);
    expect(wrong.data.updateImage.description).toBe(wrong.data.updateImage.caption);
    const right = await server.gql(`mutation($id: ID!) { updateImage(id: $id, input: { altText: "an orange circle on a gray background" }) { altTextMatch } }`, {
      id: ids.orangeCircle,
    });
    expect(right.data.updateImage.altTextMatch).toBeGreaterThan(0.5);
  });

  it('captions name the objects', async () => {
    const res = await server.gql(`query($id: ID!) { image(id: $id) { caption } }`, { id: ids.orangeCircle });
    expect(res.data.image.caption).toMatch(/orange circle/);
    expect(res.data.image.caption).toMatch(/gray background/);
  });

  it.each([
    ['redCircle', 'what color is the circle?', 'red'],
    ['orangeCircle', 'what color is the circle?', 'orange'],
    ['blueSquare', 'what color is the background?', 'black'],
    ['redCircleBlueSquare', 'how many shapes are there?', '2'],
  ] as const)('askImage(%s, %j) -> %s', async (scene, question, answer) => {
    const res = await server.gql(`query($id: ID!, $q: String!) { askImage(imageId: $id, question: $q) { answer } }`, { id: ids[scene], q: question });
    expect(res.data.askImage.answer).toBe(answer);
  });
});
