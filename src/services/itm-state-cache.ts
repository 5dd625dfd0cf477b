import { LRUCache } from 'lru-cache';
import type { ImageRecord } from '../domain/image.js';
import type { BlipEngine, ItmStates } from '../ml/blip-engine.js';
import type { ImageBlobs } from './ports.js';

/**
 * ITM re-ranking needs each candidate's ITM states (ImageEncoding.itmStates: int8 codes and
 * per-token scales, 0.44 MB per image at base size). They are derived data: kept in memory (LRU
 * by bytes), on disk under DATA_DIR, and recomputed from the stored original when both are
 * missing (first search after a model change, or a lost cache file).
 */
export class ItmStateCache {
  private readonly memory: LRUCache<string, ItmStates>;

  constructor(
    private readonly engine: BlipEngine,
    private readonly files: ImageBlobs,
    maxBytes: number,
  ) {
    this.memory = new LRUCache({ maxSize: Math.max(1, maxBytes), sizeCalculation: (v) => Math.max(1, v.codes.byteLength + v.scales.byteLength) });
  }

  async put(sha256: string, states: ItmStates): Promise<void> {
    await this.files.writeItmStates(this.engine.modelId, sha256, states);
    this.memory.set(sha256, states);
  }

  async get(image: ImageRecord): Promise<ItmStates> {
    const cached = this.memory.get(image.sha256);
    if (cached) return cached;
    let states = await this.files.readItmStates(this.engine.modelId, image.sha256, this.engine.itmStateDims);
    if (!states) {
      const bytes = await this.files.readOriginal(image.sha256);
      const loaded = await this.engine.loadImage(bytes);
      states = (await this.engine.embedImage(loaded)).itmStates;
      await this.files.writeItmStates(this.engine.modelId, image.sha256, states);
    }
    this.memory.set(image.sha256, states);
    return states;
  }
}
