/** Small numeric kernels used by generation. */

/** Index of the largest value; the first one on ties (torch.argmax on CPU). */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  let bestValue = values.length > 0 ? (values[0] as number) : Number.NaN;
  for (let i = 1; i < values.length; i++) {
    const v = values[i] as number;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/**
 * log_softmax in float32 output with a max shift, as torch: x - max - log(sum(exp(x - max))).
 * @returns a new Float32Array of the same length.
 */
export function logSoftmax(logits: Float32Array): Float32Array {
  return logSoftmaxInto(logits, new Float32Array(logits.length));
}

/**
 * {@link logSoftmax} written into `out` (same length; may be `logits` itself). Beam search calls it
 * once per beam and step over the whole vocabulary, so it reuses one buffer and indexes the typed
 * arrays directly (iterators cost about 2x here).
 */
export function logSoftmaxInto(logits: Float32Array, out: Float32Array): Float32Array {
  const n = logits.length;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const v = logits[i] as number;
    if (v > max) max = v;
  }
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp((logits[i] as number) - max);
  const lse = max + Math.log(sum);
  for (let i = 0; i < n; i++) out[i] = (logits[i] as number) - lse;
  return out;
}

/** One scored candidate of a flattened score array. */
export interface Candidate {
  score: number;
  index: number;
}

/**
 * The k largest values, best first; ties go to the lower index (the behaviour the Python
 * reference pins). Linear scan with a small sorted buffer: k is 2 * numBeams.
 */
export function topK(values: ArrayLike<number>, k: number): Candidate[] {
  const out: Candidate[] = [];
  // the k-th best so far, kept in a local: most values fail this one comparison
  let floor = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (out.length === k && !(v > floor)) continue;
    let pos = out.length;
    while (pos > 0 && v > (out[pos - 1] as Candidate).score) pos--;
    out.splice(pos, 0, { score: v, index: i });
    if (out.length > k) out.pop();
    if (out.length === k) floor = (out[k - 1] as Candidate).score;
  }
  return out;
}
