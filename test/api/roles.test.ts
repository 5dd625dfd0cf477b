import { spawnSync } from 'node:child_process';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load-config.js';
import { startChildServer, type ChildServer } from '../helpers/child-server.js';
import { startTestServer } from '../helpers/test-server.js';

const JOB = 'id state attempts error image { id status caption }';
const INGEST = (wait: boolean) => `mutation($input: IngestImageInput!) { ingestImage(input: $input, wait: ${wait}) { created image { id status caption } job { ${JOB} } } }`;

function distinctPng(i: number): Promise<Buffer> {
  return sharp({ create: { width: 24, height: 24, channels: 3, background: { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 53) % 256 } } })
    .png()
    .toBuffer();
}

describe('roles (ROLE=all | api | worker)', () => {
  it('EXPECTED FAILURE - ROLE=api or worker on SQLite is refused with a message naming PostgreSQL', () => {
    expect(loadConfig({}).role).toBe('all');
    for (const role of ['api', 'worker']) {
      expect(() => loadConfig({ ROLE: role })).toThrow(ConfigError);
      expect(() => loadConfig({ ROLE: role, DATABASE_URL: 'file:/tmp/x.db' })).toThrow(/ROLE: .*needs PostgreSQL/);
      expect(loadConfig({ ROLE: role, DATABASE_URL: 'postgres://h/db' }).role).toBe(role);
    }
    expect(() => loadConfig({ ROLE: 'both' })).toThrow(ConfigError);
    // The real entry point: exit code 2 and the message, before anything is loaded.
    const run = spawnSync(process.execPath, ['--import', 'tsx', path.resolve('src/main.ts')], {
      env: { ...process.env, ROLE: 'worker', DATABASE_URL: '', DATA_DIR: '/nonexistent-blip' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/ROLE: worker needs PostgreSQL/);
  }, 90_000);

  it.skipIf(process.env.BLIP_TEST_PG === 'off')(
    'PostgreSQL: an API process runs no jobs; workers do; a worker killed mid-job loses nothing (another takes it over)',
    async () => {
      const probe = await startTestServer({ db: 'postgresql' });
      await probe.stop(); // a fresh data dir and PG schema, migrations applied
      const base = { ...probe.env, JOB_LEASE_MS: '1000', JOB_POLL_MS: '100', INDEX_DIR: '' };
      const started: ChildServer[] = [];
      const start = async (env: Record<string, string>) => {
        const child = await startChildServer({ ...base, ...env });
        started.push(child);
        return child;
      };
      try {
        const api = await start({ ROLE: 'api', INDEX_DIR: path.join(probe.dataDir, 'index-api') });
        const acked = await api.gql(INGEST(false), { input: { base64: (await distinctPng(1)).toString('base64') } });
        expect(acked.errors).toBeUndefined();
        const { image, job } = acked.data.ingestImage;
        expect(image.status).toBe('PROCESSING');
        // No worker yet: the API process leaves the job queued.
        await new Promise((r) => setTimeout(r, 1500));
        const stillQueued = await api.gql(`query($id: ID!) { job(id: $id) { ${JOB} } }`, { id: job.id });
        expect(stillQueued.data.job).toMatchObject({ state: 'QUEUED', attempts: 0 });

        // A slow worker claims it; killed mid-job, its lease runs out and a second worker finishes it.
        const slow = await start({ ROLE: 'worker', FAKE_DELAY_MS: '2000' });
        await expect
          .poll(async () => (await api.gql(`query($id: ID!) { job(id: $id) { state } }`, { id: job.id })).data.job.state, { timeout: 20_000, interval: 50 })
          .toBe('RUNNING');
        await slow.stop('SIGKILL');
        const worker = await start({ ROLE: 'worker' });
        await expect
          .poll(async () => (await api.gql(`query($id: ID!) { job(id: $id) { ${JOB} } }`, { id: job.id })).data.job, { timeout: 30_000, interval: 100 })
          .toMatchObject({ state: 'SUCCEEDED', attempts: 2, image: { id: image.id, status: 'READY' } });

        // A waiting ingest through the API process: queued, run by the worker, answered READY.
        const waited = await api.gql(INGEST(true), { input: { base64: (await distinctPng(2)).toString('base64') } });
        expect(waited.errors).toBeUndefined();
        expect(waited.data.ingestImage).toMatchObject({ created: true, image: { status: 'READY' }, job: { state: 'SUCCEEDED' } });
        expect(waited.data.ingestImage.image.caption).toBeTruthy();

        // The worker serves no API: /healthz and /metrics only.
        const health = await (await fetch(`${worker.url}/healthz`)).json();
        expect(health).toMatchObject({ status: 'ok', role: 'worker' });
        expect((await fetch(`${worker.url}/metrics`)).status).toBe(200);
        expect((await fetch(`${worker.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ __typename }"}' })).status).toBe(404);
      } finally {
        for (const child of started) await child.stop();
        await probe.dispose();
      }
    },
    120_000,
  );
});
