import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import type { CaptionOptions, LoadedImage } from '../../src/ml/blip-engine.js';
import { InferenceError } from '../../src/ml/errors.js';
import { FakeBlipEngine } from '../helpers/fake-blip-engine.js';
import { scenePng } from '../helpers/images.js';
import { postGraphql, startTestServer, type DbFlavour, type TestServer } from '../helpers/test-server.js';

const flavours: DbFlavour[] = process.env.BLIP_TEST_PG === 'off' ? ['sqlite'] : ['sqlite', 'postgresql'];
const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'crash', 'crash-child.ts');

const JOB = 'id kind state progress done total error attempts image { id status caption }';
const INGEST_ASYNC = `mutation($input: IngestImageInput!) { ingestImage(input: $input, wait: false) { created image { id status caption } job { ${JOB} } } }`;
const JOBS = `query($states: [JobState!], $kind: JobKind, $first: Int, $after: String) {
  jobs(states: $states, kind: $kind, first: $first, after: $after) { totalCount edges { cursor node { ${JOB} } } pageInfo { hasNextPage endCursor } }
}`;

interface JobJson {
  id: string;
  kind: string;
  state: string;
  progress: number;
  done: number;
  total: number;
  error: string | null;
  attempts: number;
  image: { id: string; status: string; caption: string | null } | null;
}

function distinctPng(i: number): Promise<Buffer> {
  return sharp({ create: { width: 24, height: 24, channels: 3, background: { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 53) % 256 } } })
    .png()
    .toBuffer();
}

function wsClient(url: string): Client {
  return createClient({ url: url.replace(/^http/, 'ws') + '/graphql', webSocketImpl: WebSocket, lazy: true, retryAttempts: 0 });
}

/** Collects a subscription's payloads until it completes or `until` says so. */
function collect<T>(client: Client, query: string, variables: Record<string, unknown>, until: (items: T[]) => boolean = () => false) {
  const items: T[] = [];
  let dispose: () => void = () => undefined;
  const done = new Promise<T[]>((resolve, reject) => {
    dispose = client.subscribe<T>(
      { query, variables },
      {
        next: (value) => {
          if (value.errors) reject(new Error(JSON.stringify(value.errors)));
          items.push(value.data as T);
          if (until(items)) resolve(items);
        },
        error: reject,
        complete: () => resolve(items),
      },
    );
  });
  return { items, done, dispose: () => dispose() };
}

async function waitForJobs(server: { gql: TestServer['gql'] }, count: number, kind = 'INGEST'): Promise<JobJson[]> {
  let jobs: JobJson[] = [];
  await expect
    .poll(
      async () => {
        const res = await server.gql(JOBS, { kind, first: 100 });
        jobs = res.data.jobs.edges.map((e: { node: JobJson }) => e.node);
        return jobs.filter((j) => j.state === 'SUCCEEDED').length;
      },
      { timeout: 60_000, interval: 50 },
    )
    .toBe(count);
  return jobs;
}

