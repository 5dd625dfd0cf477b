import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseModelManifest } from '../../src/ml/manifest/model-manifest.js';
import { isShared, toShared } from '../../src/ml/runtime/shared-memory.js';
import { floatTensor } from '../../src/ml/runtime/tensor.js';
import { WorkerExecutor } from '../../src/ml/runtime/worker-executor.js';

const DIR = 'test/fixtures/tiny-random';

describe('WorkerExecutor', () => {
  let worker: WorkerExecutor;
  const manifest = parseModelManifest(JSON.parse(readFileSync(`${DIR}/manifest.json`, 'utf8')));
  const graph = manifest.tasks.retrieval.vision;
  const s = manifest.image.size;

  beforeAll(async () => {
    worker = await WorkerExecutor.start({ modelDir: DIR, manifest, options: { graphs: [graph], warmUp: false } });
  }, 60_000);
  afterAll(() => worker.close());

  it('splits a merged run where the sessions live: parts equal lone runs, own their buffers, large ones shared', async () => {
    // 33 rows of image_embeds (33 x 17 x 32 floats) pass SHARE_ABOVE_BYTES; 1 row does not.
    const rows = (n: number, seed: number) => floatTensor(Float32Array.from({ length: n * 3 * s * s }, (_, i) => Math.sin(i * 0.37 + seed)), [n, 3, s, s]);
    const big = rows(33, 1);
    const small = rows(1, 2);
    small.data = toShared(small.data);
    const [p1, p2] = await worker.execute({ kind: 'runMerged', graph, parts: [{ pixel_values: big }, { pixel_values: small }] });
    const [alone1, alone2] = [await worker.execute({ kind: 'run', graph, feeds: { pixel_values: big } }), await worker.execute({ kind: 'run', graph, feeds: { pixel_values: small } })];
    for (const [part, alone, n] of [[p1!, alone1, 33], [p2!, alone2, 1]] as const) {
      for (const name of ['image_embeds', 'image_feat', 'itm_states', 'itm_scales']) {
        const t = part[name]!;
        expect(t.dims[0], name).toBe(n);
        expect(t.data.buffer.byteLength, `${name} owns its buffer`).toBe(t.data.byteLength);
        const want = Array.from(alone[name]!.data as Float32Array);
        Array.from(t.data as Float32Array).forEach((v, i) => expect(Math.abs(v - (want[i] as number)), name).toBeLessThanOrEqual(name === 'itm_states' ? 1 : 1e-5));
      }
    }
    expect(isShared(p1!.image_embeds!.data)).toBe(true);
    expect(isShared(p2!.image_embeds!.data)).toBe(false);
    expect(big.data.length).toBe(33 * 3 * s * s); // the callers' feeds are left as they were
    expect(small.data.length).toBe(3 * s * s);
  });
});
