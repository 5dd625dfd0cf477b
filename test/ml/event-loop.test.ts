import { mkdtempSync, readFileSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { createBlipEngine } from '../../src/ml/create-blip-engine.js';
import { parseModelManifest } from '../../src/ml/manifest/model-manifest.js';
import { InferenceHost } from '../../src/ml/runtime/inference-host.js';
import type { JobExecutor } from '../../src/ml/runtime/inference-job.js';
import { matmulChainModel } from '../../src/ml/runtime/matmul-graph.js';
import { WorkerExecutor } from '../../src/ml/runtime/worker-executor.js';

const N = 512;

/**
 * Event-loop delay while `work` runs again and again for at least `minMs`. A short window holds
 * only a few dozen samples, so its p99 is its maximum: one moment when the OS gave the core to
 * another process (CI runs test files side by side on 2 cores) failed the test without any of
 * our code blocking. Over a second or more, p99 measures what the loop does, not one hiccup.
 */
async function p99During(work: () => Promise<unknown>, minMs = 1500): Promise<{ p99: number; max: number; rounds: number; samples: number }> {
  const h = monitorEventLoopDelay({ resolution: 2 });
  h.enable();
  const start = performance.now();
  let rounds = 0;
  do {
    await work();
    rounds++;
  } while (performance.now() - start < minMs);
  h.disable();
  // samples: a loop that never reached the timer phase (work that resolves synchronously) records
  // almost none, and an empty histogram would report p99 0.
  return { p99: h.percentile(99) / 1e6, max: h.max / 1e6, rounds, samples: h.count };
}

function heavyModelDir(): { dir: string; manifest: ReturnType<typeof parseModelManifest> } {
  const dir = mkdtempSync(path.join(tmpdir(), 'blip-heavy-'));
  cpSync('test/fixtures/tiny-random', dir, { recursive: true });
  const { bytes } = matmulChainModel(N, 40); // about 100 ms a run on one 2026 CI core
  writeFileSync(path.join(dir, 'heavy.onnx'), bytes);
  const json = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const io = (name: string) => ({ name, dtype: 'float32', shape: [N, N] });
  json.graphs.heavy = { file: 'heavy.onnx', inputs: [io('x'), io('w')], outputs: [io('y')] };
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(json));
  return { dir, manifest: parseModelManifest(json) };
}

async function runHeavy(exec: JobExecutor, times: number): Promise<void> {
  const x = { dtype: 'float32' as const, dims: [N, N], data: new Float32Array(N * N).fill(0.01) };
  for (let i = 0; i < times; i++) await exec.execute({ kind: 'run', graph: 'heavy', feeds: { x, w: x } }, 'interactive');
}

describe('event loop stays responsive during inference', () => {
  it('a blocking graph run in a worker keeps p99 <= 20 ms; the same run in-process does not (control)', async () => {
    const { dir, manifest } = heavyModelDir();
    const options = { graphs: ['heavy'], warmUp: false, intraOpNumThreads: 1 };
    const inline = await InferenceHost.open(dir, manifest, options);
    await runHeavy(inline, 1);
    const blocked = await p99During(() => runHeavy(inline, 6), 0);
    await inline.close();
    const worker = await WorkerExecutor.start({ modelDir: dir, manifest, options });
    await runHeavy(worker, 1);
    const free = await p99During(() => runHeavy(worker, 6), 0);
    await worker.close();
    console.log(`event-loop p99: in-process ${blocked.p99.toFixed(1)} ms (max ${blocked.max.toFixed(1)}), worker ${free.p99.toFixed(1)} ms (max ${free.max.toFixed(1)})`);
    expect(blocked.p99).toBeGreaterThan(40);
    expect(free.samples).toBeGreaterThan(100);
    expect(free.p99).toBeLessThanOrEqual(20);
  }, 60_000);

  it('engine: p99 <= 20 ms during a beam-3 caption and during a batch of 32 image embeddings', async () => {
    const engine = await createBlipEngine({ modelDir: 'models/blip-scenes' });
    const image = await engine.loadImage(readFileSync('test/golden/images/scene.png'));
    const caption = await p99During(() => engine.caption({ ...image }, { numBeams: 3, maxLength: 20, minLength: 5 }));
    // Fresh objects each time: the engine caches encodings per LoadedImage object.
    const images = () => Array.from({ length: 32 }, () => ({ ...image }));
    const visionRuns = () => engine.scheduler.stats.runsByGraph[engine.manifest.tasks.retrieval.vision] ?? 0;
    const before = visionRuns();
    await engine.embedImages(images());
    const runsPerBatch = visionRuns() - before;
    const embed = await p99During(() => engine.embedImages(images()));
    await engine.close();
    console.log(
      `engine event-loop p99: ${caption.rounds} beam-3 captions ${caption.p99.toFixed(1)} ms (max ${caption.max.toFixed(1)}), ` +
        `${embed.rounds} batches of 32 embeddings ${embed.p99.toFixed(1)} ms (max ${embed.max.toFixed(1)}), ${runsPerBatch} graph runs per batch`,
    );
    for (const m of [caption, embed]) {
      expect(m.samples).toBeGreaterThan(100);
      expect(m.p99).toBeLessThanOrEqual(20);
    }
    expect(runsPerBatch).toBeLessThan(32);
  }, 60_000);
});
