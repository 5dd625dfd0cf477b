import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBlip2Engine, type OnnxBlip2Engine } from '../../src/ml/blip2/onnx-blip2-engine.js';
import { scenePng } from '../helpers/images.js';
import { startTestServer, type DbFlavour, type TestServer } from '../helpers/test-server.js';

// A real BLIP-2 folder (tiny, random weights: tools/blip2/tiny.py) loaded beside BLIP, as
// VQA_MODEL_DIR loads one: askImage picks the model, Answer.model says which answered, and
// serviceInfo lists both. Random weights give arbitrary answers, so the expected answer is the one
// the BLIP-2 engine gives for the same image outside the server.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip2-tiny-'));

for (const db of ['sqlite', 'postgresql'] as DbFlavour[]) {
  describe(`askImage with a BLIP-2 model over HTTP (${db})`, () => {
    let server: TestServer;
    let reference: OnnxBlip2Engine;
    let id: string;
    const png = scenePng([{ colour: 'red', shape: 'circle' }]);
    beforeAll(async () => {
      if (!fs.existsSync(path.join(dir, 'manifest.json'))) {
        execFileSync('/usr/bin/python3', ['-m', 'tools.blip2.tiny', '--out', dir], { stdio: 'pipe' });
      }
      reference = await createBlip2Engine({ modelDir: dir, workers: 0 });
      server = await startTestServer({ db, answerers: async () => [await createBlip2Engine({ modelDir: dir, workers: 1 })] });
      const bytes = await png;
      const res = await server.gql(`mutation($input: IngestImageInput!) { ingestImage(input: $input) { image { id } } }`, {
        input: { base64: bytes.toString('base64') },
      });
      id = res.data.ingestImage.image.id;
    }, 300_000);
    afterAll(async () => {
      await server?.dispose();
      await reference?.close();
    });

    it('serviceInfo lists BLIP and BLIP-2 with their families and tasks; BLIP-2 is the default answerer', async () => {
      const res = await server.gql(`{ serviceInfo { models { name modelId family tasks defaultAnswerer } } }`);
      expect(res.data.serviceInfo.models).toEqual([
        { name: 'fake-colour-v1', modelId: 'fake-colour-v1', family: 'blip', tasks: ['retrieval', 'caption', 'vqa'], defaultAnswerer: false },
        { name: 'blip2-tiny', modelId: reference.modelId, family: 'blip2', tasks: ['vqa'], defaultAnswerer: true },
      ]);
    });

    it('answers with BLIP-2 by default, as the engine answers the same image', async () => {
      const expected = await reference.answer(await reference.loadImage(await png), 'what color is the circle?');
      const res = await server.gql(`query($id: ID!) { askImage(imageId: $id, question: "what color is the circle?") { answer model { name family } } }`, { id });
      expect(res.errors).toBeUndefined();
      expect(res.data.askImage).toEqual({ answer: expected, model: { name: 'blip2-tiny', family: 'blip2' } });
    });

    it('answers with BLIP when the question names it, and with BLIP-2 when named by modelId', async () => {
      const blip = await server.gql(`query($id: ID!) { askImage(imageId: $id, question: "what color is the circle?", model: "fake-colour-v1") { answer model { family } } }`, { id });
      expect(blip.data.askImage).toEqual({ answer: 'red', model: { family: 'blip' } });
      const byId = await server.gql(`query($id: ID!, $m: String) { askImage(imageId: $id, question: "what color?", model: $m) { model { name } } }`, { id, m: reference.modelId });
      expect(byId.data.askImage.model.name).toBe('blip2-tiny');
    });

    it('refuses an unknown model, naming the loaded ones', async () => {
      const res = await server.gql(`query($id: ID!) { askImage(imageId: $id, question: "what?", model: "gpt-9") { answer } }`, { id });
      expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(res.errors?.[0]?.message).toContain('fake-colour-v1, blip2-tiny');
    });
  });
}
