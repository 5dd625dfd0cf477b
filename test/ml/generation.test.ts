import { describe, expect, it } from 'vitest';
import { BeamHypotheses } from '../../src/ml/generation/beam-hypotheses.js';
import { beamSearch } from '../../src/ml/generation/beam-search.js';
import type { GenerationConfig, StepModel } from '../../src/ml/generation/generation-config.js';
import { greedySearch } from '../../src/ml/generation/greedy-search.js';
import { applyMinLength, applyRepetitionPenalty } from '../../src/ml/generation/logits-processors.js';
import { argmax, logSoftmax, topK } from '../../src/ml/generation/score-math.js';

const EOS = 3;
const V = 6;

function probsModel(table: (seq: number[]) => number[]): StepModel & { calls: Array<{ rows: number; parents: readonly number[] | null }> } {
  const calls: Array<{ rows: number; parents: readonly number[] | null }> = [];
  return {
    calls,
    async step(sequences, parents) {
      calls.push({ rows: sequences.length, parents });
      return sequences.map((s) => Float32Array.from(table(s).map((p) => Math.log(p))));
    },
  };
}

const cfg = (over: Partial<GenerationConfig> = {}): GenerationConfig => ({
  maxLength: 10, minLength: 0, numBeams: 1, repetitionPenalty: 1, eosTokenId: EOS, ...over,
});

describe('score math', () => {
  it('argmax takes the first of equal maxima', () => {
    expect(argmax([1, 5, 5, 2])).toBe(1);
  });
  it('topK orders by score, lower index first on ties', () => {
    expect(topK([1, 3, 3, 2, 3], 3).map((c) => c.index)).toEqual([1, 2, 4]);
  });
  it('logSoftmax sums to one in probability space', () => {
    const lp = logSoftmax(Float32Array.from([1, 2, 3]));
    expect(Array.from(lp).reduce((s, v) => s + Math.exp(v), 0)).toBeCloseTo(1, 6);
  });
});

describe('logits processors', () => {
  it('repetition penalty divides positive and multiplies negative scores of seen tokens', () => {
    const s = Float32Array.from([2, -2, 2, 0]);
    applyRepetitionPenalty(s, [0, 1, 1], 2);
    expect(Array.from(s)).toEqual([1, -4, 2, 0]);
  });
  it('min length forbids EOS only below the minimum', () => {
    const s = Float32Array.from([0, 0, 0, 5]);
    applyMinLength(s, 2, 3, EOS);
    expect(s[EOS]).toBe(Number.NEGATIVE_INFINITY);
    const t = Float32Array.from([0, 0, 0, 5]);
    applyMinLength(t, 3, 3, EOS);
    expect(t[EOS]).toBe(5);
  });
});

describe('greedy search', () => {
  const chain = (seq: number[]): number[] => {
    const next = seq.length < 4 ? 4 + (seq.length % 2) : EOS;
    return Array.from({ length: V }, (_, i) => (i === next ? 0.9 : 0.02));
  };
  it('keeps the prefix, stops after EOS and includes it', async () => {
    expect(await greedySearch(probsModel(chain), [1], cfg())).toEqual([1, 5, 4, 5, EOS]);
  });
  it('stops at maxLength total tokens', async () => {
    expect(await greedySearch(probsModel(chain), [1], cfg({ maxLength: 3 }))).toEqual([1, 5, 4]);
  });
  it('min length blocks an early EOS', async () => {
    const eosFirst = (_s: number[]): number[] => Array.from({ length: V }, (_, i) => (i === EOS ? 0.5 : i === 2 ? 0.3 : 0.05));
    expect(await greedySearch(probsModel(eosFirst), [1], cfg({ minLength: 3 }))).toEqual([1, 2, 2, EOS]);
  });
  it('repetition penalty changes the choice on raw logits', async () => {
    const m: StepModel = { async step(seqs) { return seqs.map(() => Float32Array.from([0, 0, 2, 0, 1.5, 0])); } };
    expect(await greedySearch(m, [2], cfg({ maxLength: 2, repetitionPenalty: 2 }))).toEqual([2, 4]);
  });
});

