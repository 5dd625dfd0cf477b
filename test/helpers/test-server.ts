import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startApplication, type Application } from '../../src/app.js';
import { loadConfig } from '../../src/config/load-config.js';
import { createLogger } from '../../src/lib/logger.js';
import type { BlipEngine } from '../../src/ml/blip-engine.js';
import type { VisualAnswerer } from '../../src/ml/visual-answerer.js';
import { FakeBlipEngine } from './fake-blip-engine.js';

export type DbFlavour = 'sqlite' | 'postgresql';

/** The test PostgreSQL of docs/testing.md; TEST_PG_URL overrides it. */
export const PG_BASE_URL = process.env.TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A unique schema per test run, dropped afterwards. */
export async function createPgSchema(): Promise<{ url: string; drop: () => Promise<void> }> {
  const schema = `blip_test_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const client = new pg.Client({ connectionString: PG_BASE_URL });
  await client.connect();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.end();
  return {
    url: `${PG_BASE_URL}?schema=${schema}`,
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_BASE_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await c.end();
    },
  };
}

export interface TestServer {
  app: Application;
  url: string;
  dataDir: string;
  engine: BlipEngine;
  env: Record<string, string>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read each response by the shape their query asks for
  gql<T = any>(query: string, variables?: Record<string, unknown>, headers?: Record<string, string>): Promise<GqlResponse<T>>;
  /** gql with an admin key (created on first use): AUTH=local lets keyless loopback clients read and write, not delete. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as gql
  admin<T = any>(query: string, variables?: Record<string, unknown>): Promise<GqlResponse<T>>;
  /** A new key's secret, created through the application's key service (as the CLI does). */
  createKey(scope: 'read' | 'write' | 'admin', name?: string): Promise<string>;
  /** Stops the server; the data stays for a restart. */
  stop(): Promise<void>;
  /** Stops (if running) and removes the data dir and PG schema. */
  dispose(): Promise<void>;
}

export interface GqlResponse<T> {
  status: number;
  data?: T;
  errors?: Array<{ message: string; extensions?: { code?: string } & Record<string, unknown> }>;
}

export async function postGraphql<T>(
  url: string,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<GqlResponse<T>> {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { data?: T; errors?: GqlResponse<T>['errors'] };
  return { status: res.status, ...body };
}

export interface StartOptions {
  db?: DbFlavour;
  engine?: BlipEngine;
  env?: Record<string, string>;
  /** More askImage models (BLIP-2 engines); the first answers by default, as with VQA_MODEL_DIR. */
  answerers?: () => Promise<VisualAnswerer[]>;
  /** Reuse a previous server's data (restart). */
  reuse?: { dataDir: string; env: Record<string, string>; dropPg?: () => Promise<void> };
}

export async function startTestServer(options: StartOptions = {}): Promise<TestServer> {
  let dataDir = options.reuse?.dataDir;
  let env = options.reuse?.env;
  let dropPg = options.reuse?.dropPg;
  if (!dataDir || !env) {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-test-'));
    env = { DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', SEED_SAMPLES: 'false', LOG_LEVEL: 'silent', INDEX_SAVE_DELAY_MS: '50', ...options.env };
    if (options.db === 'postgresql') {
      const schema = await createPgSchema();
      env.DATABASE_URL = schema.url;
      dropPg = schema.drop;
    }
  }
  const config = loadConfig(env);
  const engine = options.engine ?? new FakeBlipEngine({ maxImagePixels: config.models.maxImagePixels });
  const app = await startApplication(config, engine, createLogger(config.logLevel),
    options.answerers ? { answerers: options.answerers, defaultAnswerer: true } : {});
  const url = `http://127.0.0.1:${app.port}`;
  let stopped = false;
  const finalDataDir = dataDir;
  const createKey = async (scope: 'read' | 'write' | 'admin', name = `test ${scope}`) => (await app.keys.create(name, scope)).secret;
  let adminKey: Promise<string> | undefined;
  return {
    app,
    url,
    dataDir,
    engine,
    env,
    gql: (query, variables, headers) => postGraphql(url, query, variables, headers),
    admin: async (query, variables) => postGraphql(url, query, variables, { authorization: `Bearer ${await (adminKey ??= createKey('admin'))}` }),
    createKey,
    stop: async () => {
      if (!stopped) await app.stop();
      stopped = true;
    },
    dispose: async () => {
      if (!stopped) await app.stop();
      stopped = true;
      fs.rmSync(finalDataDir, { recursive: true, force: true });
      await dropPg?.();
    },
  };
}
