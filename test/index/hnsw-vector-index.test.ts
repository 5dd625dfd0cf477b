import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { l2Normalize } from '../../src/domain/embedding.js';
import { ExactVectorIndex } from '../../src/index/exact-vector-index.js';
import { HnswVectorIndex } from '../../src/index/hnsw-vector-index.js';

/** Switch for a manifest write that dies (the process killed between the file and its commit). */
const manifestWrites = vi.hoisted(() => ({ fail: false }));
vi.mock('../../src/index/index-manifest.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/index/index-manifest.js')>();
  return {
    ...original,
    writeIndexManifest: async (...args: Parameters<typeof original.writeIndexManifest>) => {
      if (manifestWrites.fail) throw new Error('killed before the manifest was written');
      return original.writeIndexManifest(...args);
    },
  };
});

const OPTIONS = { m: 16, efConstruction: 100, efSearch: 64, initialCapacity: 64 };
const DIM = 32;

function rng(seed: number) {
  return () => {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    return seed / 2 ** 32 - 0.5;
  };
}
const random = rng(42);
const vector = () => l2Normalize(Float32Array.from({ length: DIM }, random));

/** The snapshot file the folder's manifest commits to. */
const committedFile = (dir: string): string => JSON.parse(fs.readFileSync(path.join(dir, 'hnsw.json'), 'utf8')).file;

