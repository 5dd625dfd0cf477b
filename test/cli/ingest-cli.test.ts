import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeBlipEngine } from '../helpers/fake-blip-engine.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const MAIN = path.resolve('src/cli/main.ts');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as a user would; `interruptAfter`: SIGINT once that many files were added. */
function runCli(args: string[], interruptAfter?: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (interruptAfter !== undefined && !sent && (stderr.match(/ added /g) ?? []).length >= interruptAfter) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function distinctPng(i: number): Promise<Buffer> {
  return sharp({ create: { width: 16, height: 16, channels: 3, background: { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 53) % 256 } } })
    .png()
    .toBuffer();
}

const summary = (out: string) => {
  const m = /(done|interrupted): (\d+) added, (\d+) already stored, (\d+) duplicates, (\d+) rejected \((\d+) files\)/.exec(out);
  if (!m) throw new Error(`no summary in: ${out}`);
  return { state: m[1], added: Number(m[2]), stored: Number(m[3]), duplicates: Number(m[4]), rejected: Number(m[5]), files: Number(m[6]) };
};

describe('npm run cli -- ingest DIR, over real HTTP', () => {
  let server: TestServer;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-cli-'));
  const UNIQUE = 189;

  beforeAll(async () => {
    server = await startTestServer({ engine: new FakeBlipEngine({ delayMs: 5 }) });
    // 200 image files: 189 distinct PNGs (in two folders), 9 copies, 1 JPEG with an EXIF
    // description, 1 corrupt file (sorted last); plus a sidecar alt text and a file that is not an image.
    fs.mkdirSync(path.join(dir, 'sub'));
    for (let i = 0; i < UNIQUE; i++) fs.writeFileSync(path.join(dir, i % 2 ? 'sub' : '', `img-${String(i).padStart(3, '0')}.png`), await distinctPng(i));
    for (let i = 0; i < 9; i++) fs.copyFileSync(path.join(dir, `img-${String(i * 2).padStart(3, '0')}.png`), path.join(dir, `copy-${i}.png`));
    fs.writeFileSync(path.join(dir, 'sub', 'img-001.txt'), 'a sidecar description\n');
    const jpeg = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#123456' } })
      .withExif({ IFD0: { ImageDescription: 'described in EXIF' } })
      .jpeg()
      .toBuffer();
    fs.writeFileSync(path.join(dir, 'exif.jpg'), jpeg);
    fs.writeFileSync(path.join(dir, 'zz-corrupt.png'), (await distinctPng(999)).subarray(0, 50));
    fs.writeFileSync(path.join(dir, 'notes.md'), 'not an image');
  });

  afterAll(async () => {
    await server.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('imports 200 files, is interrupted, resumes without re-uploading, and reports duplicates and the corrupt file', async () => {
    const args = ['ingest', dir, '--url', server.url, '--concurrency', '2', '--batch', '4'];
    const first = await runCli(args, 40);
    expect(first.code).toBe(130);
    const s1 = summary(first.stdout);
    expect(s1).toMatchObject({ state: 'interrupted', stored: 0, files: 200 });
    expect(s1.added).toBeGreaterThanOrEqual(40);
    expect(s1.added).toBeLessThan(UNIQUE + 1);
    expect(first.stdout).toMatch(/run the same command again to resume/);
    // Plain progress lines (stderr is not a terminal here), with rate and ETA.
    expect(first.stderr).toMatch(/^\[\d+\/200\] [\d.]+ files\/s ETA \d+s added \S+\.png$/m);

    const second = await runCli(args);
    expect(second.code).toBe(1); // the corrupt file
    const s2 = summary(second.stdout);
    expect(s2).toEqual({ state: 'done', added: UNIQUE + 1 - s1.added, stored: s1.added, duplicates: 9, rejected: 1, files: 200 });
    expect(second.stdout).toMatch(/rejected zz-corrupt\.png: UNSUPPORTED_IMAGE/);
    expect(second.stderr).toMatch(/^\[200\/200\] /m);

    const alts: string[] = [];
    let after: string | null = null;
    let total: number;
    do {
      const page: { totalCount: number; edges: Array<{ node: { altText: string | null } }>; pageInfo: { hasNextPage: boolean; endCursor: string } } = (
        await server.gql(`query($after: String) { images(first: 100, after: $after) { totalCount edges { node { altText } } pageInfo { hasNextPage endCursor } } }`, { after })
      ).data.images;
      total = page.totalCount;
      alts.push(...page.edges.flatMap((e) => (e.node.altText ? [e.node.altText] : [])));
      after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
    } while (after);
    expect(total).toBe(UNIQUE + 1);
    alts.sort();
    expect(alts).toEqual(['a sidecar description', 'described in EXIF']);

    // A third run uploads nothing.
    const third = await runCli(args);
    expect(summary(third.stdout)).toMatchObject({ added: 0, stored: UNIQUE + 1, duplicates: 9, rejected: 1 });
  });

  it('sends --key as Authorization: Bearer', async () => {
    const seen: Array<string | undefined> = [];
    const fake = http.createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ data: { serviceInfo: { acceptedMimeTypes: ['image/png'], maxUploadBytes: 1000 } } }));
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-cli-empty-'));
    try {
      const run = await runCli(['ingest', empty, '--url', `http://127.0.0.1:${(fake.address() as { port: number }).port}`, '--key', 'k-123']);
      expect(run.code).toBe(0);
      expect(summary(run.stdout)).toMatchObject({ added: 0, files: 0 });
      expect(seen).toEqual(['Bearer k-123']);
    } finally {
      fake.close();
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });
});
