import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createBlipEngine } from '../../src/ml/create-blip-engine.js';
import { InvalidFeedsError, ModelFormatError } from '../../src/ml/errors.js';
import { loadModelManifest } from '../../src/ml/manifest/model-manifest.js';
import { validateFeeds } from '../../src/ml/runtime/feed-validation.js';
import { OnnxSession, verifyGraphFiles } from '../../src/ml/runtime/onnx-session.js';
import { floatTensor, intTensor, type TensorMap } from '../../src/ml/runtime/tensor.js';

const dir = 'test/fixtures/tiny-random';

describe('ONNX sessions from the manifest', async () => {
  const manifest = await loadModelManifest(dir);
  const decoder = manifest.graphs.caption_decoder!;

  it('verifies sha256 and size of every graph', async () => {
    await expect(verifyGraphFiles(dir, manifest, 'sha256')).resolves.toBeUndefined();
    const tmp = mkdtempSync(path.join(tmpdir(), 'blip-bad-'));
    cpSync(dir, tmp, { recursive: true });
    const f = path.join(tmp, 'itm.onnx');
    const bytes = readFileSync(f);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 1, bytes.length - 1);
    writeFileSync(f, bytes);
    await expect(verifyGraphFiles(tmp, manifest, 'sha256')).rejects.toThrow(/itm.onnx has sha256 [0-9a-f]+, the manifest says/);
    await expect(createBlipEngine({ modelDir: tmp, workers: 0 })).rejects.toBeInstanceOf(ModelFormatError);
  });

  it('BAD CALL - wrong dtype, rank and inconsistent symbolic dims are reported together', () => {
    const err = (() => {
      try {
        validateFeeds('caption_decoder', decoder, {
          input_ids: floatTensor(new Float32Array(2), [1, 2]),
          attention_mask: intTensor([1, 1, 1], [1, 3]),
          'past_key_values.0.key': floatTensor(new Float32Array(0), [2, 2, 0, 16]),
          'cross_key_values.0.key': floatTensor(new Float32Array(2 * 17 * 16), [1, 2, 17, 16]),
        });
      } catch (e) {
        return e as Error;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(InvalidFeedsError);
    expect(err?.message).toMatch(/input_ids: dtype float32, expected int64/);
    expect(err?.message).toMatch(/missing input "encoder_attention_mask"/);
    expect(err?.message).toMatch(/"batch" is 1 elsewhere, got 2/);
    expect(err?.message).toMatch(/Declared inputs: input_ids: int64\[batch,new\]/);
  });

  it('EXPECTED FAILURE - an ORT error names the graph and every input with dtype and dims', async () => {
    const s = await OnnxSession.create(dir, 'text_feature', manifest.graphs.text_feature!);
    // position ids past max_position_embeddings: passes the manifest check, fails inside ORT
    const n = 200;
    await expect(s.run({ input_ids: intTensor(new Array(n).fill(5), [1, n]), attention_mask: intTensor(new Array(n).fill(1), [1, n]) }))
      .rejects.toThrow(/graph "text_feature" failed with inputs input_ids: int64\[1,200\], attention_mask: int64\[1,200\]/);
    await s.release();
  });

  it('EXPECTED FAILURE - a graph whose inputs differ from the manifest is refused at load', async () => {
    const spec = { ...manifest.graphs.text_feature!, inputs: [{ name: 'ids', dtype: 'int64' as const, shape: ['batch', 'seq'] }] };
    await expect(OnnxSession.create(dir, 'text_feature', spec)).rejects.toThrow(/has inputs \[attention_mask, input_ids\].*declares inputs \[ids: int64\[batch,seq\]\]/);
  });

  it('decoder runs on an empty fixed-capacity cache and returns only the new keys and values', async () => {
    const s = await OnnxSession.create(dir, 'caption_decoder', decoder);
    const capacity = 4;
    const feeds: TensorMap = {
      input_ids: intTensor([146], [1, 1]),
      attention_mask: intTensor([0, 0, 0, 0, 1], [1, capacity + 1]),
      past_length: intTensor([0], [1]),
      encoder_attention_mask: intTensor(new Array(17).fill(1), [1, 17]),
    };
    for (let l = 0; l < 2; l++) {
      for (const kind of ['key', 'value']) {
        feeds[`past_key_values.${l}.${kind}`] = floatTensor(new Float32Array(2 * capacity * 16), [1, 2, capacity, 16]);
        feeds[`cross_key_values.${l}.${kind}`] = floatTensor(new Float32Array(2 * 17 * 16), [1, 2, 17, 16]);
      }
    }
    const out = await s.run(feeds);
    expect(out.logits!.dims).toEqual([1, 1, 148]);
    expect(out.new_kv!.dims).toEqual([2, 2, 1, 2, 1, 16]);
    await s.release();
  });
});