describe('HnswVectorIndex', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-hnsw-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const vectors = Array.from({ length: 2000 }, vector);

  it('recall@10 >= 0.95 against the exact index, growing past its initial capacity', () => {
    const hnsw = HnswVectorIndex.create(DIM, 'm1', OPTIONS);
    const exact = new ExactVectorIndex(DIM);
    vectors.forEach((v, i) => {
      hnsw.add(i + 1, v);
      exact.add(i + 1, v);
    });
    expect(hnsw.size).toBe(2000);
    let hits = 0;
    const queries = Array.from({ length: 50 }, vector);
    for (const q of queries) {
      const truth = new Set(exact.search(q, 10).map((m) => m.label));
      hits += hnsw.search(q, 10).filter((m) => truth.has(m.label)).length;
    }
    expect(hits / (queries.length * 10)).toBeGreaterThanOrEqual(0.95);
    const [best] = hnsw.search(vectors[7]!, 1);
    expect(best).toMatchObject({ label: 8 });
    expect(best!.score).toBeCloseTo(1, 4);
  });

  it('save -> open gives the same results; another model or dimension is not loaded', async () => {
    const a = HnswVectorIndex.create(DIM, 'm1', OPTIONS);
    vectors.slice(0, 300).forEach((v, i) => a.add(i + 1, v));
    a.remove(5);
    await a.save(dir);
    const opened = await HnswVectorIndex.open(dir, 'm1', DIM, OPTIONS);
    expect(opened.status).toBe('loaded');
    const q = vectors[10]!;
    expect(opened.index.search(q, 5)).toEqual(a.search(q, 5));
    expect(opened.index.has(5)).toBe(false);
    expect(opened.index.size).toBe(299);
    expect(await HnswVectorIndex.open(dir, 'm2', DIM, OPTIONS)).toMatchObject({ status: 'empty', reason: expect.stringMatching(/model m1/) });
    expect(await HnswVectorIndex.open(dir, 'm1', 16, OPTIONS)).toMatchObject({ status: 'empty' });
    fs.writeFileSync(path.join(dir, committedFile(dir)), 'garbage');
    expect((await HnswVectorIndex.open(dir, 'm1', DIM, OPTIONS)).status).toBe('empty');
  });

  it('a save holds the index as it was when called; changes made while it writes are seen at once and reach the graph after', async () => {
    const liveDir = path.join(dir, 'live');
    const a = HnswVectorIndex.create(DIM, 'm1', OPTIONS);
    vectors.slice(0, 300).forEach((v, i) => a.add(i + 1, v));
    const saving = a.save(liveDir);
    // While the graph is written on a libuv thread: an add past the capacity (64 * 2^n: 512 is
    // the next), a removal, a replaced vector, and a label added then removed.
    const extra = vectors.slice(300, 520);
    extra.forEach((v, i) => a.add(i + 301, v));
    a.remove(2);
    a.add(3, vectors[1000]!);
    a.add(900, vectors[1001]!);
    a.remove(900);
    const seen = () => {
      expect(a.size).toBe(519);
      expect(a.has(2)).toBe(false);
      expect(a.has(900)).toBe(false);
      expect(a.search(vectors[400]!, 1)[0]).toMatchObject({ label: 401 });
      expect(a.search(vectors[400]!, 1)[0]!.score).toBeCloseTo(1, 4);
      expect(a.search(vectors[1000]!, 1)[0]).toMatchObject({ label: 3 });
      expect(a.search(vectors[1]!, 5).map((m) => m.label)).not.toContain(2);
      expect(a.search(vectors[1001]!, 5).map((m) => m.label)).not.toContain(900);
      expect(a.search(vectors[10]!, 3, (label) => label !== 11).map((m) => m.label)).not.toContain(11);
      expect(a.search(vectors[10]!, 600)).toHaveLength(519);
      const v = a.vector(3);
      expect(v.reduce((s, x, i) => s + x * vectors[1000]![i]!, 0)).toBeCloseTo(1, 5);
    };
    seen();
    await saving;
    seen();
    // The snapshot is the index as it was when save() was called.
    const opened = await HnswVectorIndex.open(liveDir, 'm1', DIM, OPTIONS);
    expect(opened.status).toBe('loaded');
    expect(opened.index.size).toBe(300);
    expect(opened.index.has(2)).toBe(true);
    expect(opened.index.has(301)).toBe(false);
    expect(opened.index.search(vectors[2]!, 1)[0]).toMatchObject({ label: 3 });
    // The next save holds the changes.
    await a.save(liveDir);
    const reopened = await HnswVectorIndex.open(liveDir, 'm1', DIM, OPTIONS);
    expect(reopened.index.size).toBe(519);
    expect(reopened.index.search(vectors[1000]!, 1)[0]).toMatchObject({ label: 3 });
    const first = a.save(liveDir);
    await expect(a.save(liveDir)).rejects.toThrow(/already running/);
    await first;
  });

  it('a save that dies before its manifest commits leaves the previous snapshot loadable; the next save removes its leftovers', async () => {
    const crashDir = path.join(dir, 'crash');
    const a = HnswVectorIndex.create(DIM, 'm1', OPTIONS);
    vectors.slice(0, 200).forEach((v, i) => a.add(i + 1, v));
    await a.save(crashDir);
    const before = committedFile(crashDir);
    // The process dies between writing the new snapshot file and committing its manifest...
    vectors.slice(200, 300).forEach((v, i) => a.add(i + 201, v));
    manifestWrites.fail = true;
    await expect(a.save(crashDir)).rejects.toThrow(/killed/);
    manifestWrites.fail = false;
    // ...and another save was killed mid-write.
    fs.writeFileSync(path.join(crashDir, '.hnsw.bin.999999.tmp'), 'half a snapshot');
    const opened = await HnswVectorIndex.open(crashDir, 'm1', DIM, OPTIONS);
    expect(opened.status).toBe('loaded');
    expect(opened.index.size).toBe(200);
    expect(opened.index.has(250)).toBe(false);
    expect(committedFile(crashDir)).toBe(before);
    opened.index.add(201, vectors[200]!);
    await opened.index.save(crashDir);
    const after = committedFile(crashDir);
    expect(after).not.toBe(before);
    expect(fs.readdirSync(crashDir).sort()).toEqual([after, 'hnsw.json'].sort());
  });

  it('a format-2 folder (a fixed hnsw.bin) still loads, and its first save moves to a named file', async () => {
    const oldDir = path.join(dir, 'format2');
    const a = HnswVectorIndex.create(DIM, 'm1', OPTIONS);
    vectors.slice(0, 50).forEach((v, i) => a.add(i + 1, v));
    await a.save(oldDir);
    const manifestPath = path.join(oldDir, 'hnsw.json');
    const { file, ...manifest } = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
    fs.renameSync(path.join(oldDir, file), path.join(oldDir, 'hnsw.bin'));
    fs.writeFileSync(manifestPath, JSON.stringify({ ...manifest, formatVersion: 2 }));
    const opened = await HnswVectorIndex.open(oldDir, 'm1', DIM, OPTIONS);
    expect(opened.status).toBe('loaded');
    expect(opened.index.size).toBe(50);
    await opened.index.save(oldDir);
    expect(fs.readdirSync(oldDir).sort()).toEqual([committedFile(oldDir), 'hnsw.json'].sort());
  });

  it('deleted labels are never returned, revive on re-add, and compaction drops them', () => {
    const index = HnswVectorIndex.create(DIM, 'm1', OPTIONS);
    vectors.slice(0, 100).forEach((v, i) => index.add(i + 1, v));
    for (let label = 1; label <= 40; label++) index.remove(label);
    expect(index.search(vectors[0]!, 100).some((m) => m.label <= 40)).toBe(false);
    index.add(1, vectors[0]!);
    expect(index.search(vectors[0]!, 1)[0]!.label).toBe(1);
    expect(index.compactIfNeeded(0.2)).toBe(true);
    expect(index.deletedCount).toBe(0);
    expect(index.size).toBe(61);
    expect(index.search(vectors[50]!, 1)[0]!.label).toBe(51);
  });

  it('an empty saved index reloads and still grows', async () => {
    const emptyDir = path.join(dir, 'empty');
    await HnswVectorIndex.create(DIM, 'm1', OPTIONS).save(emptyDir);
    const opened = await HnswVectorIndex.open(emptyDir, 'm1', DIM, OPTIONS);
    expect(opened.status).toBe('loaded');
    vectors.slice(0, 100).forEach((v, i) => opened.index.add(i + 1, v));
    expect(opened.index.size).toBe(100);
  });
});
