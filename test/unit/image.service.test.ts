import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { InvalidInputError, NotFoundError } from '../../src/domain/errors.js';
import { createLogger } from '../../src/lib/logger.js';
import type { CaptionOptions, LoadedImage } from '../../src/ml/blip-engine.js';
import { ImageIndexService } from '../../src/services/image-index.service.js';
import { ImageService } from '../../src/services/image.service.js';
import { ItmStateCache } from '../../src/services/itm-state-cache.js';
import { COLOURS, FakeBlipEngine } from '../helpers/fake-blip-engine.js';
import { scenePng } from '../helpers/images.js';
import { InMemoryImageBlobs, InMemoryImageQueries, InMemoryImageRows, memoryIndexStore } from '../helpers/in-memory-stores.js';

// ImageService over in-memory rows, queries, index and files with the colour-seeing fake engine
// (test/helpers/fake-blip-engine.ts), stored as IngestService would store them.
const DIM = Object.keys(COLOURS).length + 2;

/** The fake engine with a hook that runs while a caption is being computed. */
class HookedEngine extends FakeBlipEngine {
  duringCaption: (() => Promise<void>) | undefined;
  override async caption(image: LoadedImage, options?: CaptionOptions): Promise<string> {
    await this.duringCaption?.();
    return super.caption(image, options);
  }
}

async function setup() {
  const engine = new HookedEngine();
  const rows = new InMemoryImageRows();
  const blobs = new InMemoryImageBlobs();
  const index = new ImageIndexService(rows, memoryIndexStore(DIM), engine.modelId, DIM, { dir: 'index', saveDelayMs: 60_000, compactRatio: 0.2 }, createLogger('silent'));
  await index.open();
  const itm = new ItmStateCache(engine, blobs, 1 << 20);
  const images = new ImageService(engine, rows, new InMemoryImageQueries(rows), blobs, index, itm, { maxPageSize: 50, maxTextChars: 500, maxMetadataBytes: 4096, thumbnailSize: 64 }, createLogger('silent'));
  let n = 0;
  /** Stores a scene as ingest does: original, row with embedding, index entry, ITM states. */
  async function store(colour: keyof typeof COLOURS, mimeType = 'image/png') {
    n++;
    const bytes = await scenePng([{ colour, shape: 'circle' }]);
    const sha256 = createHash('sha256').update(bytes).update(String(n)).digest('hex');
    const encoded = await engine.embedImage(await engine.loadImage(bytes));
    await blobs.writeOriginal(sha256, bytes);
    const image = rows.insert(
      { id: `00000000-0000-4000-8000-${n.toString().padStart(12, '0')}`, sha256, mimeType, format: 'png', width: 128, height: 128, byteSize: bytes.length, altText: null, metadata: null, takenAt: null, cameraMake: null, cameraModel: null },
      'READY',
      { modelId: engine.modelId, vector: encoded.feature },
    );
    index.add(image.label, encoded.feature);
    await itm.put(sha256, encoded.itmStates);
    return image;
  }
  return { engine, rows, blobs, index, images, store };
}

describe('ImageService over in-memory stores', () => {
  it('lists newest first by keyset: an image added between pages neither repeats nor shifts one', async () => {
    const { images, store } = await setup();
    const stored = [];
    for (const colour of ['red', 'green', 'blue', 'yellow'] as const) stored.push(await store(colour));
    const first = await images.listImages(2);
    expect(first.items.map((e) => e.node.id)).toEqual([stored[3]!.id, stored[2]!.id]);
    expect(first).toMatchObject({ hasNextPage: true, hasPreviousPage: false, totalCount: 4 });
    await store('purple');
    const next = await images.listImages(2, first.items[1]!.cursor);
    expect(next.items.map((e) => e.node.id)).toEqual([stored[1]!.id, stored[0]!.id]);
    expect(next).toMatchObject({ hasNextPage: false, hasPreviousPage: true, totalCount: 5 });
    const jpegs = await images.listImages(10, null, { mimeTypes: ['image/jpeg'] });
    expect(jpegs.totalCount).toBe(0);
  });

  it('deletes the row, its index entry and its files; a second delete is NOT_FOUND', async () => {
    const { blobs, index, images, store } = await setup();
    const image = await store('red');
    const other = await store('blue');
    await expect(images.deleteImage(image.id)).resolves.toEqual({ id: image.id, deleted: true });
    expect(await images.getImage(image.id)).toBeNull();
    expect(index.has(image.label)).toBe(false);
    await expect(blobs.readOriginal(image.sha256)).rejects.toThrow();
    expect(index.has(other.label)).toBe(true);
    await expect(images.deleteImage(image.id)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('scores a new alt text against the image with ITM, and a blank one clears it', async () => {
    const { images, store } = await setup();
    const image = await store('red');
    const fitting = await images.updateImage(image.id, { altText: 'a red circle' });
    const wrong = await images.updateImage(image.id, { altText: 'a blue circle' });
    expect(fitting.altTextMatch).toBeGreaterThan(0.9);
    expect(wrong.altTextMatch).toBeLessThan(0.1);
    const cleared = await images.updateImage(image.id, { altText: '  ', metadata: { album: 'x' } });
    expect(cleared).toMatchObject({ altText: null, altTextMatch: null, metadata: { album: 'x' } });
    await expect(images.updateImage(image.id, {})).rejects.toBeInstanceOf(InvalidInputError);
  });

  it('recaptions with the model and its ITM match; deleted while captioning, it is NOT_FOUND and nothing is written', async () => {
    const { engine, rows, images, store } = await setup();
    const image = await store('green');
    const updated = await images.recaption(image.id, { numBeams: 3 });
    expect(updated).toMatchObject({ caption: 'a green shape (beam 3)', captionModelId: engine.modelId });
    expect(updated.captionMatch).toBeGreaterThan(0.5);

    const doomed = await store('yellow');
    engine.duringCaption = async () => {
      await rows.delete(doomed.label);
    };
    await expect(images.recaption(doomed.id, null)).rejects.toBeInstanceOf(NotFoundError);
    expect(rows.rows.has(doomed.label)).toBe(false);
    await expect(images.recaption(image.id, { minLength: 9, maxLength: 3 })).rejects.toMatchObject({ details: { argument: 'options.minLength' } });
  });
});
