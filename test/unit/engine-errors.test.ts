import { describe, expect, it } from 'vitest';
import { InvalidInputError, PayloadTooLargeError, ServiceUnavailableError, UnsupportedImageError } from '../../src/domain/errors.js';
import { EngineClosedError } from '../../src/ml/errors.js';
import type { VisualAnswerer } from '../../src/ml/visual-answerer.js';
import { DomainErrorEngine, domainErrorAnswerer } from '../../src/services/engine-errors.js';
import { RequestScopedEngine, runInRequestScope } from '../../src/services/request-scope.js';
import { FakeBlipEngine } from '../helpers/fake-blip-engine.js';
import { pixelBombPng, scenePng } from '../helpers/images.js';

describe('DomainErrorEngine (built once in src/app.ts)', () => {
  const engine = new DomainErrorEngine(new FakeBlipEngine({ maxImagePixels: 1_000_000 }));

  it('passes results and model facts through', async () => {
    const inner = new FakeBlipEngine();
    const wrapped = new DomainErrorEngine(inner);
    expect([wrapped.modelId, wrapped.embedDim, wrapped.itmStateDims]).toEqual([inner.modelId, inner.embedDim, inner.itmStateDims]);
    const loaded = await wrapped.loadImage(await scenePng([{ colour: 'red', shape: 'circle' }]));
    expect(await wrapped.embedImage(loaded)).toEqual(await inner.embedImage(loaded));
    expect(wrapped.countTokens('a red circle')).toBe(inner.countTokens('a red circle'));
  });

  it('turns src/ml errors into domain errors', async () => {
    await expect(engine.loadImage(Buffer.from('nope'))).rejects.toBeInstanceOf(UnsupportedImageError);
    await expect(engine.loadImage(pixelBombPng(2000, 2000))).rejects.toBeInstanceOf(PayloadTooLargeError);
    const loaded = await engine.loadImage(await scenePng([{ colour: 'red', shape: 'circle' }]));
    await expect(engine.answer(loaded, '  ')).rejects.toBeInstanceOf(InvalidInputError);
  });

  it('outside RequestScopedEngine, a request cancelled while its decode waits is SERVICE_UNAVAILABLE, not a bug', async () => {
    const scoped = new DomainErrorEngine(new RequestScopedEngine(new FakeBlipEngine(), { maxConcurrentDecodes: 1 }));
    const png = await scenePng([{ colour: 'blue', shape: 'square' }]);
    const gone = new AbortController();
    gone.abort();
    await expect(runInRequestScope(gone.signal, () => scoped.loadImage(png))).rejects.toBeInstanceOf(ServiceUnavailableError);
  });

  it('leaves errors it does not know alone (they are masked as INTERNAL_SERVER_ERROR further up)', async () => {
    const bug = new TypeError('a bug');
    const inner = new FakeBlipEngine();
    inner.caption = () => Promise.reject(bug);
    const loaded = await inner.loadImage(await scenePng([{ colour: 'green', shape: 'circle' }]));
    await expect(new DomainErrorEngine(inner).caption(loaded)).rejects.toBe(bug);
  });

  it('translates answerers (BLIP-2 folders) the same way', async () => {
    const closed: VisualAnswerer = {
      name: 'blip2',
      modelId: 'blip2@x',
      family: 'blip2',
      tasks: ['vqa'],
      loadImage: () => Promise.reject(new EngineClosedError()),
      answer: (_image, _question, options) => Promise.resolve(options?.signal?.aborted ? 'asked by a request that left' : 'yes'),
      close: async () => {},
    };
    const answerer = domainErrorAnswerer(closed);
    await expect(answerer.loadImage(new Uint8Array(1))).rejects.toBeInstanceOf(ServiceUnavailableError);
    const image = { info: { format: 'png', mimeType: 'image/png', width: 1, height: 1, hasAlpha: false }, pixels: new Float32Array(1) };
    expect(await answerer.answer(image, 'q')).toBe('yes');
    // The request's signal (src/services/request-scope.ts requestScopedAnswerer) still reaches the model.
    expect(await answerer.answer(image, 'q', { signal: AbortSignal.abort() })).toBe('asked by a request that left');
  });
});
