import { BeamHypotheses } from './beam-hypotheses.js';
import { isEndToken, type GenerationConfig, type StepModel } from './generation-config.js';
import { processScores } from './logits-processors.js';
import { logSoftmaxInto, topK } from './score-math.js';

/**
 * HF beam search for one input (length_penalty 1, early_stopping false, one returned sequence).
 * All beams run as rows of one model call per step.
 *
 * Per step: log_softmax(last logits) -> processors on the log-probs -> + beam score ->
 * flatten (numBeams * vocab) -> top max(2, 1 + end tokens) * numBeams -> EOS candidates ranked below numBeams are
 * skipped, the others become hypotheses scored sum / generated_len; the rest continue until
 * numBeams beams are kept.
 * @param prefix start tokens, length >= 1 (the prompt length for length normalisation).
 * @returns the best sequence: prefix + generated tokens + EOS when shorter than maxLength.
 */
export async function beamSearch(model: StepModel, prefix: readonly number[], config: GenerationConfig): Promise<number[]> {
  const { numBeams, maxLength, eosTokenId } = config;
  const endTokens = 1 + (config.stopTokenIds?.length ?? 0);
  const promptLen = prefix.length;
  let beams: number[][] = Array.from({ length: numBeams }, () => [...prefix]);
  // only the first beam is live at the start, so identical beams are not picked twice
  let beamScores: number[] = Array.from({ length: numBeams }, (_, i) => (i === 0 ? 0 : -1e9));
  const hyps = new BeamHypotheses(numBeams);
  let parents: number[] | null = null;
  let done = false;
  // one scratch row and one flat score array for the whole search (3 x 30k floats a step at base size)
  let scores = new Float32Array(0);
  let flat = new Float32Array(0);

  while (!done && (beams[0] as number[]).length < maxLength) {
    const curLen = (beams[0] as number[]).length;
    const rows = await model.step(beams, parents);
    const vocab = (rows[0] as Float32Array).length;
    if (flat.length !== numBeams * vocab) {
      scores = new Float32Array(vocab);
      flat = new Float32Array(numBeams * vocab);
    }
    rows.forEach((logits, b) => {
      logSoftmaxInto(logits, scores);
      processScores(scores, beams[b] as number[], config);
      const add = beamScores[b] as number;
      const base = b * vocab;
      for (let v = 0; v < vocab; v++) flat[base + v] = (scores[v] as number) + add;
    });
    // HF keeps max(2, 1 + end tokens) * numBeams candidates, so that enough of them continue.
    const candidates = topK(flat, Math.max(2, 1 + endTokens) * numBeams);

    const next: Array<{ parent: number; token: number; score: number }> = [];
    for (let rank = 0; rank < candidates.length; rank++) {
      const { score, index } = candidates[rank] as { score: number; index: number };
      const parent = Math.floor(index / vocab);
      const token = index % vocab;
      if (isEndToken(token, config)) {
        if (rank >= numBeams) continue;
        hyps.add([...(beams[parent] as number[])], score, curLen + 1 - promptLen);
      } else {
        next.push({ parent, token, score });
      }
      if (next.length === numBeams) break;
    }
    if (next.length < numBeams) throw new Error(`beam search kept ${next.length} of ${numBeams} beams: too few non-EOS candidates`);

    done = hyps.isDone((candidates[0] as { score: number }).score, curLen + 1, promptLen);
    beams = next.map((n) => [...(beams[n.parent] as number[]), n.token]);
    beamScores = next.map((n) => n.score);
    parents = next.map((n) => n.parent);
  }

  if (!done) {
    beams.forEach((tokens, b) => hyps.add(tokens, beamScores[b] as number, tokens.length - promptLen));
  }
  const best = hyps.best();
  if (!best) throw new Error('beam search produced no hypothesis');
  return best.tokens.length < maxLength ? [...best.tokens, eosTokenId] : best.tokens;
}
