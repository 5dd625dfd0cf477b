/**
 * The machine's fp32 and int8 arithmetic peaks, from bench/peak-probe.c compiled for this CPU
 * (the C compiler that builds hnswlib-node and better-sqlite3 is there wherever the project
 * installs). The best of several short runs: the second vCPU of our VMs is sometimes busy with a
 * neighbour, and the peak is what the hardware can do, not what a busy moment allows.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Peak {
  /** Operations per second over `threads` threads (fp32: flops; int8: multiply-adds x 2). */
  gops: number;
  threads: number;
  isa: string;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));

function compile(): string {
  const dir = path.join(HERE, '..', '.cache', 'bench');
  mkdirSync(dir, { recursive: true });
  const exe = path.join(dir, 'peak-probe');
  execFileSync(process.env.CC ?? 'cc', ['-O3', '-march=native', '-pthread', path.join(HERE, 'peak-probe.c'), '-o', exe]);
  return exe;
}

let exe: string | undefined;

/** Best of `tries` runs of the probe. */
export function measurePeak(kind: 'fp32' | 'int8', threads: number, tries = 5): Peak {
  exe ??= compile();
  let best: Peak = { gops: 0, threads, isa: '' };
  for (let i = 0; i < tries; i++) {
    const r = JSON.parse(execFileSync(exe, [kind, String(threads)]).toString()) as { gops: number; isa: string };
    if (r.gops > best.gops) best = { gops: r.gops, threads, isa: r.isa };
  }
  return best;
}
