import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config.js';
import { createPrismaClient } from '../../src/repositories/database.js';
import { IndexFeedRepository } from '../../src/repositories/index-feed.repository.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const INGEST = `mutation($input: IngestImageInput!) { ingestImage(input: $input) { created image { id status } } }`;
const SEARCH = `query($text: String!) { searchImages(text: $text, first: 50) { edges { node { id } } } }`;

function solidPng(r: number, g: number, b: number): Promise<Buffer> {
  return sharp({ create: { width: 24, height: 24, channels: 3, background: { r, g, b } } }).png().toBuffer();
}

async function health(server: TestServer) {
  return (await (await fetch(`${server.url}/healthz`)).json()) as {
    status: string;
    role: string;
    indexFeed: { appliedPosition: number; headPosition: number; lagPositions: number; lagSeconds: number; openedFrom: string; appliedSinceStart: number };
  };
}

const indexed = async (server: TestServer) => (await server.gql(`{ serviceInfo { indexedImages } }`)).data.serviceInfo.indexedImages as number;

describe.skipIf(process.env.BLIP_TEST_PG === 'off')('the index change feed (PostgreSQL)', () => {
  it('a second replica sees ingests and deletes of the first within 2 s, and restarts from its snapshot plus the feed', async () => {
    const a = await startTestServer({ db: 'postgresql' });
    const bEnv = { ...a.env, ROLE: 'api', INDEX_DIR: path.join(a.dataDir, 'index-b'), INDEX_FEED_POLL_MS: '60000' };
    let b = await startTestServer({ reuse: { dataDir: a.dataDir, env: bEnv } });
    try {
      expect((await health(b)).indexFeed).toMatchObject({ appliedPosition: 0, lagPositions: 0, openedFrom: 'full-scan' });
      const red = await a.gql(INGEST, { input: { base64: (await solidPng(230, 20, 20)).toString('base64') } });
      const redId = red.data.ingestImage.image.id as string;
      // The poll is a minute away: only the NOTIFY can bring it within 2 s.
      const t0 = Date.now();
      await expect.poll(async () => (await b.gql(SEARCH, { text: 'red' })).data.searchImages.edges.map((e: { node: { id: string } }) => e.node.id), { timeout: 2000, interval: 25 }).toContain(redId);
      expect(Date.now() - t0).toBeLessThan(2000);
      const h = await health(b);
      expect(h.role).toBe('api');
      expect(h.indexFeed).toMatchObject({ lagPositions: 0, lagSeconds: 0 });
      expect(h.indexFeed.appliedPosition).toBeGreaterThan(0);
      expect(h.indexFeed.appliedPosition).toBe(h.indexFeed.headPosition);
      const metrics = await (await fetch(`${b.url}/metrics`)).text();
      expect(metrics).toMatch(/^blip_index_feed_lag_positions 0$/m);
      expect(metrics).toMatch(/^blip_index_feed_lag_seconds 0$/m);

      // A delete through A leaves B's index too.
      expect((await a.admin(`mutation($id: ID!) { deleteImage(id: $id) { deleted } }`, { id: redId })).errors).toBeUndefined();
      await expect.poll(() => indexed(b), { timeout: 2000, interval: 25 }).toBe(0);

      // B stops (saving its snapshot with its position); A ingests meanwhile; B restarts and
      // applies only the feed after its snapshot (no scan of every row).
      await b.stop();
      const greenAndBlue = [];
      for (const [r, g, bl] of [[20, 200, 20], [20, 20, 220]] as const) {
        greenAndBlue.push((await a.gql(INGEST, { input: { base64: (await solidPng(r, g, bl)).toString('base64') } })).data.ingestImage.image.id);
      }
      b = await startTestServer({ reuse: { dataDir: a.dataDir, env: bEnv } });
      const restarted = await health(b);
      expect(restarted.indexFeed).toMatchObject({ openedFrom: 'snapshot+feed', lagPositions: 0, appliedSinceStart: 2 });
      expect(await indexed(b)).toBe(2);
      const found = (await b.gql(SEARCH, { text: 'green' })).data.searchImages.edges.map((e: { node: { id: string } }) => e.node.id);
      expect(found.sort()).toEqual([...greenAndBlue].sort());
    } finally {
      await b.stop();
      await a.dispose();
    }
  }, 60_000);

  it('a replica whose snapshot is older than the trimmed feed scans once and misses nothing', async () => {
    const a = await startTestServer({ db: 'postgresql' });
    const bEnv = { ...a.env, ROLE: 'api', INDEX_DIR: path.join(a.dataDir, 'index-b') };
    let b = await startTestServer({ reuse: { dataDir: a.dataDir, env: bEnv } });
    const config = loadConfig(a.env);
    const db = createPrismaClient(config.db);
    const feed = new IndexFeedRepository(db, config.db);
    try {
      await a.gql(INGEST, { input: { base64: (await solidPng(230, 20, 20)).toString('base64') } });
      await expect.poll(() => indexed(b), { timeout: 2000, interval: 25 }).toBe(1);
      await b.stop(); // its snapshot includes the red image's entry
      for (const [r, g, bl] of [[20, 200, 20], [20, 20, 220]] as const) {
        await a.gql(INGEST, { input: { base64: (await solidPng(r, g, bl)).toString('base64') } });
      }
      // As INDEX_FEED_RETENTION_HOURS would once they are old: every entry but the newest goes,
      // the green image's among them. Catching up from the feed alone would miss it.
      const head = await feed.head();
      expect(await feed.trim(new Date(Date.now() + 60_000))).toBe(2);
      expect(await feed.trimmedTo()).toBe(head - 1);
      expect(await feed.head()).toBe(head);
      expect(await feed.trim(new Date(Date.now() + 60_000))).toBe(0);

      b = await startTestServer({ reuse: { dataDir: a.dataDir, env: bEnv } });
      expect((await health(b)).indexFeed).toMatchObject({ openedFrom: 'full-scan', appliedPosition: head, lagPositions: 0 });
      expect(await indexed(b)).toBe(3);
    } finally {
      await db.$disconnect();
      await b.stop();
      await a.dispose();
    }
  }, 60_000);
});
