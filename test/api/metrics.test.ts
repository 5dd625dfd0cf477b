import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { startApplication } from '../../src/app.js';
import { loadConfig } from '../../src/config/load-config.js';
import { createLogger } from '../../src/lib/logger.js';
import { createBlipEngine } from '../../src/ml/create-blip-engine.js';
import { FakeBlipEngine } from '../helpers/fake-blip-engine.js';
import { scenePng } from '../helpers/images.js';
import { parsePrometheusText, sampleValue as sample, type Family } from '../helpers/prometheus-text.js';
import { postGraphql, startTestServer } from '../helpers/test-server.js';

/** /metrics over HTTP, parsed as Prometheus text (a reader that throws on malformed input). */
async function scrape(url: string): Promise<Map<string, Family>> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(await res.text());
}

describe('/metrics', () => {
  it('parses as Prometheus text, and its counters move with the work', async () => {
    const server = await startTestServer();
    try {
      const before = await scrape(server.url);
      for (const name of ['blip_http_request_duration_seconds', 'blip_graphql_resolver_duration_seconds', 'blip_inference_duration_seconds']) {
        expect(before.get(name)?.type).toBe('histogram');
      }
      expect(sample(before, 'blip_images_ingested_total')).toBe(0);
      expect(sample(before, 'blip_jobs', { kind: 'INGEST', state: 'QUEUED' })).toBe(0);

      const ingest = `mutation($input: IngestImageInput!, $wait: Boolean) { ingestImage(input: $input, wait: $wait) { job { id } } }`;
      await server.gql(ingest, { input: { base64: (await scenePng([{ colour: 'red', shape: 'circle' }])).toString('base64') } });
      await server.gql(ingest, { input: { base64: (await scenePng([{ colour: 'blue', shape: 'circle' }])).toString('base64') } });
      await server.gql(ingest, { input: { base64: (await scenePng([{ colour: 'green', shape: 'square' }])).toString('base64') }, wait: false });
      const bad = await server.gql(ingest, { input: { base64: 'bm90IGFuIGltYWdl' } });
      expect(bad.errors?.[0]?.extensions?.code).toBe('UNSUPPORTED_IMAGE');
      await expect.poll(async () => (await server.gql(`{ serviceInfo { indexedImages } }`)).data.serviceInfo.indexedImages).toBe(3);

      const after = await scrape(server.url);
      expect(sample(after, 'blip_images_ingested_total', { mode: 'sync' })).toBe(2);
      expect(sample(after, 'blip_images_ingested_total', { mode: 'async' })).toBe(1);
      expect(sample(after, 'blip_ingest_failures_total', { mode: 'sync' })).toBe(1);
      expect(sample(after, 'blip_jobs', { kind: 'INGEST', state: 'SUCCEEDED' })).toBe(1);
      expect(sample(after, 'blip_jobs', { kind: 'INGEST', state: 'QUEUED' })).toBe(0);
      expect(sample(after, 'blip_index_vectors')).toBe(3);
      expect(sample(after, 'blip_graphql_resolver_duration_seconds', { type: 'Mutation', field: 'ingestImage', outcome: 'ok' })).toBe(3);
      expect(sample(after, 'blip_graphql_resolver_duration_seconds', { type: 'Mutation', field: 'ingestImage', outcome: 'error' })).toBe(1);
      const graphqlRequests = (f: Map<string, Family>) => sample(f, 'blip_http_request_duration_seconds', { method: 'POST', route: '/graphql', status: '200' });
      expect(graphqlRequests(after) - graphqlRequests(before)).toBeGreaterThanOrEqual(5);
      // The previous scrape is itself counted.
      expect(sample(after, 'blip_http_request_duration_seconds', { route: '/metrics' })).toBeGreaterThanOrEqual(1);
    } finally {
      await server.dispose();
    }
  });

  it('times inference per graph (the real engine, tiny fixture)', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-metrics-'));
    const config = loadConfig({ DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', SEED_SAMPLES: 'false', LOG_LEVEL: 'silent' });
    const app = await startApplication(
      config,
      (metrics) => createBlipEngine({ modelDir: 'test/fixtures/tiny-random', workers: 1, onJobDone: (graph, s) => metrics.inferenceDuration.observe({ graph }, s) }),
      createLogger('silent'),
    );
    const url = `http://127.0.0.1:${app.port}`;
    try {
      const res = await postGraphql(url, `mutation($b: String!) { ingestImage(input: { base64: $b }) { created } }`, {
        b: (await scenePng([{ colour: 'red', shape: 'circle' }])).toString('base64'),
      });
      expect(res.errors).toBeUndefined();
      const families = await scrape(url);
      const graphs = families.get('blip_inference_duration_seconds')!.samples.filter((s) => s.name.endsWith('_count') && s.value > 0).map((s) => s.labels.graph);
      // The ingest ran the vision encoder(s), the caption decoding and the ITM match.
      expect(graphs).toEqual(expect.arrayContaining(['generate', 'itm']));
      expect(graphs.length).toBeGreaterThanOrEqual(3);
      expect(families.get('blip_inference_queue')!.samples.map((s) => [s.labels.lane, s.value])).toEqual([['interactive', 0], ['background', 0]]);
    } finally {
      await app.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('writes one access-log line per request, with its duration', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-access-log-'));
    const config = loadConfig({ DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', SEED_SAMPLES: 'false' });
    const app = await startApplication(config, new FakeBlipEngine(), pino({ level: 'info' }, sink));
    const url = `http://127.0.0.1:${app.port}`;
    try {
      await postGraphql(url, `{ serviceInfo { modelId } }`);
      await postGraphql(url, `{ images { totalCount } }`);
      await fetch(`${url}/images/00000000-0000-4000-8000-000000000000`);
      await fetch(`${url}/healthz`);
      await expect.poll(() => lines.filter((l) => l.msg === 'request').length).toBe(3);
      const requests = lines.filter((l) => l.msg === 'request');
      expect(requests.map((l) => [l.method, l.url, l.status])).toEqual([
        ['POST', '/graphql', 200],
        ['POST', '/graphql', 200],
        ['GET', '/images/00000000-0000-4000-8000-000000000000', 404],
      ]);
      for (const l of requests) expect(typeof l.ms === 'number' && l.ms >= 0).toBe(true);
    } finally {
      await app.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
