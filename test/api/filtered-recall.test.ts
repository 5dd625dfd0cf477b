import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddingToBytes } from '../../src/domain/embedding.js';
import { loadConfig } from '../../src/config/load-config.js';
import { createPrismaClient } from '../../src/repositories/database.js';
import { FakeBlipEngine } from '../helpers/fake-blip-engine.js';
import { ids } from '../helpers/gql-ops.js';
import { startTestServer, type DbFlavour, type TestServer } from '../helpers/test-server.js';

/**
 * Filters must not cost recall. 5000 images with random 64-d ITC vectors (no structure: the hard
 * case for HNSW) and metadata { bucket: i % 100, decile: i % 10 }; text queries map to random
 * vectors too. recall@10 of searchImages(rerank: false) with a filter, against an exact scan of
 * the filtered rows, over real HTTP:
 *  - a 1% filter (50 rows) is ranked by the exact scan: recall 1;
 *  - the same filter through hnswlib's filtered walk (SEARCH_EXACT_MAX_ROWS=0), and a 10% one;
 *  - for comparison, post-filtering the unfiltered top 128 (what filtering HNSW results would give).
 */
const N = 5000;
const DIM = 64;
const QUERIES = 40;
const flavours: DbFlavour[] = process.env.BLIP_TEST_PG === 'off' ? ['sqlite'] : ['sqlite', 'postgresql'];

function seededVector(seed: string): Float32Array {
  // Box-Muller over a sha256 stream: deterministic Gaussian vectors.
  const v = new Float32Array(DIM);
  let block = Buffer.alloc(0);
  let counter = 0;
  const uniform = () => {
    if (block.length < 4) block = createHash('sha256').update(`${seed}/${counter++}`).digest();
    const u = (block.readUInt32LE(0) + 1) / 4294967297;
    block = block.subarray(4);
    return u;
  };
  for (let i = 0; i < DIM; i++) v[i] = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

/** The fake engine at 64 dimensions, whose text embeddings are random vectors. */
class RandomVectorEngine extends FakeBlipEngine {
  override readonly embedDim = DIM;
  override async embedText(text: string): Promise<Float32Array> {
    return seededVector(`query:${text}`);
  }
}

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);

describe.each(flavours)('filtered recall against an exact scan (%s)', (db) => {
  let server: TestServer;
  const engine = new RandomVectorEngine();
  const rows = Array.from({ length: N }, (_, i) => ({ id: randomUUID() as string, vector: seededVector(`image:${i}`), bucket: i % 100, decile: i % 10 }));
  const byId = new Map<string, (typeof rows)[number]>(rows.map((r) => [r.id, r]));

  beforeAll(async () => {
    // Start once (migrations, instance binding), then write the rows straight into the database
    // and restart: start-up repair builds the index from the database.
    const first = await startTestServer({ db, engine });
    await first.stop();
    const client = createPrismaClient(loadConfig(first.env).db);
    for (let start = 0; start < N; start += 500) {
      const chunk = rows.slice(start, start + 500).map((r, j) => ({ ...r, label: start + j + 1 }));
      await client.image.createMany({
        data: chunk.map((r) => ({
          label: r.label,
          id: r.id,
          sha256: createHash('sha256').update(r.id).digest('hex'),
          mimeType: 'image/png',
          format: 'png',
          width: 1,
          height: 1,
          byteSize: 1,
          metadata: JSON.stringify({ bucket: r.bucket, decile: r.decile }),
        })),
      });
      await client.imageEmbedding.createMany({
        data: chunk.map((r) => ({ imageLabel: r.label, modelId: engine.modelId, dim: DIM, vector: embeddingToBytes(r.vector) as Uint8Array<ArrayBuffer> })),
      });
    }
    await client.$disconnect();
    server = await startTestServer({ engine, reuse: { dataDir: first.dataDir, env: first.env } });
  }, 180_000);
  afterAll(async () => server?.dispose());

  /** Mean recall@10 of the served top 10 against the exact top 10 among rows passing `keep`. */
  async function recall(filter: unknown, keep: (r: (typeof rows)[number]) => boolean, served: (text: string) => Promise<string[]>): Promise<number> {
    let sum = 0;
    for (let q = 0; q < QUERIES; q++) {
      const text = `query ${q}`;
      const query = await engine.embedText(text);
      const truth = rows
        .filter(keep)
        .map((r) => ({ id: r.id, score: dot(query, r.vector) }))
        .sort((a, b) => b.score - a.score)
        .slice(0, 10)
        .map((r) => r.id);
      const got = await served(text);
      expect(got.every((id) => keep(byId.get(id)!)), `${JSON.stringify(filter)} returned a row outside it`).toBe(true);
      sum += got.filter((id) => truth.includes(id)).length / 10;
    }
    return sum / QUERIES;
  }

  const searchTop10 = (filter: unknown) => async (text: string) => {
    const res = await server.gql(`query($t: String!, $f: ImageFilter) { searchImages(text: $t, first: 10, rerank: false, filter: $f) { edges { node { id } } } }`, { t: text, f: filter });
    expect(res.errors).toBeUndefined();
    return ids(res.data.searchImages.edges);
  };

  it('recall@10 with a 1% filter: exact scan 1.0; filtered HNSW walk and a 10% filter >= 0.95; post-filtering top-128 far below', async () => {
    const onePercent = { metadata: { bucket: 7 } };
    const tenPercent = { metadata: { decile: 3 } };
    const exact = await recall(onePercent, (r) => r.bucket === 7, searchTop10(onePercent));

    // Post-filtering: the unfiltered ITC top 128, then the filter.
    const postFiltered = await recall(onePercent, (r) => r.bucket === 7, async (text) => {
      const top: string[] = [];
      let after: string | null = null;
      while (top.length < 128) {
        const res: { data?: { searchImages: { edges: Array<{ node: { id: string } }>; pageInfo: { endCursor: string } } } } = await server.gql(`query($t: String!, $a: String) { searchImages(text: $t, first: 64, after: $a, rerank: false) { edges { node { id } } pageInfo { endCursor } } }`, { t: text, a: after });
        top.push(...ids(res.data!.searchImages.edges));
        after = res.data!.searchImages.pageInfo.endCursor;
      }
      return top.slice(0, 128).filter((id) => byId.get(id)!.bucket === 7).slice(0, 10);
    });

    // The same filter through hnswlib's filtered walk instead of the scan.
    await server.stop();
    server = await startTestServer({ engine, reuse: { dataDir: server.dataDir, env: { ...server.env, SEARCH_EXACT_MAX_ROWS: '0' } } });
    const walk = await recall(onePercent, (r) => r.bucket === 7, searchTop10(onePercent));
    const walkTen = await recall(tenPercent, (r) => r.decile === 3, searchTop10(tenPercent));

    console.log(
      `filtered recall@10 (${db}, ${N} images, ${DIM}-d, ${QUERIES} queries): 1% filter exact scan ${exact.toFixed(3)}, ` +
        `1% filter HNSW filtered walk ${walk.toFixed(3)}, 10% filter HNSW filtered walk ${walkTen.toFixed(3)}, ` +
        `1% filter by post-filtering the unfiltered top 128 ${postFiltered.toFixed(3)}`,
    );
    expect(exact).toBe(1);
    expect(walk).toBeGreaterThanOrEqual(0.95);
    expect(walkTen).toBeGreaterThanOrEqual(0.95);
    expect(postFiltered).toBeLessThan(0.5);
  }, 240_000);
});
