/**
 * Logits processors, applied in place to one row of scores (raw logits for greedy search,
 * log-probabilities for beam search), in the order HF applies them: repetition penalty, then
 * minimum length.
 */

/**
 * HF RepetitionPenaltyLogitsProcessor: for every distinct token already in `sequence` (prefix
 * included), a negative score is multiplied by `penalty`, a positive one divided by it.
 */
export function applyRepetitionPenalty(scores: Float32Array, sequence: readonly number[], penalty: number): void {
  if (penalty === 1) return;
  for (const id of new Set(sequence)) {
    const s = scores[id];
    if (s === undefined) continue;
    scores[id] = s < 0 ? s * penalty : s / penalty;
  }
}

/** HF MinLengthLogitsProcessor: forbids `eosTokenId` (and every stop token) while `currentLength < minLength`. */
export function applyMinLength(scores: Float32Array, currentLength: number, minLength: number, eosTokenId: number, stopTokenIds: readonly number[] = []): void {
  if (currentLength >= minLength) return;
  scores[eosTokenId] = Number.NEGATIVE_INFINITY;
  for (const id of stopTokenIds) scores[id] = Number.NEGATIVE_INFINITY;
}

/** Both processors, in HF order. */
export function processScores(
  scores: Float32Array,
  sequence: readonly number[],
  config: { repetitionPenalty: number; minLength: number; eosTokenId: number; stopTokenIds?: readonly number[] },
): void {
  applyRepetitionPenalty(scores, sequence, config.repetitionPenalty);
  applyMinLength(scores, sequence.length, config.minLength, config.eosTokenId, config.stopTokenIds);
}
