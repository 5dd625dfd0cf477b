import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { InvalidTextError, ModelFormatError } from '../errors.js';
import type { Blip2Manifest } from './blip2-manifest.js';

/**
 * OPT's GPT-2 byte-level BPE over a BLIP-2 folder's tokenizer.json, through @huggingface/tokenizers
 * (the same library as BLIP's WordPiece, src/ml/tokenizer/bert-tokenizer.ts).
 *
 * The prompt is built as HF's Blip2Processor does: the tokenizer's BOS (`</s>`, id 2 for OPT) and
 * then the text, after the 32 query embeddings (which the decoder takes as prefix embeddings, not
 * tokens). BOS comes from the manifest and is placed here, whatever the file's post-processor says
 * (a tokenizer.json rebuilt from vocab.json + merges.txt has none).
 */
export class OptTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    private readonly manifest: Pick<Blip2Manifest, 'text'>,
  ) {}

  static async load(modelDir: string, manifest: Blip2Manifest): Promise<OptTokenizer> {
    const file = path.join(modelDir, manifest.text.tokenizer);
    let json: unknown;
    try {
      json = JSON.parse(await readFile(file, 'utf8'));
    } catch (cause) {
      throw new ModelFormatError(`cannot read tokenizer ${file}`, { cause });
    }
    return OptTokenizer.fromJson(json, manifest);
  }

  static fromJson(json: unknown, manifest: Pick<Blip2Manifest, 'text'>): OptTokenizer {
    const model = (json as { model?: { type?: string } }).model;
    if (model?.type !== 'BPE') throw new ModelFormatError(`tokenizer.json is not a BPE tokenizer (got ${model?.type})`);
    return new OptTokenizer(new Tokenizer(json as object, {}), manifest);
  }

  /** BPE ids of `text`, no special token. */
  tokenIds(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /** `[BOS] Question: {question} Answer:` as ids. */
  promptIds(question: string): number[] {
    if (question.trim() === '') throw new InvalidTextError('question is empty');
    return [this.manifest.text.specialTokens.bos, ...this.tokenIds(this.manifest.text.prompt.replace('{}', question.trim()))];
  }

  /** HF batch_decode(skip_special_tokens=True) + strip; ids without a token (the embedding's padding rows) are dropped. */
  decode(ids: readonly number[]): string {
    return this.tokenizer.decode([...ids], { skip_special_tokens: true }).trim();
  }
}
