/**
 * Plain tensors that cross worker boundaries (structured-clone / transferable) and that the
 * generation code manipulates without knowing onnxruntime. Row-major, like ORT.
 */
import { sharedArray } from './shared-memory.js';

/** Element types the BLIP graphs use. */
export type TensorDtype = 'float32' | 'int64' | 'int8';

/** A float32 tensor: `data.length === product(dims)`. */
export interface FloatTensor {
  dtype: 'float32';
  dims: number[];
  data: Float32Array;
}

/** An int64 tensor (token ids, masks): `data.length === product(dims)`. */
export interface IntTensor {
  dtype: 'int64';
  dims: number[];
  data: BigInt64Array;
}

/** An int8 tensor (quantized ITM states): `data.length === product(dims)`. */
export interface Int8Tensor {
  dtype: 'int8';
  dims: number[];
  data: Int8Array;
}

/** Any tensor a graph takes or returns. */
export type TensorData = FloatTensor | IntTensor | Int8Tensor;

/** Named graph inputs or outputs. */
export type TensorMap = Record<string, TensorData>;

/** Product of dims (1 for a scalar). */
export function sizeOf(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Float32 tensor over `data` (not copied). */
export function floatTensor(data: Float32Array, dims: number[]): FloatTensor {
  if (data.length !== sizeOf(dims)) throw new RangeError(`float32 data has ${data.length} elements, dims [${dims}] need ${sizeOf(dims)}`);
  return { dtype: 'float32', dims, data };
}

/** Int64 tensor from numbers (token ids) or a BigInt64Array. */
export function intTensor(data: ArrayLike<number> | BigInt64Array, dims: number[]): IntTensor {
  const arr = data instanceof BigInt64Array ? data : BigInt64Array.from(Array.from(data, (v) => BigInt(v)));
  if (arr.length !== sizeOf(dims)) throw new RangeError(`int64 data has ${arr.length} elements, dims [${dims}] need ${sizeOf(dims)}`);
  return { dtype: 'int64', dims, data: arr };
}

/** Int8 tensor over `data` (not copied). */
export function int8Tensor(data: Int8Array, dims: number[]): Int8Tensor {
  if (data.length !== sizeOf(dims)) throw new RangeError(`int8 data has ${data.length} elements, dims [${dims}] need ${sizeOf(dims)}`);
  return { dtype: 'int8', dims, data };
}

/** A new, zeroed array of `dtype` with `length` elements. */
export function allocate<T extends TensorData>(dtype: T['dtype'], length: number): T['data'] {
  return (dtype === 'float32' ? new Float32Array(length) : dtype === 'int64' ? new BigInt64Array(length) : new Int8Array(length)) as T['data'];
}

/** `name: dtype[d0,d1,...]`, for error messages and logs. */
export function describeTensor(name: string, t: { dtype: string; dims: readonly number[] }): string {
  return `${name}: ${t.dtype}[${t.dims.join(',')}]`;
}

/**
 * Concatenates tensors along `axis` (all other dims must match). Used to batch requests along
 * the batch axis (0) and to tile cross-attention K/V per beam (axis 2 of [L,2,B,H,S,Dh]).
 */
export function concat<T extends TensorData>(tensors: readonly T[], axis = 0): T {
  const first = tensors[0];
  if (!first) throw new RangeError('concat of no tensors');
  if (tensors.length === 1) return first;
  const outer = sizeOf(first.dims.slice(0, axis));
  const dims = [...first.dims];
  dims[axis] = tensors.reduce((s, t) => s + (t.dims[axis] ?? 0), 0);
  const out = allocate<T>(first.dtype, sizeOf(dims));
  const chunks = tensors.map((t) => sizeOf(t.dims.slice(axis)));
  let offset = 0;
  for (let o = 0; o < outer; o++) {
    tensors.forEach((t, i) => {
      const n = chunks[i] ?? 0;
      (out as Float32Array).set((t.data as Float32Array).subarray(o * n, o * n + n), offset);
      offset += n;
    });
  }
  return { dtype: first.dtype, dims, data: out } as T;
}

/**
 * Rows `indices` of `axis` (with repetition), e.g. reordering a KV cache [L,2,B,H,P,Dh] after a
 * beam-search step (axis 2) or splitting a batched output back into requests (axis 0).
 */
export function gather<T extends TensorData>(t: T, indices: readonly number[], axis = 0): T {
  const outer = sizeOf(t.dims.slice(0, axis));
  const n = t.dims[axis] ?? 0;
  const inner = sizeOf(t.dims.slice(axis + 1));
  const dims = [...t.dims];
  dims[axis] = indices.length;
  const out = allocate<T>(t.dtype, sizeOf(dims));
  const src = t.data as Float32Array;
  let offset = 0;
  for (let o = 0; o < outer; o++) {
    for (const idx of indices) {
      if (idx < 0 || idx >= n) throw new RangeError(`gather index ${idx} out of range [0,${n})`);
      const start = (o * n + idx) * inner;
      (out as Float32Array).set(src.subarray(start, start + inner), offset);
      offset += inner;
    }
  }
  return { dtype: t.dtype, dims, data: out } as T;
}

/**
 * Rows [start, end) of axis 0 as a copy, so that each caller of a merged run owns its buffer;
 * in shared memory when `shared` (shared-memory.ts: posting it between threads is then free).
 */
export function sliceBatch<T extends TensorData>(t: T, start: number, end: number, shared = false): T {
  const inner = sizeOf(t.dims.slice(1));
  const rows = t.data.subarray(start * inner, end * inner) as T['data'];
  const dims = [end - start, ...t.dims.slice(1)];
  if (!shared) return { dtype: t.dtype, dims, data: rows.slice() } as T;
  const data = sharedArray(t.data.constructor as Parameters<typeof sharedArray>[0], rows.length);
  (data as Float32Array).set(rows as Float32Array);
  return { dtype: t.dtype, dims, data } as T;
}
