import { AsyncLocalStorage } from 'node:async_hooks';
import type { BlipEngine, InferenceOptions } from '../ml/blip-engine.js';
import type { VisualAnswerer } from '../ml/visual-answerer.js';
import { EngineDecorator } from './engine-decorator.js';
import { WorkLimiter } from './work-limiter.js';

interface Scope {
  signal: AbortSignal;
}

const storage = new AsyncLocalStorage<Scope>();

/**
 * Runs `fn` (the rest of an HTTP request) with `signal`, which fires when the client goes away:
 * every engine call made inside, however deep in the services, gets it (see RequestScopedEngine),
 * so a cancelled request's queued model work leaves the queue instead of running for nobody.
 */
export function runInRequestScope<T>(signal: AbortSignal, fn: () => T): T {
  return storage.run({ signal }, fn);
}

export function currentRequestSignal(): AbortSignal | undefined {
  return storage.getStore()?.signal;
}

function withSignal<O extends InferenceOptions>(options: O | undefined): O | undefined {
  const scoped = currentRequestSignal();
  if (!scoped) return options;
  const own = options?.signal;
  return { ...(options ?? ({} as O)), signal: own ? AbortSignal.any([own, scoped]) : scoped };
}

/**
 * The engine as services use it: each call carries the request's signal, image decodes run at
 * most N at once (WorkLimiter: a 50 MP decode holds hundreds of MB), and calls in flight are counted
 * with the age of the oldest, which /healthz reports as "degraded" when work backs up.
 */
export class RequestScopedEngine extends EngineDecorator {
  private readonly started = new Map<number, number>();
  private nextId = 0;
  private readonly decodes: WorkLimiter;

  constructor(inner: BlipEngine, limits: { maxConcurrentDecodes: number }) {
    super(inner);
    // Decodes wait rather than fail: a search after a model change decodes its candidates to
    // rebuild their ITM states (src/services/itm-state-cache.ts), hundreds at once. Refusing
    // overload quickly is the ingest limiter's job (src/services/ingest.service.ts).
    this.decodes = new WorkLimiter('image decodes', limits.maxConcurrentDecodes, Infinity);
  }

  /** Engine calls in flight and how long the oldest has waited (ms). */
  backlog(now = performance.now()): { pending: number; oldestMs: number } {
    let oldest = now;
    for (const t of this.started.values()) oldest = Math.min(oldest, t);
    return { pending: this.started.size, oldestMs: Math.round(now - oldest) };
  }

  /** Counts the call in flight (backlog) while it runs. */
  protected async around<T>(call: () => Promise<T>): Promise<T> {
    const id = this.nextId++;
    this.started.set(id, performance.now());
    try {
      return await call();
    } finally {
      this.started.delete(id);
    }
  }

  protected override scoped<O extends InferenceOptions>(options: O | undefined): O | undefined {
    return withSignal(options);
  }

  /** Decodes take a WorkLimiter slot, and a request that is gone never starts one. */
  override loadImage(bytes: Uint8Array) {
    const signal = currentRequestSignal();
    return this.around(() => this.decodes.run(() => (signal?.throwIfAborted(), this.inner.loadImage(bytes)), signal));
  }
}

/**
 * An answerer other than the BLIP engine (a BLIP-2 folder) as services use it: its questions carry
 * the request's signal too, so a client that leaves takes its queued generation with it.
 */
export function requestScopedAnswerer(inner: VisualAnswerer): VisualAnswerer {
  return {
    name: inner.name,
    modelId: inner.modelId,
    family: inner.family,
    tasks: inner.tasks,
    loadImage: (bytes) => inner.loadImage(bytes),
    answer: (image, question, options) => inner.answer(image, question, withSignal(options)),
    close: () => inner.close(),
  };
}
