import { BeamHypotheses } from './beam-hypotheses.js';
import { isEndToken, type GenerationConfig, type StepModel } from './generation-config.js';
import { processScores } from './logits-processors.js';
import { runSearches, type Search } from './run-searches.js';
import { logSoftmaxInto, topK } from './score-math.js';

/**
 * HF beam search for one input (length_penalty 1, early_stopping false, one returned sequence).
 * Its beams are rows of one model call per step, which {@link runSearches} may share with other
 * inputs' beams.
 *
 * Per step: log_softmax(last logits) -> processors on the log-probs -> + beam score ->
 * flatten (numBeams * vocab) -> top max(2, 1 + end tokens) * numBeams -> EOS candidates ranked below numBeams are
 * skipped, the others become hypotheses scored sum / generated_len; the rest continue until
 * numBeams beams are kept.
 */
export class BeamSearch implements Search {
  private beams: number[][];
  // only the first beam is live at the start, so identical beams are not picked twice
  private beamScores: number[];
  private readonly hyps: BeamHypotheses;
  private readonly promptLen: number;
  private readonly endTokens: number;
  private done = false;
  parents: number[] | null = null;
  // one scratch row and one flat score array for the whole search (3 x 30k floats a step at base size)
  private scores = new Float32Array(0);
  private flat = new Float32Array(0);

  /** @param prefix start tokens, length >= 1 (the prompt length for length normalisation). */
  constructor(prefix: readonly number[], private readonly config: GenerationConfig) {
    const { numBeams } = config;
    this.promptLen = prefix.length;
    this.endTokens = 1 + (config.stopTokenIds?.length ?? 0);
    this.beams = Array.from({ length: numBeams }, () => [...prefix]);
    this.beamScores = Array.from({ length: numBeams }, (_, i) => (i === 0 ? 0 : -1e9));
    this.hyps = new BeamHypotheses(numBeams);
  }

  get rows(): number[][] {
    return this.beams;
  }

  get finished(): boolean {
    return this.done || (this.beams[0] as number[]).length >= this.config.maxLength;
  }

  advance(logits: readonly Float32Array[]): void {
    const { numBeams } = this.config;
    const beams = this.beams;
    const curLen = (beams[0] as number[]).length;
    const vocab = (logits[0] as Float32Array).length;
    if (this.flat.length !== numBeams * vocab) {
      this.scores = new Float32Array(vocab);
      this.flat = new Float32Array(numBeams * vocab);
    }
    const { scores, flat } = this;
    logits.forEach((row, b) => {
      logSoftmaxInto(row, scores);
      processScores(scores, beams[b] as number[], this.config);
      const add = this.beamScores[b] as number;
      const base = b * vocab;
      for (let v = 0; v < vocab; v++) flat[base + v] = (scores[v] as number) + add;
    });
    // HF keeps max(2, 1 + end tokens) * numBeams candidates, so that enough of them continue.
    const candidates = topK(flat, Math.max(2, 1 + this.endTokens) * numBeams);

    const next: Array<{ parent: number; token: number; score: number }> = [];
    for (let rank = 0; rank < candidates.length; rank++) {
      const { score, index } = candidates[rank] as { score: number; index: number };
      const parent = Math.floor(index / vocab);
      const token = index % vocab;
      if (isEndToken(token, this.config)) {
        if (rank >= numBeams) continue;
        this.hyps.add([...(beams[parent] as number[])], score, curLen + 1 - this.promptLen);
      } else {
        next.push({ parent, token, score });
      }
      if (next.length === numBeams) break;
    }
    if (next.length < numBeams) throw new Error(`beam search kept ${next.length} of ${numBeams} beams: too few non-EOS candidates`);

    this.done = this.hyps.isDone((candidates[0] as { score: number }).score, curLen + 1, this.promptLen);
    this.beams = next.map((n) => [...(beams[n.parent] as number[]), n.token]);
    this.beamScores = next.map((n) => n.score);
    this.parents = next.map((n) => n.parent);
  }

  /** The best sequence: prefix + generated tokens + EOS when shorter than maxLength. */
  result(): number[] {
    if (!this.done) {
      this.beams.forEach((tokens, b) => this.hyps.add(tokens, this.beamScores[b] as number, tokens.length - this.promptLen));
      this.done = true;
    }
    const best = this.hyps.best();
    if (!best) throw new Error('beam search produced no hypothesis');
    return best.tokens.length < this.config.maxLength ? [...best.tokens, this.config.eosTokenId] : best.tokens;
  }
}

/** {@link BeamSearch} of one input. */
export async function beamSearch(model: StepModel, prefix: readonly number[], config: GenerationConfig): Promise<number[]> {
  return (await runSearches(model, [new BeamSearch(prefix, config)]))[0] as number[];
}
