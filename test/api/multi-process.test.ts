import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { startChildServer, type ChildServer } from '../helpers/child-server.js';
import { startS3Server } from '../helpers/s3-server.js';
import { PG_BASE_URL, startTestServer } from '../helpers/test-server.js';

const INGEST_ASYNC = `mutation($input: IngestImageInput!) { ingestImage(input: $input, wait: false) { image { id status } job { id } } }`;
const SEARCH = `query($text: String!) { searchImages(text: $text, first: 100) { edges { node { id } } } }`;

function distinctPng(i: number): Promise<Buffer> {
  return sharp({ create: { width: 24, height: 24, channels: 3, background: { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 53) % 256 } } })
    .png()
    .toBuffer();
}

const ids = (res: { data?: { searchImages: { edges: Array<{ node: { id: string } }> } } }) => res.data?.searchImages.edges.map((e) => e.node.id) ?? [];

/**
 * Issue 45's "Done when", on one machine: PostgreSQL, two API replicas (ROLE=api) and two workers
 * (ROLE=worker), each its own process with the fake engine (test/crash/crash-child.ts). With
 * BLOB_STORE=local they share DATA_DIR (one machine), each replica with its own index folder; with
 * s3 (a local S3-compatible server) each has its own DATA_DIR, as on separate machines.
 */
