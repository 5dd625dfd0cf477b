/**
 * Entry point of an inference worker thread: opens an {@link InferenceHost} and executes the
 * jobs it is sent. ORT's run() is synchronous native code; here it blocks only this thread.
 * Jobs are handled as they arrive, so an interactive run sent while a generation is in progress
 * executes between two decoder steps.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { InferenceHost } from './inference-host.js';
import type { JobMessage, ReplyMessage, WireError, WorkerInit } from './worker-protocol.js';
import type { TensorMap } from './tensor.js';

const port = parentPort;
if (!port) throw new Error('inference-worker must run as a worker thread');

function toWire(err: unknown): WireError {
  const e = err as { name?: string; code?: string; message?: string };
  return { name: e?.name ?? 'Error', code: e?.code, message: e?.message ?? String(err) };
}

function transferables(result: TensorMap | number[]): ArrayBuffer[] {
  if (Array.isArray(result)) return [];
  return Object.values(result).map((t) => t.data.buffer as ArrayBuffer);
}

const init = workerData as WorkerInit;
try {
  const host = await InferenceHost.open(init.modelDir, init.manifest, init.options);
  port.on('message', (msg: JobMessage | 'close') => {
    if (msg === 'close') {
      void host.close().finally(() => port.close());
      return;
    }
    host.execute(msg.job).then(
      (result) => port.postMessage({ id: msg.id, ok: true, result } satisfies ReplyMessage, transferables(result)),
      (err: unknown) => port.postMessage({ id: msg.id, ok: false, error: toWire(err) } satisfies ReplyMessage),
    );
  });
  port.postMessage({ id: 0, ok: true, result: [] } satisfies ReplyMessage);
} catch (err) {
  port.postMessage({ id: 0, ok: false, error: toWire(err) } satisfies ReplyMessage);
}
