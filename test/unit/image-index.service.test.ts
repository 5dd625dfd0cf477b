import { describe, expect, it } from 'vitest';
import { l2Normalize } from '../../src/domain/embedding.js';
import { createLogger } from '../../src/lib/logger.js';
import { ImageIndexService } from '../../src/services/image-index.service.js';
import { InMemoryImageRows, memoryIndexStore } from '../helpers/in-memory-stores.js';

const DIM = 4;
const MODEL = 'model-a';
const options = { dir: 'index', saveDelayMs: 60_000, compactRatio: 0.2 };
const unit = (...v: number[]) => l2Normalize(Float32Array.from(v));


describe('ImageIndexService over the exact index and in-memory rows', () => {
  it('builds its index from the rows when nothing was saved, and saves it', async () => {
    const rows = new InMemoryImageRows();
    const a = rows.insertReady(1, MODEL, unit(1, 0, 0, 0));
    const b = rows.insertReady(2, MODEL, unit(0, 1, 0, 0));
    const store = memoryIndexStore(DIM);
    const index = new ImageIndexService(rows, store, MODEL, DIM, options, createLogger('silent'));
    await index.open();
    expect(index.labels().sort()).toEqual([a.label, b.label].sort());
    expect(index.search(unit(1, 0.1, 0, 0), 1).map((m) => m.label)).toEqual([a.label]);
    expect([...(store.saved.get('index')?.keys() ?? [])].sort()).toEqual([a.label, b.label].sort());
  });

  it('repairs a saved index against the rows: adds what a crash left out, drops what was deleted', async () => {
    const rows = new InMemoryImageRows();
    const a = rows.insertReady(1, MODEL, unit(1, 0, 0, 0));
    const store = memoryIndexStore(DIM);
    const first = new ImageIndexService(rows, store, MODEL, DIM, options, createLogger('silent'));
    await first.open();
    const b = rows.insertReady(2, MODEL, unit(0, 0, 1, 0)); // stored, never saved in the index
    await rows.delete(a.label);

    const reopened = new ImageIndexService(rows, store, MODEL, DIM, options, createLogger('silent'));
    await reopened.open();
    expect(reopened.labels()).toEqual([b.label]);
  });

  it('rebuilds a saved index whose vectors differ from the rows (another installation\'s file)', async () => {
    const rows = new InMemoryImageRows();
    const a = rows.insertReady(1, MODEL, unit(1, 0, 0, 0));
    const store = memoryIndexStore(DIM);
    store.saved.set('index', new Map([[a.label, unit(0, 0, 0, 1)]]));
    const index = new ImageIndexService(rows, store, MODEL, DIM, options, createLogger('silent'));
    await index.open();
    expect(index.similarity(unit(1, 0, 0, 0), a.label)).toBeCloseTo(1, 5);
  });

  it('counts its changes, which search caches key on', async () => {
    const rows = new InMemoryImageRows();
    const index = new ImageIndexService(rows, memoryIndexStore(DIM), MODEL, DIM, options, createLogger('silent'));
    await index.open();
    const before = index.version;
    index.add(7, unit(1, 1, 0, 0));
    index.remove(7);
    expect(index.version).toBe(before + 2);
    expect(index.exactSearch(unit(1, 0, 0, 0), [7, 8])).toEqual([]);
  });
});
