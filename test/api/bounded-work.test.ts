import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlipEngine } from '../../src/ml/blip-engine.js';
import { createBlipEngine } from '../../src/ml/create-blip-engine.js';
import { FakeBlipEngine } from '../helpers/fake-blip-engine.js';
import { scenePng } from '../helpers/images.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const INGEST = `mutation($input: IngestImageInput!) { ingestImage(input: $input) { image { id } } }`;
const aliases = (n: number, field: (i: number) => string) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: ${field(i)}`).join(' ')} }`;
const png = (i: number) => scenePng([{ colour: (['red', 'green', 'blue', 'yellow', 'purple', 'orange'] as const)[i % 6]!, shape: i % 2 ? 'circle' : 'square', size: i > 5 ? 'small' : 'large' }], (['white', 'gray', 'black'] as const)[i % 3]);

describe('model work per request is counted before it runs', () => {
  let server: TestServer;
  let engine: FakeBlipEngine;
  let id: string;
  beforeAll(async () => {
    engine = new FakeBlipEngine();
    server = await startTestServer({ engine, env: { MAX_QUERY_COMPLEXITY: '1000000' } });
    id = (await server.gql(INGEST, { input: { base64: (await png(0)).toString('base64') } })).data.ingestImage.image.id;
  });
  afterAll(async () => server?.dispose());

  it('EXPECTED FAILURE - 1000 aliased askImage calls: QUERY_TOO_EXPENSIVE, no question answered', async () => {
    const before = engine.calls.answer;
    const res = await server.gql(aliases(1000, () => `askImage(imageId: "${id}", question: "what colour?") { answer }`));
    expect(res.status).toBe(400);
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_EXPENSIVE', work: { generations: 1000, decodes: 1000 }, limits: { generations: 4 } });
    expect(engine.calls.answer).toBe(before);
    // Within the budget it runs, and the server kept serving.
    expect((await server.gql(aliases(4, () => `askImage(imageId: "${id}", question: "what colour?") { answer }`))).errors).toBeUndefined();
  });

  it('EXPECTED FAILURE - searches whose ITM candidates add up past the budget, also through fragments and variables', async () => {
    const before = engine.calls.itmScores;
    const three = aliases(3, () => `searchImages(text: "red", candidates: 500) { totalCount }`);
    expect((await server.gql(three)).errors?.[0]?.extensions?.code).toBe('QUERY_TOO_EXPENSIVE');
    const viaFragment = `query($c: Int) { ...S a: searchImages(text: "b", candidates: $c) { totalCount } } fragment S on Query { s: searchImages(text: "a", candidates: $c) { totalCount } }`;
    expect((await server.gql(viaFragment, { c: 501 })).errors?.[0]?.extensions?.code).toBe('QUERY_TOO_EXPENSIVE');
    expect(engine.calls.itmScores).toBe(before);
    // KEYWORD without re-ranking costs no ITM; one search of 500 fits.
    expect((await server.gql(aliases(50, () => `searchImages(text: "red", mode: KEYWORD) { totalCount }`))).errors).toBeUndefined();
    expect((await server.gql(`{ searchImages(text: "red", candidates: 500) { totalCount } }`)).errors).toBeUndefined();
  });

  it('EXPECTED FAILURE - ten ingests in one request: over the decode budget', async () => {
    const b64 = (await png(1)).toString('base64');
    const res = await server.gql(`mutation { ${Array.from({ length: 10 }, (_, i) => `i${i}: ingestImage(input: { base64: "${b64}" }) { image { id } }`).join(' ')} }`);
    expect(res.errors?.[0]?.extensions?.code).toBe('QUERY_TOO_EXPENSIVE');
    expect((await server.gql(`{ images { totalCount } }`)).data.images.totalCount).toBe(1);
  });
});

