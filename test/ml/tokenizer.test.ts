import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadModelManifest } from '../../src/ml/manifest/model-manifest.js';
import { BertTokenizer } from '../../src/ml/tokenizer/bert-tokenizer.js';

const dir = 'test/fixtures/tiny-random';
const golden = JSON.parse(readFileSync('test/golden/tiny-random.json', 'utf8'));

describe('BertTokenizer on tiny-random', async () => {
  const manifest = await loadModelManifest(dir);
  const tok = await BertTokenizer.load(dir, manifest);
  const sp = manifest.text.specialTokens;

  for (const t of golden.texts as Array<{ text: string; input_ids: number[] }>) {
    it(`ids of ${JSON.stringify(t.text)} match Python`, () => {
      expect(tok.encode(t.text).ids).toEqual(t.input_ids);
    });
  }
  it('VQA question ids match Python', () => {
    const q = golden.images[0].vqa[0];
    expect(tok.encode(q.question, manifest.text.vqaFirstToken).ids).toEqual(q.input_ids);
  });
  it('truncates to text.maxLength keeping [SEP]', () => {
    const ids = tok.encode('red circle '.repeat(40)).ids;
    expect(ids).toHaveLength(manifest.text.maxLength);
    expect(ids[0]).toBe(sp.cls);
    expect(ids[ids.length - 1]).toBe(sp.sep);
    expect(tok.countTokens('red circle '.repeat(40))).toBe(82);
  });
  it('[ENC]/[DEC] come from manifest ids, never from strings', () => {
    expect(tok.encode('red', 'enc').ids[0]).toBe(sp.enc);
    expect(tok.decoderPrefix('')).toEqual([sp.dec]);
    expect(tok.decoderPrefix('red circle')).toEqual([sp.dec, ...tok.tokenIds('red circle')]);
  });
  it('decoding drops special tokens', () => {
    expect(tok.decode([sp.dec, ...tok.tokenIds('red circles'), sp.sep, sp.pad])).toBe('red circles');
    expect(tok.decode(golden.images[0].caption_greedy_ids)).toBe(golden.images[0].caption_greedy);
  });
});
