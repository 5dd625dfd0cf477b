import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { postGraphql, type GqlResponse } from './test-server.js';

/** test/crash/crash-child.ts: the application with the fake engine, as its own process. */
export const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'crash', 'crash-child.ts');

export interface ChildServer {
  child: ChildProcess;
  url: string;
  /** Everything it printed on stderr (a refused start says why there). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read each response by the shape their query asks for
  gql<T = any>(query: string, variables?: Record<string, unknown>): Promise<GqlResponse<T>>;
  /** Sends the signal and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts a real server process (ROLE and the rest from `env`); resolves once it prints READY. */
export async function startChildServer(env: Record<string, string>): Promise<ChildServer> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /READY (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    child,
    url,
    gql: (query, variables) => postGraphql(url, query, variables),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
