import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startApplication } from '../../src/app.js';
import { loadConfig } from '../../src/config/load-config.js';
import { createLogger } from '../../src/lib/logger.js';
import type { BlipEngine } from '../../src/ml/blip-engine.js';
import { FakeBlipEngine } from '../helpers/fake-blip-engine.js';

describe('GET /healthz', () => {
  it('answers 503 while the model loads, 200 once model and index are ready', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-health-'));
    const config = loadConfig({ DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', SEED_SAMPLES: 'false' });
    let release!: (engine: BlipEngine) => void;
    const engine = new Promise<BlipEngine>((r) => (release = r));
    let port = 0;
    const starting = startApplication(config, () => engine, createLogger('silent'), { onListening: (p) => (port = p) });
    await expect.poll(() => port, { timeout: 15_000 }).toBeGreaterThan(0);
    const before = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(before.status).toBe(503);
    const gql = await fetch(`http://127.0.0.1:${port}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ serviceInfo { modelId } }"}' });
    expect(((await gql.json()) as { errors: Array<{ extensions: { code: string } }> }).errors[0]!.extensions.code).toBe('SERVICE_UNAVAILABLE');
    release(new FakeBlipEngine());
    const app = await starting;
    expect(app.port).toBe(port);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    await app.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
});
