import type { Logger } from '../lib/logger.js';
import type { ProcessRegistryRepository } from '../repositories/process-registry.repository.js';

/**
 * The last step of a rolling model change (docs/scaling.md): every API replica and worker
 * heartbeats the model it serves; an API replica removes the embeddings of models that no process
 * has served for `staleMs` (their heartbeats stopped: the old replicas and workers are gone). It
 * waits `staleMs` after its own start before it judges, so that it has seen everyone's heartbeat.
 * Embeddings are derived data: a model brought back is re-embedded from the originals.
 */
export class ModelRetirement {
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();

  constructor(
    private readonly registry: ProcessRegistryRepository,
    private readonly self: { id: string; role: string; modelId: string },
    private readonly options: { staleMs: number; retire: boolean },
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await this.tick();
    const next = () => {
      this.timer = setTimeout(() => {
        void this.tick().finally(next);
      }, Math.max(50, this.options.staleMs / 4));
      this.timer.unref();
    };
    next();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.registry.remove(this.self.id).catch(() => undefined);
  }

  private async tick(): Promise<void> {
    try {
      const now = Date.now();
      await this.registry.beat({ ...this.self, seenAt: now });
      if (!this.options.retire || now - this.startedAt < this.options.staleMs) return;
      const beats = await this.registry.list();
      const live = new Set(beats.filter((b) => now - b.seenAt < this.options.staleMs).map((b) => b.modelId));
      for (const beat of beats) if (now - beat.seenAt >= this.options.staleMs * 4) await this.registry.remove(beat.id);
      for (const modelId of await this.registry.embeddedModels()) {
        if (modelId === this.self.modelId || live.has(modelId)) continue;
        const removed = await this.registry.deleteEmbeddings(modelId);
        this.log.warn({ modelId, removed }, 'removed the embeddings of a model no process serves any more');
      }
    } catch (error) {
      this.log.warn({ err: error }, 'model heartbeat or retirement failed; trying again');
    }
  }
}