describe('beam search', () => {
  it('finds the sequence greedy misses and batches beams in one call per step', async () => {
    // greedy takes 4 (0.6) then a flat tail; 5 (0.4) leads to a sure EOS
    const table = (s: number[]): number[] => {
      const last = s[s.length - 1];
      if (s.length === 1) return [0, 0, 0, 0, 0.6, 0.4].map((p) => p || 1e-9);
      if (last === 5) return [1e-9, 1e-9, 1e-9, 0.98, 0.01, 0.01];
      return [0.2, 0.2, 0.2, 0.2, 0.1, 0.1];
    };
    const greedy = await greedySearch(probsModel(table), [1], cfg({ maxLength: 5 }));
    expect(greedy.slice(0, 2)).toEqual([1, 4]);
    const model = probsModel(table);
    const best = await beamSearch(model, [1], cfg({ maxLength: 5, numBeams: 2 }));
    expect(best).toEqual([1, 5, EOS]);
    expect(model.calls.every((c) => c.rows === 2)).toBe(true);
    expect(model.calls[0]?.parents).toBeNull();
  });
  it('appends EOS to a max-length hypothesis only when shorter than maxLength', async () => {
    const flat = (): number[] => [0.1, 0.1, 0.3, 1e-6, 0.25, 0.25];
    const out = await beamSearch(probsModel(flat), [1], cfg({ maxLength: 4, numBeams: 3 }));
    expect(out).toHaveLength(4);
    expect(out[3]).not.toBe(EOS);
  });
  it('skips EOS candidates ranked at or below numBeams', async () => {
    const table = (s: number[]): number[] => (s.length === 1 ? [0.01, 0.01, 0.5, 0.05, 0.43, 0.01] : [0.01, 0.01, 0.01, 0.95, 0.01, 0.01]);
    const out = await beamSearch(probsModel(table), [1], cfg({ maxLength: 6, numBeams: 2 }));
    expect(out).toEqual([1, 2, EOS]);
  });
  it('BeamHypotheses keeps the best numBeams and reports done by the HF rule', () => {
    const h = new BeamHypotheses(2);
    h.add([1], -4, 2);
    h.add([2], -1, 1);
    h.add([3], -3, 1);
    expect(h.beams.map((b) => b.tokens[0])).toEqual([1, 2]);
    expect(h.isDone(-10, 3, 1)).toBe(true);
    expect(h.isDone(-1, 3, 1)).toBe(false);
    expect(h.best()?.tokens).toEqual([2]);
  });
});

describe('stop tokens (BLIP-2 stops at EOS or a newline)', () => {
  const NL = 5;
  // token 1 twice, then the newline is likeliest, then EOS
  const table = (s: number[]) => (s.length < 3 ? [0.05, 0.7, 0.05, 0.05, 0.1, 0.05] : s.length < 5 ? [0.05, 0.1, 0.05, 0.1, 0.05, 0.65] : [0.1, 0.1, 0.1, 0.5, 0.1, 0.1]);

  it('greedy ends at a stop token as at the EOS', async () => {
    expect(await greedySearch(probsModel(table), [0], cfg({ stopTokenIds: [NL] }))).toEqual([0, 1, 1, NL]);
    expect(await greedySearch(probsModel(table), [0], cfg())).toEqual([0, 1, 1, NL, NL, EOS]);
  });

  it('min length blocks stop tokens too', async () => {
    expect(await greedySearch(probsModel(table), [0], cfg({ stopTokenIds: [NL], minLength: 5 }))).toEqual([0, 1, 1, 1, 1, EOS]);
  });

  it('beam search finishes a hypothesis at a stop token (the best gets the EOS appended)', async () => {
    expect(await beamSearch(probsModel(table), [0], cfg({ numBeams: 2, stopTokenIds: [NL] }))).toEqual([0, 1, 1, EOS]);
  });
});
