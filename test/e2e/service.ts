import { meetsEvalTargets } from '../helpers/model-quality.js';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

export const ROOT = path.resolve(import.meta.dirname, '../..');

/** The bundled model when it is there, else the tiny random one (whose words are gibberish). */
/**
 * semantic: a trained model (not the random fixture), so results carry meaning; strict: its
 * eval.json meets the targets, so exact rankings and answers can be asserted.
 */
export function chooseModelDir(): { dir: string; semantic: boolean; strict: boolean } {
  const override = process.env.E2E_MODEL_DIR;
  const candidates = override ? [override] : ['models/blip-scenes', 'test/fixtures/tiny-random'];
  for (const c of candidates) {
    const dir = path.resolve(ROOT, c);
    const manifest = path.join(dir, 'manifest.json');
    if (!fs.existsSync(manifest)) continue;
    const { name } = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string };
    return { dir, semantic: name !== 'tiny-random', strict: name !== 'tiny-random' && meetsEvalTargets(dir) };
  }
  throw new Error(`no model found (tried ${candidates.join(', ')})`);
}

export interface ServiceProcess {
  url: string;
  dataDir: string;
  logs: string[];
  /** `npm run cli -- keys create` against this service's database; returns the secret (its last line). */
  createKey(scope: 'read' | 'write' | 'admin'): string;
  stop(): Promise<void>;
}

/**
 * The real service as a child process (`tsx src/main.ts`, or `command`, e.g. the compiled
 * `node dist/main.js`), on a free port (PORT=0; the port is read from its "listening" log line)
 * and a fresh data folder, without the sample seeding.
 */
export async function startService(
  modelDir: string,
  timeoutMs = 90_000,
  command: { bin: string; args: string[] } = { bin: path.join(ROOT, 'node_modules', '.bin', 'tsx'), args: ['src/main.ts'] },
  /** More environment for the service (e.g. VQA_MODEL_DIR). */
  extraEnv: Record<string, string> = {},
): Promise<ServiceProcess> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-e2e-data-'));
  const env = {
    ...process.env,
    PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    DATABASE_URL: '',
    SEED_SAMPLES: 'false',
    MODEL_DIR: modelDir,
    WEB_DIR: path.join(ROOT, 'web', 'dist'),
    LOG_LEVEL: 'info',
    ...extraEnv,
  };
  const child: ChildProcess = spawn(command.bin, command.args, {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  readline.createInterface({ input: child.stderr! }).on('line', (l) => logs.push(l));

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`service did not start in ${timeoutMs} ms:\n${logs.slice(-20).join('\n')}`)), timeoutMs);
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      logs.push(line);
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg?.startsWith('listening') && typeof entry.port === 'number') {
          clearTimeout(timer);
          resolve(entry.port);
        }
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`service exited with ${code} before listening:\n${logs.slice(-20).join('\n')}`));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  // /healthz answers 503 until the model is loaded and the index is ready.
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`service not ready in ${timeoutMs} ms:\n${logs.slice(-20).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }

  return {
    url,
    dataDir,
    logs,
    createKey(scope) {
      const out = execFileSync(path.join(ROOT, 'node_modules', '.bin', 'tsx'), ['src/cli/main.ts', 'keys', 'create', '--name', `e2e ${scope}`, '--scope', scope], { cwd: ROOT, env, encoding: 'utf8' });
      return out.trim().split('\n').at(-1)!;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A GraphQL call from the test itself, to learn ground truth the page does not show. */
export async function gql<T>(url: string, query: string, variables: Record<string, unknown> = {}, key?: string): Promise<T> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) };
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as { data?: T; errors?: unknown[] };
  if (body.errors?.length || !body.data) throw new Error(`GraphQL error: ${JSON.stringify(body.errors)}`);
  return body.data;
}
