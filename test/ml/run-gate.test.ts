import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../src/ml/runtime/buffer-pool.js';
import { RunGate } from '../../src/ml/runtime/run-gate.js';

const busy = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('RunGate', () => {
  it('runs one function at a time', async () => {
    const gate = new RunGate();
    let inside = 0;
    let most = 0;
    await Promise.all(Array.from({ length: 6 }, (_, i) => gate.run(i % 2 ? 'background' : 'interactive', async () => {
      most = Math.max(most, ++inside);
      await busy(3);
      inside--;
    })));
    expect(most).toBe(1);
  });

  it('interactive runs go before waiting background runs', async () => {
    const gate = new RunGate(0);
    const order: string[] = [];
    const first = gate.run('background', async () => busy(10));
    const rest = [
      gate.run('background', async () => void order.push('bg')),
      gate.run('interactive', async () => void order.push('fg')),
    ];
    await Promise.all([first, ...rest]);
    expect(order).toEqual(['fg', 'bg']);
  });

  it('the share is of time: short background runs against long interactive ones still get it', async () => {
    const gate = new RunGate(0.4, 2000);
    const spent = { interactive: 0, background: 0 };
    let stop = false;
    const loop = async (priority: 'interactive' | 'background', ms: number) => {
      while (!stop) {
        await gate.run(priority, async () => {
          const t0 = performance.now();
          await busy(ms);
          spent[priority] += performance.now() - t0;
        });
      }
    };
    // Decoder steps (short) against ITM batches (long), as an ingest against searches.
    const loops = [loop('interactive', 40), loop('interactive', 40), loop('background', 4)];
    await busy(1200);
    stop = true;
    await Promise.all(loops);
    const share = spent.background / (spent.background + spent.interactive);
    expect(share).toBeGreaterThan(0.25);
    expect(share).toBeLessThan(0.55);
  });

  it('background keeps its share of the time while interactive runs keep coming', async () => {
    const gate = new RunGate(0.4);
    const spent = { interactive: 0, background: 0 };
    let stop = false;
    const loop = async (priority: 'interactive' | 'background', ms: number) => {
      while (!stop) {
        await gate.run(priority, async () => {
          const t0 = performance.now();
          await busy(ms);
          spent[priority] += performance.now() - t0;
        });
      }
    };
    // Three interactive streams against one background stream: strict priority would starve it.
    const loops = [loop('interactive', 4), loop('interactive', 4), loop('interactive', 4), loop('background', 4)];
    await busy(400);
    stop = true;
    await Promise.all(loops);
    const share = spent.background / (spent.background + spent.interactive);
    expect(share).toBeGreaterThan(0.25);
    expect(share).toBeLessThan(0.55);
  });
});

describe('BufferPool', () => {
  it('hands a released buffer out again for a request it fits, and a new one while it is held', () => {
    const pool = new BufferPool();
    const a = pool.acquire(1000);
    expect(a.byteLength).toBeGreaterThanOrEqual(1000);
    const b = pool.acquire(1000);
    expect(b).not.toBe(a);
    pool.release(a);
    expect(pool.acquire(900)).toBe(a);
    expect(pool.acquire(5000)).not.toBe(b);
  });

  it('drops free buffers beyond its limit', () => {
    const pool = new BufferPool(4096);
    for (const b of [pool.acquire(3000), pool.acquire(3000)]) pool.release(b);
    expect(pool.freeBytes).toBeLessThanOrEqual(4096);
  });
});
