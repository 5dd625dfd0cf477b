/**
 * Typed arrays over SharedArrayBuffers. Data that crosses between the main thread and the
 * inference workers more than once (pixels, ITM states, vision states) lives in shared memory, so
 * posting it is free on both sides: a structured clone would copy it on the event loop, and a
 * transfer would take it from the cache that keeps it.
 */

type Typed = Float32Array | Int8Array | BigInt64Array;
type Ctor<T extends Typed> = { new (buffer: SharedArrayBuffer, byteOffset?: number, length?: number): T; BYTES_PER_ELEMENT: number };

/** Results larger than this cross threads in shared memory; smaller ones are moved or cloned. */
export const SHARE_ABOVE_BYTES = 64 * 1024;

/** A zeroed shared array of `length` elements (pages are touched by whoever writes them first). */
export function sharedArray<T extends Typed>(ctor: Ctor<T>, length: number): T {
  return new ctor(new SharedArrayBuffer(length * ctor.BYTES_PER_ELEMENT), 0, length);
}

/** `a` itself when it is already shared, else a shared copy. */
export function toShared<T extends Typed>(a: T): T {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const ctor = a.constructor as unknown as Ctor<T>;
  const out = sharedArray(ctor, a.length);
  (out as Float32Array).set(a as Float32Array);
  return out;
}

/** Whether the array's memory is shared (then it must never be listed for transfer). */
export function isShared(a: { buffer: ArrayBufferLike }): boolean {
  return a.buffer instanceof SharedArrayBuffer;
}
