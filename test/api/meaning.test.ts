import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderScene } from '../helpers/scene-svg.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const MODEL_DIR = path.resolve('models/blip-scenes');
const hasModel = fs.existsSync(path.join(MODEL_DIR, 'manifest.json'));

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

describe.skipIf(!hasModel)('meaning: the bundled model over the real API (models/blip-scenes)', () => {
  let server: TestServer;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    const { createBlipEngine } = await import('../../src/ml/create-blip-engine.js');
    server = await startTestServer({ engine: await createBlipEngine({ modelDir: MODEL_DIR }) });
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

  it('"a blue square" ranks a blue-square scene first, and its match probability is high', async () => {
    const edges = await search('a blue square');
    expect([ids.blueSquare, ids.redCircleBlueSquare]).toContain(edges[0]!.node.id);
    expect(edges[0]!.itmScore).toBeGreaterThan(0.5);
  });

  it('minMatch keeps only matching scenes', async () => {
    const res = await server.gql(`{ searchImages(text: "a green triangle", first: 6, minMatch: 0.5) { edges { node { id } } } }`);
    expect(res.data.searchImages.edges.map((e: { node: { id: string } }) => e.node.id)).toEqual([ids.greenTriangle]);
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
    ['greenTriangle', 'is there a blue square?', 'no'],
  ] as const)('askImage(%s, %j) -> %s', async (scene, question, answer) => {
    const res = await server.gql(`query($id: ID!, $q: String!) { askImage(imageId: $id, question: $q) { answer } }`, { id: ids[scene], q: question });
    expect(res.data.askImage.answer).toBe(answer);
  });
});