describe.each(flavours)('asynchronous ingest and jobs (%s)', (db) => {
  it('wait: false stores at once; the subscription streams progress and completion; the image becomes READY', async () => {
    const server = await startTestServer({ db, engine: new FakeBlipEngine({ delayMs: 20 }) });
    const client = wsClient(server.url);
    try {
      // Every job's updates, subscribed before the ingest so none is missed.
      const all = collect<{ jobUpdates: JobJson }>(client, `subscription { jobUpdates { ${JOB} } }`, {}, (items) =>
        items.some((i) => i.jobUpdates.state === 'SUCCEEDED'),
      );
      await new Promise((r) => setTimeout(r, 200)); // the socket is open and subscribed
      const png = await scenePng([{ colour: 'red', shape: 'circle' }]);
      const res = await server.gql(INGEST_ASYNC, { input: { base64: png.toString('base64'), altText: 'a red circle' } });
      expect(res.errors).toBeUndefined();
      const { image, job, created } = res.data.ingestImage;
      expect(created).toBe(true);
      expect(image.status).toBe('PROCESSING');
      expect(image.caption).toBeNull();
      expect(job.kind).toBe('INGEST');
      expect(['QUEUED', 'RUNNING']).toContain(job.state);

      const updates = (await all.done).map((i) => i.jobUpdates).filter((j) => j.id === job.id);
      all.dispose();
      const running = updates.filter((u) => u.state === 'RUNNING');
      expect(running.some((u) => u.progress > 0 && u.progress < 1)).toBe(true);
      // Progress only moves forward, and the last update is the completion.
      expect(running.map((u) => u.progress)).toEqual([...running.map((u) => u.progress)].sort((a, b) => a - b));
      const last = updates[updates.length - 1]!;
      expect(last).toMatchObject({ state: 'SUCCEEDED', progress: 1, error: null, image: { id: image.id, status: 'READY' } });
      expect(last.image!.caption).toMatch(/red/);

      // A subscription to one job: its current (final) state, then it ends.
      const one = collect<{ jobUpdates: JobJson }>(client, `subscription($id: ID!) { jobUpdates(id: $id) { id state } }`, { id: job.id });
      expect(await one.done).toEqual([{ jobUpdates: { id: job.id, state: 'SUCCEEDED' } }]);

      const found = await server.gql(`{ searchImages(text: "red circle", first: 1) { edges { node { id status } } } }`);
      expect(found.data.searchImages.edges[0].node).toEqual({ id: image.id, status: 'READY' });
      expect((await server.gql(`query($id: ID!) { job(id: $id) { state image { id } } }`, { id: job.id })).data.job).toEqual({ state: 'SUCCEEDED', image: { id: image.id } });

      // The same bytes again: the stored image, nothing new queued.
      const again = await server.gql(INGEST_ASYNC, { input: { base64: png.toString('base64') } });
      expect(again.data.ingestImage).toMatchObject({ created: false, image: { id: image.id, status: 'READY' } });
      expect((await server.gql(JOBS, {})).data.jobs.totalCount).toBe(1);

      // A corrupt file is refused before anything is stored or queued.
      const bad = await server.gql(INGEST_ASYNC, { input: { base64: png.subarray(0, 60).toString('base64') } });
      expect(bad.errors?.[0]?.extensions?.code).toBe('UNSUPPORTED_IMAGE');
      expect((await server.gql(JOBS, {})).data.jobs.totalCount).toBe(1);
    } finally {
      await client.dispose();
      await server.dispose();
    }
  });

  it('EXPECTED FAILURE - a job that fails every attempt is FAILED with its error, and leaves no half-made image', async () => {
    /** Captions fail, as a broken model would: every attempt of the job fails. */
    class FailingCaptions extends FakeBlipEngine {
      override async caption(_image: LoadedImage, _options?: CaptionOptions): Promise<string> {
        throw new InferenceError('the decoder graph failed');
      }
    }
    const server = await startTestServer({ db, engine: new FailingCaptions(), env: { JOB_MAX_ATTEMPTS: '2' } });
    try {
      const res = await server.gql(INGEST_ASYNC, { input: { base64: (await distinctPng(7)).toString('base64') } });
      const { image, job } = res.data.ingestImage;
      await expect
        .poll(async () => (await server.gql(`query($id: ID!) { job(id: $id) { state } }`, { id: job.id })).data.job.state, { timeout: 20_000, interval: 50 })
        .toBe('FAILED');
      const failed = (await server.gql(`query($id: ID!) { job(id: $id) { ${JOB} } }`, { id: job.id })).data.job;
      expect(failed).toMatchObject({ state: 'FAILED', attempts: 2, image: null });
      expect(failed.error).toMatch(/decoder graph failed|[Ii]nference/);
      expect((await server.gql(`query($id: ID!) { image(id: $id) { id } }`, { id: image.id })).data.image).toBeNull();
      expect((await server.gql(`{ images { totalCount } }`)).data.images.totalCount).toBe(0);
      const hash = createHash('sha256').update(await distinctPng(7)).digest('hex');
      expect((await server.gql(`query($h: [String!]!) { imagesBySha256(sha256: $h) { id } }`, { h: [hash] })).data.imagesBySha256).toEqual([]);
      // An unknown job: null over HTTP, NOT_FOUND from the subscription.
      expect((await server.gql(`{ job(id: "00000000-0000-4000-8000-000000000000") { id } }`)).data.job).toBeNull();
      const client = wsClient(server.url);
      await expect(collect(client, `subscription { jobUpdates(id: "nope") { id } }`, {}).done).rejects.toThrow(/NOT_FOUND/);
      await client.dispose();
    } finally {
      await server.dispose();
    }
  });

  it('ingestImages takes several inputs; each succeeds or fails on its own; imagesBySha256 finds them', async () => {
    const server = await startTestServer({ db });
    try {
      const pngs = await Promise.all([0, 1, 2].map(distinctPng));
      const pngsLater = await Promise.all([3, 4].map(distinctPng));
      const res = await server.gql(
        `mutation($inputs: [IngestImageInput!]!) { ingestImages(inputs: $inputs) { results { created image { id sha256 status } error { code message } } } }`,
        { inputs: [{ base64: pngs[0]!.toString('base64') }, { base64: 'bm90IGFuIGltYWdl' }, { base64: pngs[1]!.toString('base64') }, { base64: pngs[0]!.toString('base64') }] },
      );
      expect(res.errors).toBeUndefined();
      const results = res.data.ingestImages.results;
      expect(results.map((r: { created: boolean }) => r.created)).toEqual([true, false, true, false]);
      expect(results[1]).toMatchObject({ image: null, error: { code: 'UNSUPPORTED_IMAGE' } });
      expect(results[0].image.status).toBe('READY');
      expect(results[3].image.id).toBe(results[0].image.id);
      const hashes = [results[0].image.sha256, results[2].image.sha256, 'a'.repeat(64)];
      const found = await server.gql(`query($h: [String!]!) { imagesBySha256(sha256: $h) { id sha256 } }`, { h: hashes });
      expect(found.data.imagesBySha256.map((i: { sha256: string }) => i.sha256).sort()).toEqual(hashes.slice(0, 2).sort());
      const badHash = await server.gql(`{ imagesBySha256(sha256: ["XYZ"]) { id } }`);
      expect(badHash.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

      // wait: false: each stored at once with its own job; the jobs finish them.
      const later = await server.gql(
        `mutation($inputs: [IngestImageInput!]!) { ingestImages(inputs: $inputs, wait: false) { results { created image { id status } job { id kind } error { code } } } }`,
        { inputs: pngsLater.map((png) => ({ base64: png.toString('base64') })) },
      );
      expect(later.errors).toBeUndefined();
      const queued = later.data.ingestImages.results;
      expect(queued.map((r: { created: boolean; image: { status: string }; job: { kind: string } }) => [r.created, r.image.status, r.job.kind])).toEqual([
        [true, 'PROCESSING', 'INGEST'],
        [true, 'PROCESSING', 'INGEST'],
      ]);
      await waitForJobs(server, 2);
      expect((await server.gql(`{ images { totalCount } }`)).data.images.totalCount).toBe(4);
    } finally {
      await server.dispose();
    }
  });

  it('a graceful restart in the middle of queued jobs loses none; jobs pages hold', async () => {
    const first = await startTestServer({ db, engine: new FakeBlipEngine({ delayMs: 150 }) });
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await first.gql(INGEST_ASYNC, { input: { base64: (await distinctPng(i)).toString('base64') } });
      ids.push(res.data.ingestImage.image.id);
    }
    // Stopped while most are still queued (one is running: it goes back to the queue).
    await first.stop();
    const second = await startTestServer({ reuse: { dataDir: first.dataDir, env: first.env }, engine: new FakeBlipEngine() });
    try {
      const jobs = await waitForJobs(second, 8);
      expect(jobs.map((j) => j.image!.id).sort()).toEqual([...ids].sort());
      expect(jobs.every((j) => j.image!.status === 'READY' && j.progress === 1)).toBe(true);
      expect((await second.gql(`{ images(first: 50) { totalCount } }`)).data.images.totalCount).toBe(8);
      expect((await second.gql(`{ serviceInfo { indexedImages } }`)).data.serviceInfo.indexedImages).toBe(8);
      // Keyset pages of jobs: newest first, no repeats.
      const page1 = (await second.gql(JOBS, { first: 5 })).data.jobs;
      const page2 = (await second.gql(JOBS, { first: 5, after: page1.pageInfo.endCursor })).data.jobs;
      expect(page1.pageInfo.hasNextPage).toBe(true);
      expect(page2.pageInfo.hasNextPage).toBe(false);
      expect(new Set([...page1.edges, ...page2.edges].map((e: { node: JobJson }) => e.node.id)).size).toBe(8);
      expect((await second.gql(JOBS, { after: 'bm9wZQ' })).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    } finally {
      await second.dispose();
    }
  });

  it('re-embedding after a model change runs as a visible job', async () => {
    const first = await startTestServer({ db });
    for (let i = 0; i < 3; i++) await first.gql(`mutation($input: IngestImageInput!) { ingestImage(input: $input) { created } }`, { input: { base64: (await distinctPng(i)).toString('base64') } });
    await first.stop();
    const second = await startTestServer({ reuse: { dataDir: first.dataDir, env: first.env }, engine: new FakeBlipEngine({ modelId: 'fake-colour-v2' }) });
    try {
      const [job] = await waitForJobs(second, 1, 'REEMBED');
      expect(job).toMatchObject({ kind: 'REEMBED', state: 'SUCCEEDED', done: 3, total: 3, progress: 1, image: null });
      expect((await second.gql(`{ serviceInfo { indexedImages } }`)).data.serviceInfo.indexedImages).toBe(3);
    } finally {
      await second.dispose();
    }
  });

  // One flavour (PostgreSQL when it runs): two child processes take tens of seconds on a loaded
  // machine; the graceful restart above covers both stores.
  it.runIf(db === flavours[flavours.length - 1])('SIGKILL of a real server process mid-queue: a restart finishes every acknowledged image', async () => {
    const probe = await startTestServer({ db });
    await probe.stop(); // a fresh data dir (and PG schema) with migrations applied
    const env = { ...probe.env, FAKE_DELAY_MS: '100', JOB_LEASE_MS: '1000', JOB_POLL_MS: '100' };
    const startChild = async (): Promise<{ child: ChildProcess; url: string }> => {
      const child = spawn(process.execPath, ['--import', 'tsx', CHILD], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /READY (\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        child.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
      });
      return { child, url: `http://127.0.0.1:${port}` };
    };
    const killed = await startChild();
    const acknowledged: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await postGraphql<{ ingestImage: { image: { id: string } } }>(killed.url, INGEST_ASYNC, { input: { base64: (await distinctPng(100 + i)).toString('base64') } });
      acknowledged.push(res.data!.ingestImage.image.id);
    }
    const exited = new Promise((r) => killed.child.once('exit', r));
    killed.child.kill('SIGKILL');
    await exited;
    const restarted = await startChild();
    try {
      const jobs = await waitForJobs({ gql: (q, v) => postGraphql(restarted.url, q, v) }, 6);
      expect(jobs.map((j) => j.image!.id).sort()).toEqual([...acknowledged].sort());
      expect(jobs.every((j) => j.image!.status === 'READY')).toBe(true);
    } finally {
      const stopped = new Promise((r) => restarted.child.once('exit', r));
      restarted.child.kill('SIGTERM');
      await stopped;
      await probe.dispose();
    }
  }, 120_000);
});
