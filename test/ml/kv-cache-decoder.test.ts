import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IO } from '../../src/ml/blip/blip-io-names.js';
import { KvCacheDecoder } from '../../src/ml/blip/kv-cache-decoder.js';
import { beamSearch } from '../../src/ml/generation/beam-search.js';
import { greedySearch } from '../../src/ml/generation/greedy-search.js';
import { parseModelManifest } from '../../src/ml/manifest/model-manifest.js';
import { BufferPool } from '../../src/ml/runtime/buffer-pool.js';
import { OnnxSession } from '../../src/ml/runtime/onnx-session.js';
import { floatTensor, type FloatTensor, type TensorMap } from '../../src/ml/runtime/tensor.js';

const DIR = 'test/fixtures/tiny-random';
const manifest = parseModelManifest(JSON.parse(readFileSync(`${DIR}/manifest.json`, 'utf8')));
const golden = JSON.parse(readFileSync('test/golden/tiny-random.json', 'utf8'));
const task = manifest.tasks.caption;

describe('KvCacheDecoder', () => {
  let vision: OnnxSession;
  let crossKv: OnnxSession;
  let decoder: OnnxSession;
  let cross: FloatTensor;
  beforeAll(async () => {
    const open = (g: string) => OnnxSession.create(DIR, g, manifest.graphs[g]!);
    [vision, crossKv, decoder] = await Promise.all([open(task.vision), open(task.crossKv), open(task.decoder)]);
    const s = manifest.image.size;
    const pixels = floatTensor(Float32Array.from(golden.images[0].pixels), [1, 3, s, s]);
    const states = (await vision.run({ [IO.pixelValues]: pixels }, [IO.imageEmbeds]))[IO.imageEmbeds]!;
    cross = (await crossKv.run({ [IO.encoderHiddenStates]: states }))[IO.crossKv] as FloatTensor;
  });
  afterAll(async () => Promise.all([vision, crossKv, decoder].map((s) => s?.release())));

  const run = (_g: string, feeds: TensorMap, outputs?: string[]) => decoder.run(feeds, outputs);
  const config = { maxLength: 12, minLength: 3, numBeams: 3, repetitionPenalty: 1, eosTokenId: manifest.text.specialTokens.sep };
  const prefix = [manifest.text.specialTokens.dec];

  it('reproduces the golden beam-3 and greedy captions on a fixed-capacity cache', async () => {
    const pool = new BufferPool();
    const beam = new KvCacheDecoder(run, task.decoder, cross, config.maxLength, pool);
    expect(await beamSearch(beam, prefix, config)).toEqual(golden.images[0].caption_beam3_ids);
    beam.release();
    const greedy = new KvCacheDecoder(run, task.decoder, cross, 12, pool);
    expect(await greedySearch(greedy, prefix, { ...config, numBeams: 1, minLength: 0 })).toEqual(golden.images[0].caption_greedy_ids);
    greedy.release();
  });

  it('EXPECTED FAILURE - pooled memory left full of NaN by an earlier user does not leak into the masked cache slots', async () => {
    const pool = new BufferPool();
    const poisoned = [pool.acquire(1 << 16), pool.acquire(1 << 16)];
    for (const b of poisoned) {
      new Float32Array(b).fill(Number.NaN);
      pool.release(b);
    }
    const dec = new KvCacheDecoder(run, task.decoder, cross, config.maxLength, pool);
    expect(await beamSearch(dec, prefix, config)).toEqual(golden.images[0].caption_beam3_ids);
    dec.release();
  });

  it('BAD CALL - a sequence longer than the cache capacity is refused', async () => {
    const dec = new KvCacheDecoder(run, task.decoder, cross, 2, new BufferPool());
    await expect(dec.step([[1, 2, 3]], null)).rejects.toThrow(/exceeds the decoder cache capacity 2/);
  });
});
