import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { readAltText } from './alt-text.js';
import { ApiClient, ApiError } from './api-client.js';
import { extensionsFor, scanFolder } from './folder-scan.js';
import { IngestProgress } from './ingest-progress.js';

export interface IngestOptions {
  url: string;
  key?: string | undefined;
  concurrency: number;
  batch: number;
}

const SERVICE_INFO = `{ serviceInfo { acceptedMimeTypes maxUploadBytes } }`;
const LOOKUP = `query($sha256: [String!]!) { imagesBySha256(sha256: $sha256) { sha256 } }`;
const INGEST = `mutation($inputs: [IngestImageInput!]!) { ingestImages(inputs: $inputs) { results { created image { id } error { code message } } } }`;

const positiveInt = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError('an integer from 1 to 64');
  return n;
};

export function registerIngestCommand(program: Command): void {
  program
    .command('ingest')
    .description('upload every image under DIR (recursively); files stored already are skipped, so a second run resumes an interrupted one')
    .argument('<dir>', 'folder to import')
    .option('--url <url>', 'server URL (BLIP_URL)', process.env.BLIP_URL ?? 'http://127.0.0.1:4000')
    .option('--key <key>', 'API key, sent as "Authorization: Bearer <key>" (BLIP_API_KEY)', process.env.BLIP_API_KEY)
    .option('--concurrency <n>', 'requests in flight', positiveInt, 2)
    .option('--batch <n>', 'files per request (ingestImages; at most the server\'s MAX_REQUEST_DECODES)', positiveInt, 4)
    .action(async (dir: string, options: IngestOptions) => {
      process.exitCode = await runIngest(dir, options);
    });
}

interface Candidate {
  file: string;
  type: string;
  sha256: string;
}

/** The folder import; resolves to the exit code (0: all done, 1: some rejected or failed, 130: interrupted). */
export async function runIngest(dir: string, options: IngestOptions): Promise<number> {
  const client = new ApiClient({ url: options.url, key: options.key });
  const { serviceInfo } = await client.request<{ serviceInfo: { acceptedMimeTypes: string[]; maxUploadBytes: number } }>(SERVICE_INFO);
  const files = await scanFolder(dir, extensionsFor(serviceInfo.acceptedMimeTypes));
  const progress = new IngestProgress(files.length);
  const rejected: Array<{ file: string; reason: string }> = [];
  const rel = (file: string) => path.relative(dir, file);
  const reject = (file: string, reason: string) => {
    rejected.push({ file: rel(file), reason });
    progress.record(rel(file), 'rejected', reason);
  };

  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    progress.note('interrupted: finishing the requests in flight (Ctrl-C again to quit now)');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    // 1. Hash every file; the same bytes twice in the folder are uploaded once.
    const unique = new Map<string, Candidate>();
    for (const { file, type } of files) {
      const stat = await fs.stat(file);
      if (stat.size > serviceInfo.maxUploadBytes) {
        reject(file, `PAYLOAD_TOO_LARGE: ${stat.size} bytes, the server takes at most ${serviceInfo.maxUploadBytes}`);
        continue;
      }
      const sha256 = createHash('sha256').update(await fs.readFile(file)).digest('hex');
      if (unique.has(sha256)) progress.record(rel(file), 'duplicate', `same bytes as ${rel(unique.get(sha256)!.file)}`);
      else unique.set(sha256, { file, type, sha256 });
    }
    // 2. Ask which are stored already (an earlier, interrupted run): nothing is uploaded twice.
    const hashes = [...unique.keys()];
    const stored = new Set<string>();
    for (let i = 0; i < hashes.length; i += 500) {
      const { imagesBySha256 } = await client.request<{ imagesBySha256: Array<{ sha256: string }> }>(LOOKUP, { sha256: hashes.slice(i, i + 500) });
      for (const image of imagesBySha256) stored.add(image.sha256);
    }
    const pending = [...unique.values()].filter((c) => {
      if (!stored.has(c.sha256)) return true;
      progress.record(rel(c.file), 'stored');
      return false;
    });
    // 3. Upload in batches, `concurrency` requests at a time.
    const batches: Candidate[][] = [];
    for (let i = 0; i < pending.length; i += options.batch) batches.push(pending.slice(i, i + options.batch));
    const worker = async () => {
      for (let batch = batches.shift(); batch && !interrupted; batch = batches.shift()) await uploadBatch(client, batch, progress, rel, reject);
    };
    await Promise.all(Array.from({ length: options.concurrency }, worker));
  } finally {
    progress.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const { added, stored, duplicate } = progress.counts;
  const lines = [`${interrupted ? 'interrupted' : 'done'}: ${added} added, ${stored} already stored, ${duplicate} duplicates, ${rejected.length} rejected (${files.length} files)`];
  for (const r of rejected) lines.push(`  rejected ${r.file}: ${r.reason}`);
  if (interrupted) lines.push('run the same command again to resume: stored files are skipped');
  process.stdout.write(`${lines.join('\n')}\n`);
  if (interrupted) return 130;
  return rejected.length ? 1 : 0;
}

async function uploadBatch(
  client: ApiClient,
  batch: Candidate[],
  progress: IngestProgress,
  rel: (file: string) => string,
  reject: (file: string, reason: string) => void,
): Promise<void> {
  const loaded = await Promise.all(
    batch.map(async (c) => {
      const bytes = await fs.readFile(c.file);
      return { ...c, bytes, altText: await readAltText(c.file, bytes) };
    }),
  );
  let results: Array<{ created: boolean; image: { id: string } | null; error: { code: string; message: string } | null }>;
  try {
    const data = await client.upload<{ ingestImages: { results: typeof results } }>(
      INGEST,
      { inputs: loaded.map((c) => ({ file: null, ...(c.altText ? { altText: c.altText } : {}) })) },
      loaded.map((c, i) => ({ path: `variables.inputs.${i}.file`, file: { name: path.basename(c.file), bytes: c.bytes, type: c.type } })),
    );
    results = data.ingestImages.results;
  } catch (error) {
    const reason = error instanceof ApiError ? `${error.code ?? 'ERROR'}: ${error.message}` : `request failed: ${(error as Error).message}`;
    for (const c of loaded) reject(c.file, reason);
    return;
  }
  loaded.forEach((c, i) => {
    const result = results[i];
    if (!result || result.error) reject(c.file, result?.error ? `${result.error.code}: ${result.error.message}` : 'no result');
    else progress.record(rel(c.file), result.created ? 'added' : 'duplicate');
  });
}
