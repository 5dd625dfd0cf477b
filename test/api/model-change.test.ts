import pg from 'pg';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { startChildServer, type ChildServer } from '../helpers/child-server.js';
import { PG_BASE_URL, startTestServer } from '../helpers/test-server.js';

const INGEST = `mutation($input: IngestImageInput!) { ingestImage(input: $input) { image { id status } } }`;
const SEARCH = `{ searchImages(text: "anything", first: 20) { edges { node { id } } } serviceInfo { modelId } }`;

function distinctPng(i: number): Promise<Buffer> {
  return sharp({ create: { width: 24, height: 24, channels: 3, background: { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 53) % 256 } } })
    .png()
    .toBuffer();
}

/**
 * Issue 45, item 4, as far as it is built (docs/scaling.md): a worker of the new model embeds
 * every image beside the old model's rows while the old replica serves; a replica of the new model
 * serves only once every image has its embedding; the old replica is then stopped, and the old
 * model's rows are removed once nothing serves it. Searches through a stand-in load balancer (the
 * new replica once it is up, else the old) all succeed.
 */
describe.skipIf(process.env.BLIP_TEST_PG === 'off')('model change across replicas (PostgreSQL)', () => {
  it('the new model is embedded by its own workers beside the old; replicas switch without a failed search', async () => {
    const probe = await startTestServer({ db: 'postgresql' });
    await probe.stop();
    const schema = new URL(probe.env.DATABASE_URL!).searchParams.get('schema')!;
    const db = new pg.Client({ connectionString: PG_BASE_URL });
    await db.connect();
    const embeddings = async () =>
      Object.fromEntries((await db.query<{ modelId: string; n: string }>(`SELECT "modelId", COUNT(*) AS n FROM "${schema}"."ImageEmbedding" GROUP BY "modelId"`)).rows.map((r) => [r.modelId, Number(r.n)]));
    const base = { ...probe.env, JOB_LEASE_MS: '1000', JOB_POLL_MS: '100', INDEX_FEED_POLL_MS: '200', MODEL_RETIRE_AFTER_MS: '1500' };
    const children: ChildServer[] = [];
    const start = async (env: Record<string, string>) => {
      const child = await startChildServer({ ...base, ...env });
      children.push(child);
      return child;
    };
    try {
      const oldApi = await start({ ROLE: 'api', INDEX_DIR: `${probe.dataDir}/index-old` });
      const oldWorker = await start({ ROLE: 'worker' });
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push((await oldApi.gql(INGEST, { input: { base64: (await distinctPng(i)).toString('base64') } })).data.ingestImage.image.id);
      expect(await embeddings()).toEqual({ 'fake-colour-v1': 6 });

      // Searches all through the switch, each to the replica a load balancer would pick.
      let newApi: ChildServer | null = null;
      let oldStopped = false;
      const results: Array<{ ok: boolean; model?: string; hits: number }> = [];
      let searching = true;
      const searches = (async () => {
        while (searching) {
          const target = newApi ?? (oldStopped ? null : oldApi);
          if (!target) break;
          const res = await target.gql(SEARCH).catch(() => null);
          results.push({ ok: res?.status === 200 && !res.errors, model: res?.data?.serviceInfo.modelId, hits: res?.data?.searchImages.edges.length ?? 0 });
          await new Promise((r) => setTimeout(r, 20));
        }
      })();

      // A worker of the new model: it plans and runs the re-embedding; the old worker leaves it.
      await start({ ROLE: 'worker', FAKE_MODEL_ID: 'fake-colour-v2', FAKE_DELAY_MS: '100' });
      // The new replica starts meanwhile and serves once the new model covers every image.
      const startedAt = Date.now();
      const pending = start({ ROLE: 'api', FAKE_MODEL_ID: 'fake-colour-v2', INDEX_DIR: `${probe.dataDir}/index-new` });
      const replica = await pending;
      const waitedMs = Date.now() - startedAt;
      expect(await embeddings()).toEqual({ 'fake-colour-v1': 6, 'fake-colour-v2': 6 });
      const reembed = await db.query<{ state: string; attempts: number; payload: string }>(`SELECT "state", "attempts", "payload" FROM "${schema}"."Job" WHERE "kind" = 'REEMBED'`);
      expect(reembed.rows).toEqual([{ state: 'SUCCEEDED', attempts: 1, payload: JSON.stringify({ modelId: 'fake-colour-v2' }) }]);
      newApi = replica;
      await new Promise((r) => setTimeout(r, 300));
      // The rolling step: the old replica and worker go; once their heartbeats are stale, the new
      // replica removes the old model's rows, and keeps answering meanwhile.
      await oldApi.stop('SIGTERM');
      oldStopped = true;
      await oldWorker.stop('SIGKILL'); // as a crashed one: its heartbeat row stays, and goes stale
      await expect.poll(embeddings, { timeout: 20_000, interval: 200 }).toEqual({ 'fake-colour-v2': 6 });
      await new Promise((r) => setTimeout(r, 300));
      searching = false;
      await searches;

      const served = new Set(results.map((r) => r.model));
      expect(served).toEqual(new Set(['fake-colour-v1', 'fake-colour-v2']));
      expect(results.filter((r) => !r.ok)).toEqual([]);
      expect(results.every((r) => r.hits === 6)).toBe(true);
      // It waited for the re-embedding (6 images at 2 x 100 ms of fake inference at least).
      expect(waitedMs).toBeGreaterThan(1000);
    } finally {
      for (const child of children) await child.stop();
      await db.end();
      await probe.dispose();
    }
  }, 120_000);
});
