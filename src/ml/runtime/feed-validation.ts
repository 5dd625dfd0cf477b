import { InvalidFeedsError } from '../errors.js';
import type { GraphSpec, IoSpec } from '../manifest/model-manifest.js';
import { describeTensor, sizeOf, type TensorMap } from './tensor.js';

/**
 * Resolves a declared dim against the symbols bound so far. Numbers are fixed; a name
 * (`batch`, `seq`, `past`...) binds on first use and must agree afterwards; a sum such as
 * `past+new` is checked once all its terms are bound.
 * @returns an error string, or null when the dim is acceptable.
 */
function checkDim(declaredDim: number | string, actual: number, bound: Map<string, number>): string | null {
  const declared = normaliseDim(declaredDim);
  if (typeof declared === 'number') return declared === actual ? null : `expected ${declared}, got ${actual}`;
  if (declared.includes('+')) {
    const terms = declared.split('+').map((s) => s.trim());
    if (terms.every((t) => bound.has(t) || /^\d+$/.test(t))) {
      const sum = terms.reduce((s, t) => s + (bound.get(t) ?? Number(t)), 0);
      return sum === actual ? null : `expected ${declared} = ${sum}, got ${actual}`;
    }
    return null;
  }
  const prev = bound.get(declared);
  if (prev === undefined) {
    bound.set(declared, actual);
    return null;
  }
  return prev === actual ? null : `"${declared}" is ${prev} elsewhere, got ${actual}`;
}

/**
 * Checks feeds against a graph's declared inputs (names, dtypes, ranks, fixed dims and
 * consistent symbolic dims) before anything reaches onnxruntime, whose own errors name neither
 * the graph nor the offending tensor.
 * @throws InvalidFeedsError listing every mismatch and the declared inputs.
 */
export function validateFeeds(graphName: string, spec: GraphSpec, feeds: TensorMap): void {
  const problems: string[] = [];
  const bound = new Map<string, number>();
  const declared = new Set(spec.inputs.map((i) => i.name));
  for (const name of Object.keys(feeds)) {
    if (!declared.has(name)) problems.push(`unexpected input "${name}"`);
  }
  // sums are checked after plain symbols are bound, wherever they appear
  const ordered = [...spec.inputs].sort((a, b) => Number(a.shape.some(isSum)) - Number(b.shape.some(isSum)));
  for (const input of ordered) {
    const t = feeds[input.name];
    if (!t) {
      problems.push(`missing input "${input.name}"`);
      continue;
    }
    if (t.dtype !== input.dtype) problems.push(`${input.name}: dtype ${t.dtype}, expected ${input.dtype}`);
    if (t.dims.length !== input.shape.length) {
      problems.push(`${input.name}: rank ${t.dims.length}, expected ${input.shape.length} ([${input.shape.join(',')}])`);
      continue;
    }
    if (t.data.length !== sizeOf(t.dims)) problems.push(`${input.name}: ${t.data.length} elements for dims [${t.dims.join(',')}]`);
    input.shape.forEach((d, axis) => {
      const err = checkDim(d, t.dims[axis] ?? -1, bound);
      if (err) problems.push(`${input.name} axis ${axis}: ${err}`);
    });
  }
  if (problems.length > 0) {
    const want = spec.inputs.map(describeSpec).join(', ');
    const got = Object.entries(feeds).map(([n, t]) => describeTensor(n, t)).join(', ');
    throw new InvalidFeedsError(`graph "${graphName}": ${problems.join('; ')}. Declared inputs: ${want}. Given: ${got}`);
  }
}

function isSum(d: number | string): boolean {
  return typeof d === 'string' && normaliseDim(d).toString().includes('+');
}

// exporters spell a sum either `past+new` or `past_plus_new` (an identifier-safe name)
function normaliseDim(d: number | string): number | string {
  return typeof d === 'string' ? d.replace(/_plus_/g, '+') : d;
}

/** `name: dtype[batch,3,96,96]` */
export function describeSpec(io: IoSpec): string {
  return `${io.name}: ${io.dtype}[${io.shape.join(',')}]`;
}

/**
 * Concrete dims for a warm-up run: batch 1, past 0, other symbols 1, sums evaluated.
 */
export function warmUpDims(shape: ReadonlyArray<number | string>): number[] {
  const value = (s: string): number => (s === 'past' ? 0 : /^\d+$/.test(s) ? Number(s) : 1);
  return shape.map(normaliseDim).map((d) => (typeof d === 'number' ? d : d.split('+').reduce((sum, t) => sum + value(t.trim()), 0)));
}
