import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/lib/logger.js';
import { DomainErrorEngine } from '../../src/services/engine-errors.js';
import { ImageIndexService } from '../../src/services/image-index.service.js';
import { ItmStateCache } from '../../src/services/itm-state-cache.js';
import { StorageRecoveryService } from '../../src/services/storage-recovery.service.js';
import { FakeBlipEngine } from '../helpers/fake-blip-engine.js';
import { scenePng } from '../helpers/images.js';
import { InMemoryImageBlobs, InMemoryImageRows, memoryIndexStore } from '../helpers/in-memory-stores.js';

const log = createLogger('silent');

function setup(modelId = 'fake-colour-v2') {
  const engine = new DomainErrorEngine(new FakeBlipEngine({ modelId }));
  const rows = new InMemoryImageRows();
  const blobs = new InMemoryImageBlobs();
  const index = new ImageIndexService(rows, memoryIndexStore(engine.embedDim), engine.modelId, engine.embedDim, { dir: 'index', saveDelayMs: 60_000, compactRatio: 0.2 }, log);
  const recovery = new StorageRecoveryService(engine, rows, blobs, index, new ItmStateCache(engine, blobs, 1 << 20), log);
  return { engine, rows, blobs, index, recovery };
}

/** A READY row and its original, embedded by `modelId` (or by no model). */
async function stored(rows: InMemoryImageRows, blobs: InMemoryImageBlobs, png: Buffer, embedding?: { modelId: string; vector: Float32Array }, status: 'READY' | 'DELETING' = 'READY') {
  const sha256 = createHash('sha256').update(png).digest('hex');
  await blobs.writeOriginal(sha256, png);
  return rows.insert({ id: `id-${sha256.slice(0, 8)}`, sha256, mimeType: 'image/png', format: 'png', width: 128, height: 128, byteSize: png.byteLength, altText: null, metadata: null, takenAt: null, cameraMake: null, cameraModel: null }, status, embedding);
}

describe('StorageRecoveryService over in-memory fakes', () => {
  it('at start: finishes interrupted deletes, quarantines originals no row names, drops other models\' ITM states, indexes what is READY', async () => {
    const { engine, rows, blobs, index, recovery } = setup();
    const kept = await stored(rows, blobs, await scenePng([{ colour: 'red', shape: 'circle' }]), { modelId: engine.modelId, vector: Float32Array.from({ length: engine.embedDim }, (_, i) => (i === 0 ? 1 : 0)) });
    const deleting = await stored(rows, blobs, await scenePng([{ colour: 'blue', shape: 'circle' }]), undefined, 'DELETING');
    const orphan = createHash('sha256').update('orphan').digest('hex');
    await blobs.writeOriginal(orphan, Buffer.from('orphan'));
    await blobs.writeItmStates('old-model', kept.sha256, { codes: new Int8Array(2), scales: new Float32Array(1) });

    await recovery.recover();

    expect([...rows.rows.values()].map((r) => r.id)).toEqual([kept.id]);
    expect(blobs.originals.has(deleting.sha256)).toBe(false);
    expect(blobs.originals.has(orphan)).toBe(false);
    expect([...blobs.quarantined.keys()]).toEqual([expect.stringMatching(new RegExp(`^quarantine/.+/${orphan}$`))]);
    expect(blobs.originals.has(kept.sha256)).toBe(true);
    expect([...blobs.derived.keys()].some((k) => k.includes('old-model'))).toBe(false);
    expect(index.labels()).toEqual([kept.label]);
  });

  it('after a model change, embeds every image again and skips one whose original is gone', async () => {
    const { engine, rows, blobs, index, recovery } = setup('fake-colour-v2');
    const old = { modelId: 'fake-colour-v1', vector: new Float32Array(engine.embedDim).fill(0.5) };
    const a = await stored(rows, blobs, await scenePng([{ colour: 'red', shape: 'square' }]), old);
    const b = await stored(rows, blobs, await scenePng([{ colour: 'green', shape: 'square' }]), old);
    const lost = await stored(rows, blobs, await scenePng([{ colour: 'yellow', shape: 'square' }]), old);
    blobs.originals.delete(lost.sha256);
    await recovery.recover();
    expect(await rows.countMissingEmbeddings(engine.modelId)).toBe(3);
    expect(index.size).toBe(0);

    const progress: number[] = [];
    expect(await recovery.backfillEmbeddings(undefined, async (done) => void progress.push(done))).toBe(2);
    expect(progress).toEqual([1, 2]);
    expect(index.labels().sort()).toEqual([a.label, b.label].sort());
    expect(await rows.findMissingEmbeddings(engine.modelId, 10)).toEqual([expect.objectContaining({ id: lost.id })]);
    // The search by text "red" now finds the red image first, through the new vectors.
    const red = await engine.embedText('red');
    expect(index.search(red, 1).map((m) => m.label)).toEqual([a.label]);
  });
});
