import { describe, expect, it } from 'vitest';
import { l2Normalize } from '../../src/domain/embedding.js';
import { createLogger } from '../../src/lib/logger.js';
import type { FeedEntry, IndexFeedRepository } from '../../src/repositories/index-feed.repository.js';
import { IndexFeedFollower } from '../../src/services/index-feed-follower.js';
import { ImageIndexService } from '../../src/services/image-index.service.js';
import { InMemoryImageRows, memoryIndexStore } from '../helpers/in-memory-stores.js';

const DIM = 4;
const MODEL = 'model-a';
const unit = (...v: number[]) => l2Normalize(Float32Array.from(v));

/** The feed as PostgreSQL would hold it after a trim: `entries` are what is left, `trimmedTo` what went. */
function fakeFeed(rows: InMemoryImageRows, entries: FeedEntry[], trimmedTo: number) {
  return {
    head: async () => Math.max(trimmedTo, ...entries.map((e) => e.position)),
    trimmedTo: async () => trimmedTo,
    read: async (_model: string, after: number, limit: number) => entries.filter((e) => e.position > after).slice(0, limit),
    readyEmbeddings: (labels: number[], modelId: string) => rows.findEmbeddings(labels, modelId),
  } as unknown as IndexFeedRepository;
}

/** An index that applied the feed up to position 5 and holds image a; since then a was deleted and b, c added (positions 6-9). */
async function behindReplica() {
  const rows = new InMemoryImageRows();
  const a = rows.insertReady(1, MODEL, unit(1, 0, 0, 0));
  const index = new ImageIndexService(rows, memoryIndexStore(DIM), MODEL, DIM, { dir: 'index', saveDelayMs: 60_000, compactRatio: 0.2 }, createLogger('silent'));
  await index.open();
  index.applyFeed([], new Map(), 5);
  await rows.delete(a.label);
  const b = rows.insertReady(2, MODEL, unit(0, 1, 0, 0));
  const c = rows.insertReady(3, MODEL, unit(0, 0, 1, 0));
  const entry = (position: number, imageLabel: number, op: FeedEntry['op']): FeedEntry => ({ position, imageLabel, op, createdAt: new Date() });
  const all = [entry(6, a.label, 'remove'), entry(7, b.label, 'add'), entry(9, c.label, 'add')];
  return { rows, index, a, b, c, all };
}

describe('IndexFeedFollower and a trimmed feed', () => {
  it('applies the entries after its position when none of them was trimmed', async () => {
    const { rows, index, b, c, all } = await behindReplica();
    await new IndexFeedFollower(fakeFeed(rows, all, 3), index, MODEL, { pollMs: 60_000 }, createLogger('silent')).catchUp();
    expect(index.labels().sort()).toEqual([b.label, c.label].sort());
    expect(index.feedPosition).toBe(9);
  });

  it('rebuilds from the database when entries after its position were trimmed away', async () => {
    const { rows, index, b, c, all } = await behindReplica();
    // Positions up to 8 deleted: only c's entry is left. Applying the feed alone would keep a and miss b.
    const follower = new IndexFeedFollower(fakeFeed(rows, all.filter((e) => e.position > 8), 8), index, MODEL, { pollMs: 60_000 }, createLogger('silent'));
    await follower.catchUp();
    expect(index.labels().sort()).toEqual([b.label, c.label].sort());
    expect(index.feedPosition).toBe(9);
    expect(follower.status()).toMatchObject({ appliedPosition: 9, lagPositions: 0 });
  });
});
