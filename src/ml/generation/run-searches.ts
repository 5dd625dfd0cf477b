import type { StepModel } from './generation-config.js';

/**
 * One input's search (greedy or beam), advanced a step at a time by {@link runSearches}, which
 * may step several inputs in one model call.
 */
export interface Search {
  /** The rows to feed at the next step, all the same length. */
  readonly rows: readonly number[][];
  /** For each row of {@link rows}, the row of this search's previous step it extends; null before the first step. */
  readonly parents: readonly number[] | null;
  /** No more steps: the search is done or at its maximum length. */
  readonly finished: boolean;
  /** Takes this search's rows of last-position logits, in the order of {@link rows}. */
  advance(logits: readonly Float32Array[]): void;
  /** The generated sequence, prefix included. */
  result(): number[];
}

/**
 * Runs searches in lockstep: each step feeds every unfinished search's rows, one search after the
 * other, in one model call, so the decoder's weights are read once for all of them. A finished
 * search's rows leave the next call: `parents` maps the new rows to the previous call's rows, and
 * has fewer entries than that call had rows when a search has left (the model drops those rows,
 * src/ml/blip/kv-cache-decoder.ts). The searches must start from prefixes of the same length.
 * @returns each search's sequence, in input order.
 */
export async function runSearches(model: StepModel, searches: readonly Search[]): Promise<number[][]> {
  let active = searches.filter((s) => !s.finished);
  // where each active search's rows sat in the previous call; null before the first
  let offsets: Map<Search, number> | null = null;
  while (active.length > 0) {
    const sequences: number[][] = [];
    const parents: number[] | null = offsets ? [] : null;
    for (const s of active) {
      if (parents && offsets) {
        const base = offsets.get(s) as number;
        const own = s.parents ?? s.rows.map((_, i) => i);
        for (const p of own) parents.push(base + p);
      }
      sequences.push(...s.rows);
    }
    const logits = await model.step(sequences, parents);
    const next = new Map<Search, number>();
    let at = 0;
    for (const s of active) {
      const n = s.rows.length;
      next.set(s, at);
      s.advance(logits.slice(at, at + n));
      at += n;
    }
    offsets = next;
    active = active.filter((s) => !s.finished);
  }
  return searches.map((s) => s.result());
}
