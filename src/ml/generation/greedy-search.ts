import { isEndToken, type GenerationConfig, type StepModel } from './generation-config.js';
import { processScores } from './logits-processors.js';
import { runSearches, type Search } from './run-searches.js';
import { argmax } from './score-math.js';

/**
 * HF greedy search for one input: last-position logits -> repetition penalty and min length on
 * the raw logits -> argmax; stops after the EOS token (or a stop token) or at `maxLength` total
 * tokens. One row; {@link runSearches} steps it alone or beside other inputs.
 */
export class GreedySearch implements Search {
  private readonly sequence: number[];
  private ended = false;
  parents: number[] | null = null;

  /** @param prefix start tokens (e.g. [DEC] or [DEC] + prompt ids), length >= 1. */
  constructor(prefix: readonly number[], private readonly config: GenerationConfig) {
    this.sequence = [...prefix];
  }

  get rows(): number[][] {
    return [this.sequence];
  }

  get finished(): boolean {
    return this.ended || this.sequence.length >= this.config.maxLength;
  }

  advance(logits: readonly Float32Array[]): void {
    const [row] = logits;
    if (!row) throw new Error('step model returned no rows');
    const scores = Float32Array.from(row);
    processScores(scores, this.sequence, this.config);
    const token = argmax(scores);
    this.sequence.push(token);
    this.parents = [0];
    if (isEndToken(token, this.config)) this.ended = true;
  }

  /** The full sequence: prefix, generated tokens, and the EOS when one was generated. */
  result(): number[] {
    return [...this.sequence];
  }
}

/** {@link GreedySearch} of one input. */
export async function greedySearch(model: StepModel, prefix: readonly number[], config: GenerationConfig): Promise<number[]> {
  return (await runSearches(model, [new GreedySearch(prefix, config)]))[0] as number[];
}
