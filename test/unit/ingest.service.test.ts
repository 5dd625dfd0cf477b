import { describe, expect, it } from 'vitest';
import { InvalidInputError, UnsupportedImageError } from '../../src/domain/errors.js';
import { createLogger } from '../../src/lib/logger.js';
import { DomainErrorEngine } from '../../src/services/engine-errors.js';
import { ImageIndexService } from '../../src/services/image-index.service.js';
import { IngestService } from '../../src/services/ingest.service.js';
import { ItmStateCache } from '../../src/services/itm-state-cache.js';
import type { JobContext } from '../../src/services/job-queue.service.js';
import { FakeBlipEngine } from '../helpers/fake-blip-engine.js';
import { scenePng } from '../helpers/images.js';
import { InMemoryImageBlobs, InMemoryImageRows, InMemoryIngestJobs, memoryIndexStore, UniqueViolation } from '../helpers/in-memory-stores.js';

const log = createLogger('silent');
const limits = { maxUploadBytes: 1 << 20, maxTextChars: 500, maxMetadataBytes: 4096 };

/** IngestService over in-memory rows, blobs and the exact index, with the fake engine as src/app.ts wraps it. */
function setup(engineOptions: ConstructorParameters<typeof FakeBlipEngine>[0] = {}) {
  const raw = new FakeBlipEngine(engineOptions);
  const engine = new DomainErrorEngine(raw);
  const rows = new InMemoryImageRows();
  const blobs = new InMemoryImageBlobs();
  const jobs = new InMemoryIngestJobs(rows);
  const index = new ImageIndexService(rows, memoryIndexStore(engine.embedDim), engine.modelId, engine.embedDim, { dir: 'index', saveDelayMs: 60_000, compactRatio: 0.2 }, log);
  const ingest = new IngestService(engine, rows, blobs, index, new ItmStateCache(engine, blobs, 1 << 20), limits, log, jobs);
  return { raw, rows, blobs, jobs, index, ingest };
}

const upload = (bytes: Buffer, altText?: string) => ({ source: { kind: 'base64' as const, data: bytes.toString('base64') }, altText });

const context = (reported: number[]): JobContext => ({
  signal: new AbortController().signal,
  report: async (progress) => void reported.push(progress),
});

