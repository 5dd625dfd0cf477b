/**
 * Entry point of an inference worker thread: opens an {@link InferenceHost} and executes the
 * jobs it is sent. ORT's run() is synchronous native code; here it blocks only this thread.
 * Jobs are handled as they arrive and take turns between graph runs (the host's run gate), so an
 * interactive run sent while a caption is being generated executes between two decoder steps.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { InferenceHost } from './inference-host.js';
import { isShared, SHARE_ABOVE_BYTES, toShared } from './shared-memory.js';
import type { CancelMessage, JobMessage, ReplyMessage, ReplyResult, WireError, WorkerInit } from './worker-protocol.js';
import type { TensorMap } from './tensor.js';

const port = parentPort;
if (!port) throw new Error('inference-worker must run as a worker thread');

function toWire(err: unknown): WireError {
  const e = err as { name?: string; code?: string; message?: string };
  return { name: e?.name ?? 'Error', code: e?.code, message: e?.message ?? String(err) };
}

/**
 * Large outputs are copied into shared memory here, on the worker's time: the engine caches them
 * and may send them back (vision states to a caption job, ITM states to re-ranking), which is
 * free for shared memory and a copy on the event loop otherwise.
 */
function prepare(result: ReplyResult): { result: ReplyResult; transfer: ArrayBuffer[] } {
  if (result instanceof Float32Array) return { result, transfer: isShared(result) ? [] : [result.buffer as ArrayBuffer] };
  // Token ids (numbers, or one array per merged generation), or a merged run's parts (tensor
  // maps, already split on this thread).
  const maps = Array.isArray(result) ? result.filter((r): r is TensorMap => typeof r === 'object' && !Array.isArray(r)) : [result];
  const transfer: ArrayBuffer[] = [];
  for (const t of maps.flatMap((m) => Object.values(m))) {
    if (t.data.byteLength > SHARE_ABOVE_BYTES) t.data = toShared(t.data as Float32Array) as typeof t.data;
    else if (!isShared(t.data)) transfer.push(t.data.buffer as ArrayBuffer);
  }
  return { result, transfer };
}

const init = workerData as WorkerInit;
try {
  const host = await InferenceHost.open(init.modelDir, init.manifest, init.options);
  const running = new Map<number, AbortController>();
  port.on('message', (msg: JobMessage | CancelMessage | 'close') => {
    if (msg === 'close') {
      void host.close().finally(() => port.close());
      return;
    }
    if ('cancel' in msg) {
      running.get(msg.cancel)?.abort();
      return;
    }
    const abort = new AbortController();
    running.set(msg.id, abort);
    host.execute(msg.job, msg.priority, abort.signal).then(
      (out) => {
        const { result, transfer } = prepare(out);
        port.postMessage({ id: msg.id, ok: true, result } satisfies ReplyMessage, transfer);
      },
      (err: unknown) => port.postMessage({ id: msg.id, ok: false, error: toWire(err) } satisfies ReplyMessage),
    ).finally(() => running.delete(msg.id));
  });
  port.postMessage({ id: 0, ok: true, result: [] } satisfies ReplyMessage);
} catch (err) {
  port.postMessage({ id: 0, ok: false, error: toWire(err) } satisfies ReplyMessage);
}
