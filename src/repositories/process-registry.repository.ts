import type { DbClient } from './database.js';

const PREFIX = 'process:';

export interface ProcessBeat {
  id: string;
  role: string;
  modelId: string;
  /** Epoch ms of the last heartbeat, by the writer's clock. */
  seenAt: number;
}

/**
 * Which processes (API replicas, workers) serve which model: heartbeat rows in the Setting table
 * (`process:<id>`), so that an old model's embeddings are removed only once nothing serves it
 * (src/services/model-retirement.service.ts).
 */
export class ProcessRegistryRepository {
  constructor(private readonly db: DbClient) {}

  async beat(beat: ProcessBeat): Promise<void> {
    const key = PREFIX + beat.id;
    const value = JSON.stringify(beat);
    await this.db.setting.upsert({ where: { key }, create: { key, value }, update: { value } });
  }

  async remove(id: string): Promise<void> {
    await this.db.setting.deleteMany({ where: { key: PREFIX + id } });
  }

  async list(): Promise<ProcessBeat[]> {
    const rows = await this.db.setting.findMany({ where: { key: { startsWith: PREFIX } } });
    return rows.flatMap((r) => {
      try {
        return [JSON.parse(r.value) as ProcessBeat];
      } catch {
        return [];
      }
    });
  }

  /** Models that have embeddings stored. */
  async embeddedModels(): Promise<string[]> {
    return (await this.db.imageEmbedding.groupBy({ by: ['modelId'] })).map((r) => r.modelId);
  }

  /** Removes every embedding of a model (the feed's trigger records each removal). */
  async deleteEmbeddings(modelId: string): Promise<number> {
    return (await this.db.imageEmbedding.deleteMany({ where: { modelId } })).count;
  }
}
