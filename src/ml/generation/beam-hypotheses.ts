/** One finished beam: its tokens (without EOS) and its length-normalised score. */
export interface Hypothesis {
  score: number;
  tokens: number[];
}

/**
 * HF BeamHypotheses (length_penalty 1, early_stopping false): keeps the `numBeams` best finished
 * sequences. Ordering details (stable sorts, which of equal scores is dropped or chosen) follow
 * the Python code so that ties resolve the same way.
 */
export class BeamHypotheses {
  readonly beams: Hypothesis[] = [];
  private worstScore = 1e9;

  constructor(private readonly numBeams: number, private readonly lengthPenalty = 1) {}

  get size(): number {
    return this.beams.length;
  }

  /** Adds a hypothesis whose score is `sumLogprobs / generatedLen ** lengthPenalty`. */
  add(tokens: number[], sumLogprobs: number, generatedLen: number): void {
    const score = sumLogprobs / generatedLen ** this.lengthPenalty;
    if (this.beams.length < this.numBeams || score > this.worstScore) {
      this.beams.push({ score, tokens });
      if (this.beams.length > this.numBeams) {
        const sorted = this.beams.map((b, idx) => ({ s: b.score, idx })).sort((a, b) => a.s - b.s || a.idx - b.idx);
        this.beams.splice((sorted[0] as { idx: number }).idx, 1);
        this.worstScore = (sorted[1] as { s: number }).s;
      } else {
        this.worstScore = Math.min(score, this.worstScore);
      }
    }
  }

  /**
   * Done when full and no live beam can beat the worst kept hypothesis:
   * `worst >= bestSumLogprobs / (curLen - promptLen) ** lengthPenalty`.
   * @param curLen the length the scores were computed for (sequence length + 1).
   */
  isDone(bestSumLogprobs: number, curLen: number, promptLen: number): boolean {
    if (this.beams.length < this.numBeams) return false;
    const highest = bestSumLogprobs / (curLen - promptLen) ** this.lengthPenalty;
    return this.worstScore >= highest;
  }

  /** The best hypothesis: Python's `sorted(key=score).pop()`, i.e. the last of equal scores. */
  best(): Hypothesis | undefined {
    const sorted = [...this.beams].sort((a, b) => a.score - b.score);
    return sorted[sorted.length - 1];
  }
}
