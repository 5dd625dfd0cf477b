import { describe, expect, it } from 'vitest';
import { concat, floatTensor, gather, sliceBatch } from '../../src/ml/runtime/tensor.js';

describe('tensor helpers', () => {
  const a = floatTensor(Float32Array.from([1, 2, 3, 4]), [1, 2, 2]);
  const b = floatTensor(Float32Array.from([5, 6, 7, 8]), [1, 2, 2]);
  it('concat along axis 0 and 1', () => {
    expect(Array.from(concat([a, b], 0).data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(concat([a, b], 1).dims).toEqual([1, 4, 2]);
    expect(Array.from(concat([a, b], 2).data)).toEqual([1, 2, 5, 6, 3, 4, 7, 8]);
  });
  it('gather reorders and repeats rows of an inner axis', () => {
    const kv = floatTensor(Float32Array.from([0, 1, 2, 10, 11, 12]), [2, 3]);
    expect(Array.from(gather(kv, [2, 2, 0], 1).data)).toEqual([2, 2, 0, 12, 12, 10]);
  });
  it('sliceBatch copies, into shared memory when asked', () => {
    const s = sliceBatch(concat([a, b], 0), 1, 2);
    expect(Array.from(s.data)).toEqual([5, 6, 7, 8]);
    expect(s.data.buffer.byteLength).toBe(16);
    expect(s.data.buffer).toBeInstanceOf(ArrayBuffer);
    const shared = sliceBatch(concat([a, b], 0), 0, 1, true);
    expect(Array.from(shared.data)).toEqual([1, 2, 3, 4]);
    expect(shared.dims).toEqual([1, 2, 2]);
    expect(shared.data.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(shared.data.buffer.byteLength).toBe(16);
  });
});
