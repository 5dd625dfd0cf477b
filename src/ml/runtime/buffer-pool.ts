/**
 * Reusable scratch memory for an inference worker's hot paths (ITM batches, the decoder's
 * key/value cache). A fresh buffer costs a page fault per 4 KB the first time it is written
 * (about 3.5 ms per MB on our VMs), so buffers are kept and handed out again instead.
 *
 * Jobs interleave inside a worker (between graph runs), so a buffer belongs to one job between
 * `acquire` and `release`.
 */
export class BufferPool {
  private readonly free: ArrayBuffer[] = [];

  /** Bytes currently held by free buffers (bounded by `maxFreeBytes`). */
  get freeBytes(): number {
    return this.free.reduce((s, b) => s + b.byteLength, 0);
  }

  /** @param maxFreeBytes free buffers beyond this are dropped (left to the garbage collector). */
  constructor(private readonly maxFreeBytes = 512 * 1024 * 1024) {}

  /** The smallest free buffer of at least `bytes`, else a new one. */
  acquire(bytes: number): ArrayBuffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i] as ArrayBuffer;
      if (b.byteLength >= bytes && (best < 0 || b.byteLength < (this.free[best] as ArrayBuffer).byteLength)) best = i;
    }
    if (best >= 0) return this.free.splice(best, 1)[0] as ArrayBuffer;
    // Rounded up so that slowly growing requests (a longer text, one more candidate) reuse it.
    return new ArrayBuffer(Math.max(64, 2 ** Math.ceil(Math.log2(Math.max(1, bytes)))));
  }

  release(buffer: ArrayBuffer): void {
    this.free.push(buffer);
    this.free.sort((a, b) => b.byteLength - a.byteLength);
    while (this.freeBytes > this.maxFreeBytes) this.free.pop();
  }
}
