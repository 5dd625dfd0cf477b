import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseModelManifest } from '../../src/ml/manifest/model-manifest.js';
import { floatTensor } from '../../src/ml/runtime/tensor.js';
import { WorkerExecutor } from '../../src/ml/runtime/worker-executor.js';

const DIR = 'test/fixtures/tiny-random';

describe('WorkerExecutor', () => {
  let worker: WorkerExecutor;
  const manifest = parseModelManifest(JSON.parse(readFileSync(`${DIR}/manifest.json`, 'utf8')));
  const graph = manifest.tasks.retrieval.vision;
  const s = manifest.image.size;
  const pixels = () => floatTensor(new Float32Array(2 * 3 * s * s).fill(0.1), [2, 3, s, s]);

  beforeAll(async () => {
    worker = await WorkerExecutor.start({ modelDir: DIR, manifest, options: { graphs: [graph], warmUp: false } });
  }, 60_000);
  afterAll(() => worker.close());

  it('moves feeds the job owns to the worker instead of copying them, and copies the others', async () => {
    const owned = pixels();
    const shared = pixels();
    const a = await worker.execute({ kind: 'run', graph, feeds: { pixel_values: owned }, ownsFeeds: true });
    const b = await worker.execute({ kind: 'run', graph, feeds: { pixel_values: shared } });
    expect(owned.data.buffer.byteLength).toBe(0); // transferred: detached here
    expect(shared.data.length).toBe(2 * 3 * s * s); // cloned: still the caller's
    expect(Array.from((a.image_feat!.data as Float32Array))).toEqual(Array.from(b.image_feat!.data as Float32Array));
  });
});
