import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { InvalidTextError, ModelFormatError } from '../errors.js';
import type { ModelManifest } from '../manifest/model-manifest.js';

/** Which id a BLIP text input starts with (docs/model-format.md). */
export type FirstToken = 'cls' | 'enc' | 'dec';

/** Ids and mask of one encoded text, ready for an `input_ids` / `attention_mask` pair. */
export interface EncodedText {
  /** `[first] tokens... [SEP]`, at most the manifest's text.maxLength ids. */
  ids: number[];
  /** All ones (no padding: each text is its own row or batched with equal lengths). */
  attentionMask: number[];
}

/**
 * BERT uncased WordPiece over a model folder's tokenizer.json, through @huggingface/tokenizers
 * (BertNormalizer, BertPreTokenizer, WordPiece and the [CLS]/[SEP] template are all implemented
 * there, and the token tables in the tests pin its output against the Python goldens).
 *
 * [DEC] and [ENC] are never tokenized from strings: their ids come from the manifest and are
 * placed here.
 */
export class BertTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    private readonly special: ModelManifest['text']['specialTokens'],
    /** Truncation length in ids, [CLS] and [SEP] included. */
    readonly maxLength: number,
  ) {}

  /** Loads `<modelDir>/<manifest.text.tokenizer>`. */
  static async load(modelDir: string, manifest: ModelManifest): Promise<BertTokenizer> {
    const file = path.join(modelDir, manifest.text.tokenizer);
    let json: unknown;
    try {
      json = JSON.parse(await readFile(file, 'utf8'));
    } catch (cause) {
      throw new ModelFormatError(`cannot read tokenizer ${file}`, { cause });
    }
    return BertTokenizer.fromJson(json, manifest);
  }

  /** Builds from an already parsed tokenizer.json. */
  static fromJson(json: unknown, manifest: Pick<ModelManifest, 'text'>): BertTokenizer {
    const config = { do_lower_case: manifest.text.doLowerCase, clean_up_tokenization_spaces: true };
    const tokenizer = new Tokenizer(json as object, config);
    const { cls, sep } = manifest.text.specialTokens;
    const probe = tokenizer.encode('').ids;
    if (probe[0] !== cls || probe[probe.length - 1] !== sep) {
      throw new ModelFormatError(`tokenizer.json does not wrap texts in [CLS]=${cls} ... [SEP]=${sep} (got [${probe.join(',')}])`);
    }
    return new BertTokenizer(tokenizer, manifest.text.specialTokens, manifest.text.maxLength);
  }

  /** WordPiece ids of `text` without any special token, untruncated. */
  tokenIds(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /**
   * `[first] ids [SEP]`, truncated to `maxLength` ids as HF `truncation=True` does (the text is
   * cut, [SEP] kept).
   * @param first 'cls' (101 for BERT), 'enc' or 'dec' (ids from the manifest).
   */
  encode(text: string, first: FirstToken = 'cls', maxLength = this.maxLength): EncodedText {
    const body = this.tokenIds(text).slice(0, Math.max(0, maxLength - 2));
    const ids = [this.special[first], ...body, this.special.sep];
    return { ids, attentionMask: ids.map(() => 1) };
  }

  /** Ids count with [CLS] and [SEP], before truncation. */
  countTokens(text: string): number {
    return this.tokenIds(text).length + 2;
  }

  /**
   * Decoder prefix for captions: `[DEC]` followed by the prompt's tokens (HF replaces the
   * prompt's [CLS] by [DEC] and drops its [SEP]).
   */
  decoderPrefix(prompt = ''): number[] {
    const body = prompt.trim() === '' ? [] : this.tokenIds(prompt);
    return [this.special.dec, ...body];
  }

  /** Text of generated ids, special tokens ([DEC], [SEP], [PAD]...) dropped, WordPiece joined. */
  decode(ids: readonly number[]): string {
    return this.tokenizer.decode([...ids], { skip_special_tokens: true }).trim();
  }

  /** Throws when a text has no content. */
  static requireText(text: string, what: string): void {
    if (text.trim() === '') throw new InvalidTextError(`${what} is empty`);
  }
}