describe.skipIf(process.env.BLIP_TEST_PG === 'off').each(['local', 's3'] as const)('2 API replicas + 2 workers as separate processes (PostgreSQL, BLOB_STORE=%s)', (store) => {
  it('ingest via A is searchable via B within 2 s; killing a worker mid-job and a replica mid-search loses nothing; a restarted replica catches up from the feed', async () => {
    const s3 = store === 's3' ? await startS3Server() : null;
    const probe = await startTestServer({ db: 'postgresql', env: s3?.env ?? {} });
    const ownDirs: string[] = [];
    /** s3: a DATA_DIR of its own per process (named, so a restart finds its index snapshot again). */
    const dataDirOf = (name: string) => {
      if (!s3) return {} as Record<string, string>;
      const dir = path.join(os.tmpdir(), `blip-mp-${path.basename(probe.dataDir)}-${name}`);
      fs.mkdirSync(dir, { recursive: true });
      ownDirs.push(dir);
      return { DATA_DIR: dir };
    };
    await probe.stop(); // a fresh data dir and schema, migrations applied
    const schema = new URL(probe.env.DATABASE_URL!).searchParams.get('schema')!;
    const db = new pg.Client({ connectionString: PG_BASE_URL });
    await db.connect();
    const lockedBy = async (jobId: string) =>
      (await db.query<{ lockedBy: string | null; state: string }>(`SELECT "lockedBy", "state" FROM "${schema}"."Job" WHERE "id" = $1`, [jobId])).rows[0];
    // INDEX_SAVE_DELAY_MS as deployed (about), so the SIGKILL below may land in the middle of a
    // snapshot save: the manifest commits a snapshot in one rename, so the restart still finds the
    // previous one whole (src/index/hnsw-vector-index.ts).
    const base = { ...probe.env, JOB_LEASE_MS: '1000', JOB_POLL_MS: '100', INDEX_FEED_POLL_MS: '60000', INDEX_SAVE_DELAY_MS: '1000' };
    const children: ChildServer[] = [];
    const start = async (env: Record<string, string>) => {
      const child = await startChildServer({ ...base, ...env });
      children.push(child);
      return child;
    };
    try {
      const replicaEnv = (name: string) => ({ ROLE: 'api', INDEX_DIR: path.join(probe.dataDir, `index-${name}`), ...dataDirOf(name) });
      let a = await start(replicaEnv('a'));
      const b = await start(replicaEnv('b'));
      const workers = [await start({ ROLE: 'worker', FAKE_DELAY_MS: '50', ...dataDirOf('w1') }), await start({ ROLE: 'worker', FAKE_DELAY_MS: '50', ...dataDirOf('w2') })];

      // 1. Through A, searchable through B within 2 s of A's acknowledgement (the feed's NOTIFY:
      // B's poll is a minute away).
      const first = await a.gql(INGEST_ASYNC, { input: { base64: (await distinctPng(1)).toString('base64') } });
      const firstId = first.data.ingestImage.image.id as string;
      const acked = Date.now();
      await expect.poll(async () => ids(await b.gql(SEARCH, { text: 'anything' })), { timeout: 2000, interval: 20 }).toContain(firstId);
      const seconds = (Date.now() - acked) / 1000;
      expect(seconds).toBeLessThan(2);

      // 2. A worker killed mid-job: its job is taken over by the other worker once the lease ends.
      const acknowledged = [firstId];
      const jobs: string[] = [];
      for (let i = 2; i < 8; i++) {
        const via = i % 2 ? a : b;
        const res = await via.gql(INGEST_ASYNC, { input: { base64: (await distinctPng(i)).toString('base64') } });
        expect(res.errors).toBeUndefined();
        acknowledged.push(res.data.ingestImage.image.id);
        jobs.push(res.data.ingestImage.job.id);
      }
      let victim: ChildServer | undefined;
      await expect
        .poll(
          async () => {
            for (const id of jobs) {
              const row = await lockedBy(id);
              const holder = row?.state === 'RUNNING' ? workers.find((w) => row.lockedBy?.startsWith(`${w.child.pid}-`)) : undefined;
              if (holder) victim = holder;
            }
            return victim !== undefined;
          },
          { timeout: 20_000, interval: 20 },
        )
        .toBe(true);
      await victim!.stop('SIGKILL');

      // 3. A replica killed mid-search: B keeps answering every search meanwhile.
      let searching = true;
      const bAnswers: number[] = [];
      const onB = (async () => {
        while (searching) bAnswers.push((await b.gql(SEARCH, { text: 'anything' })).status);
      })();
      const onA = (async () => {
        const failures: unknown[] = [];
        for (let i = 0; i < 50; i++) await a.gql(SEARCH, { text: 'anything' }).catch((e: unknown) => failures.push(e));
        return failures;
      })();
      await new Promise((r) => setTimeout(r, 100));
      await a.stop('SIGKILL');
      expect((await onA).length).toBeGreaterThan(0); // A did die mid-stream

      // Nothing acknowledged is lost: every image READY and searchable through B.
      await expect.poll(async () => ids(await b.gql(SEARCH, { text: 'anything' })).sort(), { timeout: 30_000, interval: 100 }).toEqual([...acknowledged].sort());
      searching = false;
      await onB;
      expect(bAnswers.length).toBeGreaterThan(0);
      expect(bAnswers.every((s) => s === 200)).toBe(true);
      // The killed worker may have committed its image and died before finishing the job: the job
      // stays RUNNING until its lease ends and the other worker finds the image done.
      const states = async () => (await db.query<{ state: string; n: string }>(`SELECT "state", COUNT(*) AS n FROM "${schema}"."Job" GROUP BY "state"`)).rows;
      await expect.poll(states, { timeout: 10_000, interval: 100 }).toEqual([{ state: 'SUCCEEDED', n: String(acknowledged.length) }]);

      // 4. A restarts from its own snapshot plus the feed, not a scan of every row.
      a = await start(replicaEnv('a'));
      const health = (await (await fetch(`${a.url}/healthz`)).json()) as { indexFeed: { openedFrom: string; lagPositions: number } };
      expect(health.indexFeed).toMatchObject({ openedFrom: 'snapshot+feed', lagPositions: 0 });
      expect(ids(await a.gql(SEARCH, { text: 'anything' })).sort()).toEqual([...acknowledged].sort());
    } finally {
      for (const child of children) await child.stop();
      await db.end();
      await probe.dispose();
      for (const dir of ownDirs) fs.rmSync(dir, { recursive: true, force: true });
      await s3?.close();
    }
  }, 180_000);
});