describe('IngestService over in-memory fakes', () => {
  it('stores an image once: row, embedding, original, index entry; the same bytes again answer the stored row', async () => {
    const { ingest, rows, blobs, index, raw } = setup();
    const png = await scenePng([{ colour: 'red', shape: 'circle' }]);
    const first = await ingest.ingestImage(upload(png, 'a red circle'));
    expect(first.created).toBe(true);
    expect(first.image).toMatchObject({ status: 'READY', width: 128, height: 128, format: 'png', altText: 'a red circle', captionModelId: raw.modelId });
    expect(rows.embeddings.get(first.image.label)?.get(raw.modelId)).toHaveLength(raw.embedDim);
    expect(blobs.originals.get(first.image.sha256)).toEqual(png);
    expect(index.has(first.image.label)).toBe(true);

    const again = await ingest.ingestImage(upload(png));
    expect(again).toEqual({ image: first.image, created: false });
    expect(rows.rows.size).toBe(1);
    expect(raw.calls.embedImage).toBe(1);
  });

  it('concurrent uploads of the same bytes share one ingest: modelled once, one row, one answer', async () => {
    // The delay keeps the first ingest in flight while the others arrive.
    const { ingest, rows, raw, blobs } = setup({ delayMs: 50 });
    const png = await scenePng([{ colour: 'blue', shape: 'square' }]);
    const results = await Promise.all([1, 2, 3, 4].map(() => ingest.ingestImage(upload(png))));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.image.id)).size).toBe(1);
    expect(raw.calls.embedImage).toBe(1);
    expect(raw.calls.caption).toBe(1);
    expect(blobs.writes).toBe(1);
    expect(rows.rows.size).toBe(1);
  });

  it('different bytes uploaded at once are not merged', async () => {
    const { ingest, rows } = setup({ delayMs: 20 });
    const [a, b] = await Promise.all([
      ingest.ingestImage(upload(await scenePng([{ colour: 'red', shape: 'circle' }]))),
      ingest.ingestImage(upload(await scenePng([{ colour: 'green', shape: 'circle' }]))),
    ]);
    expect(a?.created && b?.created).toBe(true);
    expect(a?.image.id).not.toBe(b?.image.id);
    expect(rows.rows.size).toBe(2);
  });

  it('insert race: another process stores the same bytes between lookup and insert; its READY row is the answer', async () => {
    const { ingest, rows, index } = setup();
    const png = await scenePng([{ colour: 'yellow', shape: 'circle' }]);
    let winner: ReturnType<InMemoryImageRows['insert']> | undefined;
    rows.beforeInsert = (sha256) => {
      rows.beforeInsert = undefined;
      winner = rows.insert({ id: 'other-process', sha256, mimeType: 'image/png', format: 'png', width: 128, height: 128, byteSize: png.byteLength, altText: null, metadata: null, takenAt: null, cameraMake: null, cameraModel: null, caption: 'theirs', captionModelId: 'fake-colour-v1' }, 'READY');
    };
    const result = await ingest.ingestImage(upload(png));
    expect(result).toEqual({ image: winner, created: false });
    expect(rows.rows.size).toBe(1);
    // Our vector went nowhere: the winner's process indexes its row (start-up repair does here).
    expect(index.size).toBe(0);
  });

  it('insert race with a row that is being deleted: the insert failure is not hidden', async () => {
    const { ingest, rows } = setup();
    const png = await scenePng([{ colour: 'purple', shape: 'square' }]);
    rows.beforeInsert = (sha256) => {
      rows.beforeInsert = undefined;
      rows.insert({ id: 'going', sha256, mimeType: 'image/png', format: 'png', width: 1, height: 1, byteSize: 1, altText: null, metadata: null, takenAt: null, cameraMake: null, cameraModel: null }, 'DELETING');
    };
    await expect(ingest.ingestImage(upload(png))).rejects.toBeInstanceOf(UniqueViolation);
  });

  it('insert race on an asynchronous ingest: the other process\'s PROCESSING row and its job are the answer', async () => {
    const { ingest, rows, jobs } = setup();
    const png = await scenePng([{ colour: 'orange', shape: 'circle' }]);
    let theirJob: ReturnType<InMemoryImageRows['addJob']> | undefined;
    rows.beforeInsert = (sha256) => {
      rows.beforeInsert = undefined;
      const image = rows.insert({ id: 'theirs', sha256, mimeType: 'image/png', format: 'png', width: 128, height: 128, byteSize: png.byteLength, altText: null, metadata: null, takenAt: null, cameraMake: null, cameraModel: null }, 'PROCESSING');
      theirJob = rows.addJob({ id: 'their-job', kind: 'INGEST', total: 1 }, image.id);
    };
    const result = await ingest.ingestImage(upload(png), { wait: false });
    expect(result.created).toBe(false);
    expect(result.image.id).toBe('theirs');
    expect(result.job).toEqual(theirJob);
    expect(jobs.announced).toEqual([]);
  });

  it('replaces the leftover row of an interrupted delete', async () => {
    const { ingest, rows } = setup();
    const png = await scenePng([{ colour: 'red', shape: 'square' }]);
    const { createHash } = await import('node:crypto');
    rows.insert({ id: 'half-deleted', sha256: createHash('sha256').update(png).digest('hex'), mimeType: 'image/png', format: 'png', width: 1, height: 1, byteSize: 1, altText: null, metadata: null, takenAt: null, cameraMake: null, cameraModel: null }, 'DELETING');
    const result = await ingest.ingestImage(upload(png));
    expect(result.created).toBe(true);
    expect(result.image.id).not.toBe('half-deleted');
    expect([...rows.rows.values()].map((r) => r.id)).toEqual([result.image.id]);
  });

  it('an asynchronous ingest stores and announces a job; running it makes the image READY and searchable', async () => {
    const { ingest, rows, jobs, index, raw } = setup();
    const png = await scenePng([{ colour: 'green', shape: 'square' }]);
    const stored = await ingest.ingestImage(upload(png, 'a green square'), { wait: false });
    expect(stored.created).toBe(true);
    expect(stored.image.status).toBe('PROCESSING');
    expect(jobs.announced.map((j) => j.id)).toEqual([stored.job?.id]);
    expect(raw.calls.embedImage).toBe(0);

    const reported: number[] = [];
    if (!stored.job) throw new Error('no job');
    await ingest.run(stored.job, context(reported));
    const ready = rows.rows.get(stored.image.label);
    expect(ready?.status).toBe('READY');
    expect(ready?.caption).toEqual(expect.any(String));
    expect(ready?.altTextMatch).toEqual(expect.any(Number));
    expect(index.has(stored.image.label)).toBe(true);
    expect(reported.at(-1)).toBe(1);

    // A second attempt (the first died before marking the job) finds nothing to do.
    await ingest.run(stored.job, context([]));
    expect(raw.calls.embedImage).toBe(1);
  });

  it('when the last attempt fails, the half-made image goes: row and files', async () => {
    const { ingest, rows, blobs } = setup();
    const png = await scenePng([{ colour: 'blue', shape: 'circle' }]);
    const stored = await ingest.ingestImage(upload(png), { wait: false });
    if (!stored.job) throw new Error('no job');
    await ingest.onFailed(stored.job);
    expect(rows.rows.size).toBe(0);
    expect(blobs.originals.size).toBe(0);
  });

  it('engine failures reach callers as domain errors, with nothing stored', async () => {
    const { ingest, rows, blobs } = setup();
    const error = await ingest.ingestImage(upload(Buffer.from('not an image at all'))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnsupportedImageError);
    expect(rows.rows.size).toBe(0);
    expect(blobs.originals.size).toBe(0);
    await expect(ingest.ingestImage(upload(Buffer.alloc(0)))).rejects.toBeInstanceOf(InvalidInputError);
  });
});
