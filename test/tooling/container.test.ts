import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';

// CommonJS whose types declare an ES default export: required, so both agree on what it is.
const dockerignore = createRequire(import.meta.url)('@balena/dockerignore') as typeof import('@balena/dockerignore').default;

// No container engine runs on these machines: what can be checked without one is checked here
// (docs/operations.md, "Container"). The image itself is not built.

/** The files `docker build .` would send: the repository's files (tracked or not ignored) through .dockerignore. */
function buildContext(): string[] {
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  const ig = dockerignore({ ignorecase: false }).add(fs.readFileSync('.dockerignore', 'utf8'));
  return ig.filter(files.filter((f) => fs.existsSync(f)));
}

describe('container', () => {
  it('the build context holds what the Dockerfile copies, and no tests, tools, data or secrets', () => {
    const context = buildContext();
    const top = new Set(context.map((f) => f.split('/')[0]));
    expect([...top].sort()).toEqual(
      ['models', 'package-lock.json', 'package.json', 'prisma', 'prisma.config.ts', 'samples', 'schema.graphql', 'scripts', 'src', 'tsconfig.build.json', 'tsconfig.json', 'web'].sort(),
    );
    expect(context).toEqual(expect.arrayContaining(['src/main.ts', 'models/blip-scenes/manifest.json', 'web/index.html', 'prisma/postgresql/schema.prisma']));
    expect(context.filter((f) => /(^|\/)(test|tools|node_modules|dist|data)\/|\.env$|^\.git/.test(f))).toEqual([]);
    // Every COPY source of the build stage is in the context.
    const dockerfile = fs.readFileSync('Dockerfile', 'utf8');
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    for (const source of sources) expect(context.some((f) => f === source || f.startsWith(`${source.replace(/\/$/, '')}/`)), source).toBe(true);
  });

  it('runs node dist/main.js as PID 1 (exec form) from a runtime stage with production dependencies only', () => {
    const dockerfile = fs.readFileSync('Dockerfile', 'utf8');
    const stages = dockerfile.split(/^FROM /m).slice(1);
    expect(stages).toHaveLength(2);
    const runtime = stages[1]!;
    expect(runtime.match(/^CMD (.+)$/m)?.[1]).toBe('["node", "--no-memory-reducer", "dist/main.js"]');
    expect(runtime).not.toMatch(/^ENTRYPOINT/m);
    expect(runtime).toMatch(/^VOLUME \["\/data"\]$/m);
    expect(runtime).toMatch(/DATA_DIR=\/data/);
    expect(runtime).toMatch(/^COPY models \.\/models$/m);
    expect(stages[0]).toMatch(/npm prune --omit=dev/);
    expect(runtime).not.toMatch(/npm (ci|install)/);
  });

  it('every way of starting the service gives node the same flags, and the bench measures with them', () => {
    // V8's memory reducer paused the event loop for 70-120 ms while the models ran (docs/performance.md,
    // "Event-loop stalls"): the service's node runs without it, however it is started.
    const scripts = (JSON.parse(fs.readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts;
    const flagsBefore = (command: string, entry: string) => {
      const words = command.split(/\s+/);
      const runner = words.findIndex((w) => w === 'node' || w === 'tsx');
      expect(words.indexOf(entry), command).toBeGreaterThan(runner);
      return words.slice(runner + 1, words.indexOf(entry));
    };
    const cmd = JSON.parse(fs.readFileSync('Dockerfile', 'utf8').match(/^CMD (\[.+\])$/m)![1]!) as string[];
    const expected = ['--no-memory-reducer'];
    expect(cmd.slice(1, -1)).toEqual(expected);
    for (const [name, entry] of [['start', 'src/main.ts'], ['worker', 'src/main.ts'], ['start:prod', 'dist/main.js'], ['worker:prod', 'dist/main.js'], ['bench', 'bench/ml-bench.ts']] as const) {
      expect(flagsBefore(scripts[name]!, entry), name).toEqual(expected);
    }
  });

  it('compose.yaml parses, and wires the service to PostgreSQL with volumes', () => {
    const compose = parseYaml(fs.readFileSync('compose.yaml', 'utf8'), { strict: true, uniqueKeys: true }) as {
      services: Record<string, { build?: string; image?: string; environment?: Record<string, string>; volumes?: string[]; depends_on?: Record<string, { condition: string }>; healthcheck?: unknown; ports?: string[] }>;
      volumes: Record<string, unknown>;
    };
    const app = compose.services['blip-search']!;
    const db = compose.services.postgres!;
    expect(app.build).toBe('.');
    expect(app.environment?.DATABASE_URL).toMatch(/^postgres:\/\/(\w+):(\w+)@postgres:5432\/(\w+)$/);
    const [, user, password, name] = /^postgres:\/\/(\w+):(\w+)@postgres:5432\/(\w+)$/.exec(app.environment!.DATABASE_URL!)!;
    expect(db.environment).toMatchObject({ POSTGRES_USER: user, POSTGRES_PASSWORD: password, POSTGRES_DB: name });
    expect(db.image).toMatch(/^postgres:\d+/);
    expect(db.healthcheck).toBeDefined();
    expect(app.depends_on?.postgres?.condition).toBe('service_healthy');
    const named = (vols: string[] = []) => vols.map((v) => v.split(':')[0]);
    for (const v of [...named(app.volumes), ...named(db.volumes)]) expect(Object.keys(compose.volumes)).toContain(v);
    expect(app.volumes).toContain('blip-data:/data');
    expect(app.ports).toContain('4000:4000');
    // The roles (docs/scaling.md): same database and originals as the all-in-one service, each
    // replica's index outside the shared volume.
    const roles = compose.services as Record<string, { profiles?: string[]; environment?: Record<string, string>; volumes?: string[] }>;
    expect(roles.api).toMatchObject({ profiles: ['scale'], environment: { ROLE: 'api', DATABASE_URL: app.environment!.DATABASE_URL, DATA_DIR: '/data' } });
    expect(roles.api!.environment!.INDEX_DIR).not.toMatch(/^\/data/);
    expect(roles.worker).toMatchObject({ profiles: ['scale'], environment: { ROLE: 'worker', DATABASE_URL: app.environment!.DATABASE_URL } });
    for (const role of [roles.api!, roles.worker!]) expect(role.volumes).toContain('blip-data:/data');
  });

  it('npm run start:prod passes SIGTERM to node: node exits, nothing is left orphaned', async () => {
    // The real script line, run by npm in a folder whose dist/main.js stands in for the service.
    const script = (JSON.parse(fs.readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts['start:prod']!;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-start-prod-'));
    fs.mkdirSync(path.join(dir, 'dist'));
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'stand-in', private: true, scripts: { 'start:prod': script } }));
    fs.writeFileSync(
      path.join(dir, 'dist', 'main.js'),
      `require('fs').writeFileSync('pid', String(process.pid));
       process.on('SIGTERM', () => { require('fs').writeFileSync('stopped', 'SIGTERM'); process.exit(0); });
       setInterval(() => {}, 1000);`,
    );
    fs.writeFileSync(path.join(dir, 'dist', 'package.json'), '{"type":"commonjs"}');
    const npm = spawn('npm', ['run', '--silent', 'start:prod'], { cwd: dir, stdio: 'ignore' });
    const pidFile = path.join(dir, 'pid');
    await expect.poll(() => fs.existsSync(pidFile), { timeout: 15_000 }).toBe(true);
    const nodePid = Number(fs.readFileSync(pidFile, 'utf8'));
    const npmExited = new Promise((r) => npm.once('exit', r));
    npm.kill('SIGTERM');
    await npmExited;
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    try {
      await expect.poll(() => alive(nodePid), { timeout: 5_000 }).toBe(false);
      expect(fs.readFileSync(path.join(dir, 'stopped'), 'utf8')).toBe('SIGTERM');
    } finally {
      if (alive(nodePid)) process.kill(nodePid, 'SIGKILL'); // the orphan this test exists to catch
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('the service stops on one SIGTERM with exit code 0 (NODE_ENV=production, as in the image)', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-sigterm-'));
    const env = { ...process.env, NODE_ENV: 'production', DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', SEED_SAMPLES: 'false', LOG_LEVEL: 'info', MODEL_DIR: 'test/fixtures/tiny-random' };
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await expect.poll(() => out.includes('"msg":"ready"'), { timeout: 60_000, interval: 100 }).toBe(true);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out).toMatch(/"msg":"stopped"/);
    } finally {
      child.kill('SIGKILL');
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
