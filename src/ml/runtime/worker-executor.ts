import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { EngineClosedError, InferenceAbortedError, InferenceError, InvalidFeedsError, MlError, ModelFormatError } from '../errors.js';
import type { InferenceJob, JobExecutor, JobResult, Priority } from './inference-job.js';
import type { CancelMessage, JobMessage, ReplyMessage, ReplyResult, WireError, WorkerInit } from './worker-protocol.js';

function fromWire(e: WireError): Error {
  switch (e.code) {
    case 'MODEL_FORMAT':
      return new ModelFormatError(e.message);
    case 'INVALID_FEEDS':
      return new InvalidFeedsError(e.message);
    case 'INFERENCE_FAILED':
      return new InferenceError(e.message);
    case 'ABORTED':
      return new InferenceAbortedError();
    default:
      return e.code ? new MlError(e.code, e.message) : new InferenceError(`${e.name}: ${e.message}`);
  }
}

/**
 * Creates the worker thread: inference-worker.js once compiled; under tsx/vitest (TypeScript
 * sources) a small eval'd bootstrap first registers tsx's loader inside the worker, because
 * Node 20 does not apply `--import` loaders given in a worker's execArgv.
 */
function spawnWorker(init: WorkerInit): Worker {
  const self = new URL(import.meta.url);
  if (!self.pathname.endsWith('.ts')) return new Worker(new URL('./inference-worker.js', self), { workerData: init });
  const tsxApi = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  const entry = new URL('./inference-worker.ts', self).href;
  const code = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(code, { eval: true, workerData: init });
}

/**
 * A {@link JobExecutor} backed by one worker thread running an {@link InferenceHost}. Inference
 * runs there, so the main event loop only copies tensors in and out.
 */
export class WorkerExecutor implements JobExecutor {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: ReplyResult) => void; reject: (e: Error) => void }>();
  private closed = false;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (msg: ReplyMessage) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(fromWire(msg.error));
    });
    const failAll = (err: Error): void => {
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('error', (err) => failAll(new InferenceError(`inference worker crashed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => {
      if (!this.closed) failAll(new InferenceError(`inference worker exited with code ${code}`));
    });
  }

  /** Starts a worker and waits until its sessions are loaded and warmed up. */
  static async start(init: WorkerInit): Promise<WorkerExecutor> {
    const worker = spawnWorker(init);
    await new Promise<void>((resolve, reject) => {
      const onMessage = (msg: ReplyMessage): void => {
        if (msg.id !== 0) return;
        worker.off('message', onMessage);
        if (msg.ok) resolve();
        else {
          void worker.terminate();
          reject(fromWire(msg.error));
        }
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new InferenceError(`inference worker exited with code ${code} while starting`)));
    });
    worker.removeAllListeners('error');
    worker.removeAllListeners('exit');
    return new WorkerExecutor(worker);
  }

  execute<J extends InferenceJob>(job: J, priority: Priority = 'interactive', signal?: AbortSignal): Promise<JobResult<J>> {
    if (this.closed) return Promise.reject(new EngineClosedError());
    if (signal?.aborted) return Promise.reject(new InferenceAbortedError());
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = (): void => this.worker.postMessage({ cancel: id } satisfies CancelMessage);
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = (): void => signal?.removeEventListener('abort', onAbort);
      this.pending.set(id, {
        resolve: (r) => {
          done();
          (resolve as (r: ReplyResult) => void)(r);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      // Feeds stay their callers': shared memory is posted as it is, anything else is cloned
      // (small: token ids, masks; large inputs live in shared memory, shared-memory.ts).
      this.worker.postMessage({ id, job, priority } satisfies JobMessage);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) p.reject(new EngineClosedError());
    this.pending.clear();
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage('close');
    const timer = setTimeout(() => void this.worker.terminate(), 2000);
    await exited;
    clearTimeout(timer);
  }
}
