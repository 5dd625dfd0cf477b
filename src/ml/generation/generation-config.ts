/**
 * Generation settings with Hugging Face `generate()` semantics (lengths count the prompt).
 */
export interface GenerationConfig {
  /** Total sequence length limit, prefix included (HF max_length). */
  maxLength: number;
  /** The end-of-sequence token cannot be chosen while the total length is below this (HF min_length). */
  minLength: number;
  /** 1 = greedy search; >1 = beam search with this many beams, batched in one run per step. */
  numBeams: number;
  /** HF repetition_penalty; 1 disables it. */
  repetitionPenalty: number;
  /** Token that ends a sequence (BLIP: [SEP] = 102). */
  eosTokenId: number;
  /**
   * More tokens that end a sequence like the EOS (HF: `eos_token_id` given as a list). BLIP-2 with
   * OPT stops at a newline as LAVIS does. A finished sequence still gets `eosTokenId` appended by
   * beam search when it is shorter than maxLength.
   */
  stopTokenIds?: readonly number[];
}

/** Whether `token` ends a sequence under `config`. */
export function isEndToken(token: number, config: Pick<GenerationConfig, 'eosTokenId' | 'stopTokenIds'>): boolean {
  return token === config.eosTokenId || (config.stopTokenIds?.includes(token) ?? false);
}

/**
 * The model side of generation. Every call gets each row's full sequence; the implementation
 * decides what to feed (a KV-cached decoder feeds only the tokens it has not seen).
 *
 * @param sequences rows of token ids, all the same length.
 * @param parents for each row, the row of the previous call it extends (beam reordering);
 *   null on the first call.
 * @returns per row, the logits of the last position: Float32Array(vocab).
 */
export interface StepModel {
  step(sequences: readonly number[][], parents: readonly number[] | null): Promise<Float32Array[]>;
}