describe('rate limits (rate-limiter-flexible, in memory)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { AUTH: 'required', RATE_LIMIT_PER_MINUTE: '3', RATE_LIMIT_KEY_PER_MINUTE: '2' } });
  });
  afterAll(async () => server?.dispose());

  it('EXPECTED FAILURE - per address: the 4th keyless request in a minute gets 429 RATE_LIMITED with Retry-After', async () => {
    for (let i = 0; i < 3; i++) expect((await server.gql('{ __typename }')).status).toBe(401);
    const res = await fetch(`${server.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ __typename }"}' });
    expect(res.status).toBe(429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await res.json()) as { errors: Array<{ extensions: { code: string } }> }).errors[0]!.extensions.code).toBe('RATE_LIMITED');
    expect((await fetch(`${server.url}/images/00000000-0000-4000-8000-000000000000`)).status).toBe(429);
  });

  it('EXPECTED FAILURE - per key, wherever it comes from', async () => {
    const headers = { authorization: `Bearer ${await server.createKey('read')}` };
    for (let i = 0; i < 2; i++) expect((await server.gql('{ __typename }', {}, headers)).status).toBe(200);
    const res = await server.gql('{ __typename }', {}, headers);
    expect(res.status).toBe(429);
    expect(res.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    // Another key has its own budget.
    expect((await server.gql('{ __typename }', {}, { authorization: `Bearer ${await server.createKey('read')}` })).status).toBe(200);
  });
});

// Shared stores: the counter is kept outside the process, so it survives a restart.
const sharedStores: Array<{ store: string; skip: boolean; options: { db?: 'postgresql'; env: Record<string, string> } }> = [
  { store: 'postgres', skip: process.env.BLIP_TEST_PG === 'off', options: { db: 'postgresql' as const, env: {} } },
  { store: 'redis', skip: process.env.BLIP_TEST_REDIS === 'off', options: { env: { REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379' } } },
];

describe.each(sharedStores)('rate limits shared through RATE_LIMIT_STORE=$store', ({ store, skip, options }) => {
  let server: TestServer;
  beforeAll(async () => {
    if (skip) return;
    server = await startTestServer({ ...options, env: { ...options.env, AUTH: 'required', RATE_LIMIT_STORE: store, RATE_LIMIT_KEY_PER_MINUTE: '2' } });
  });
  afterAll(async () => server?.dispose());

  it.skipIf(skip)('EXPECTED FAILURE - the third request of a key gets 429; the counter survives a restart (it is in the store)', async () => {
    const headers = { authorization: `Bearer ${await server.createKey('read')}` };
    expect((await server.gql('{ __typename }', {}, headers)).status).toBe(200);
    await server.stop();
    const again = await startTestServer({ reuse: { dataDir: server.dataDir, env: server.env } });
    try {
      expect((await again.gql('{ __typename }', {}, headers)).status).toBe(200);
      const res = await again.gql('{ __typename }', {}, headers);
      expect(res.status).toBe(429);
      expect(res.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    } finally {
      await again.stop();
    }
  });
});

describe('overload answers quickly', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      engine: new FakeBlipEngine({ delayMs: 1500 }),
      env: { MAX_CONCURRENT_INGESTS: '1', MAX_QUEUED_WORK: '1', HEALTH_DEGRADED_MS: '200' },
    });
  });
  afterAll(async () => server?.dispose());

  it('EXPECTED FAILURE - ingests beyond the running and waiting slots get SERVICE_UNAVAILABLE at once; /healthz says degraded meanwhile', async () => {
    const bodies = await Promise.all([2, 3, 4, 5].map(async (i) => (await png(i)).toString('base64')));
    const started = performance.now();
    const answers = bodies.map(async (b) => {
      const res = await server.gql(INGEST, { input: { base64: b } });
      return { code: res.errors?.[0]?.extensions?.code ?? 'OK', ms: performance.now() - started };
    });
    // Once an embedding has waited past HEALTH_DEGRADED_MS (200 ms) of its 1.5 s.
    const health = async () => ((await (await fetch(`${server.url}/healthz`)).json()) as { status: string }).status;
    await expect.poll(health, { timeout: 2500, interval: 25 }).toBe('degraded');
    const results = await Promise.all(answers);
    const refused = results.filter((r) => r.code === 'SERVICE_UNAVAILABLE');
    expect(refused).toHaveLength(2);
    expect(results.filter((r) => r.code === 'OK')).toHaveLength(2);
    // Refused before any model work: well under one ingest's 1.5 s.
    for (const r of refused) expect(r.ms).toBeLessThan(1200);
    expect(((await (await fetch(`${server.url}/healthz`)).json()) as { status: string }).status).toBe('ok');
  });
});

describe('sockets are bounded', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { HEADERS_TIMEOUT_MS: '500', MAX_CONNECTIONS: '4' } });
  });
  afterAll(async () => server?.dispose());

  const open = () =>
    new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect(server.app.port, '127.0.0.1', () => resolve(socket));
      socket.on('error', reject);
    });
  const closed = (socket: net.Socket) => new Promise<number>((resolve) => {
    const t = performance.now();
    socket.on('close', () => resolve(performance.now() - t));
    socket.resume();
  });

  it('EXPECTED FAILURE - a client that never finishes its headers is cut off after HEADERS_TIMEOUT_MS', async () => {
    const socket = await open();
    socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n');
    const ms = await closed(socket);
    expect(ms).toBeLessThan(5000);
  });

  it('EXPECTED FAILURE - connections beyond MAX_CONNECTIONS are closed; the server serves again once they go', async () => {
    const idle = await Promise.all([open(), open(), open(), open()]);
    const extra = await open();
    await closed(extra);
    for (const s of idle) s.destroy();
    await new Promise((r) => setTimeout(r, 100));
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });
});

describe('a client that disconnects cancels its queued model work (real engine, tiny model)', () => {
  let server: TestServer;
  let answered = 0;
  let id: string;
  beforeAll(async () => {
    const real = await createBlipEngine({ modelDir: 'test/fixtures/tiny-random', workers: 1, threads: 1 });
    // Counts answers the model actually produced; everything else is the real engine.
    const counting: BlipEngine = Object.assign(Object.create(real) as BlipEngine, {
      answer: async (...args: Parameters<BlipEngine['answer']>) => {
        const out = await real.answer(...args);
        answered++;
        return out;
      },
      close: () => real.close(),
    });
    server = await startTestServer({
      engine: counting,
      env: { MAX_QUERY_COMPLEXITY: '1000000', MAX_REQUEST_GENERATIONS: '1000', MAX_REQUEST_DECODES: '1000', MAX_CONCURRENT_DECODES: '1000', MAX_QUEUED_WORK: '1000' },
    });
    id = (await server.gql(INGEST, { input: { base64: (await png(0)).toString('base64') } })).data.ingestImage.image.id;
  }, 60_000);
  afterAll(async () => server?.dispose());

  it('EXPECTED FAILURE - 1000 questions, client gone after a few: the rest never run and the next request is answered', async () => {
    const abort = new AbortController();
    const query = aliases(1000, (i) => `askImage(imageId: "${id}", question: "what is in picture ${i}?") { answer }`);
    const pending = fetch(`${server.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }), signal: abort.signal }).catch(() => null);
    await expect.poll(() => answered, { timeout: 30_000, interval: 5 }).toBeGreaterThan(3);
    abort.abort();
    await pending;
    await new Promise((r) => setTimeout(r, 1000));
    const afterCancel = answered;
    expect(afterCancel).toBeLessThan(1000);
    await new Promise((r) => setTimeout(r, 1000));
    expect(answered - afterCancel).toBeLessThanOrEqual(1); // at most the one run that had started
    const next = await server.gql(`query($id: ID!) { askImage(imageId: $id, question: "what colour?") { answer } }`, { id });
    expect(next.errors).toBeUndefined();
  }, 60_000);
});
