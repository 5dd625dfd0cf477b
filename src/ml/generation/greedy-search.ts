import { isEndToken, type GenerationConfig, type StepModel } from './generation-config.js';
import { processScores } from './logits-processors.js';
import { argmax } from './score-math.js';

/**
 * HF greedy search: last-position logits -> repetition penalty and min length on the raw logits
 * -> argmax; stops after the EOS token (or a stop token) or at `maxLength` total tokens.
 * @param prefix start tokens (e.g. [DEC] or [DEC] + prompt ids), length >= 1.
 * @returns the full sequence: prefix, generated tokens, and the EOS when one was generated.
 */
export async function greedySearch(model: StepModel, prefix: readonly number[], config: GenerationConfig): Promise<number[]> {
  const sequence = [...prefix];
  let parents: number[] | null = null;
  while (sequence.length < config.maxLength) {
    const [logits] = await model.step([sequence], parents);
    if (!logits) throw new Error('step model returned no rows');
    const scores = Float32Array.from(logits);
    processScores(scores, sequence, config);
    const token = argmax(scores);
    sequence.push(token);
    parents = [0];
    if (isEndToken(token, config)) break;
  }
  return sequence;
}
