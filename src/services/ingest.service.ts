import { createHash, randomUUID } from 'node:crypto';
import type { ImageRecord } from '../domain/image.js';
import type { Logger } from '../lib/logger.js';
import type { BlipEngine } from '../ml/blip-engine.js';
import type { ImageFileStore } from '../repositories/image-file-store.js';
import type { PrismaImageRepository } from '../repositories/image.repository.js';
import { engineCall } from './engine-errors.js';
import type { ImageIndexService } from './image-index.service.js';
import { readImageSource, type ImageSource } from './image-source.js';
import { requireMetadata, requireText } from './input-rules.js';
import type { ItmStateCache } from './itm-state-cache.js';
import { currentRequestSignal } from './request-scope.js';
import { WorkLimiter } from './work-limiter.js';

export interface IngestCommand {
  source: ImageSource;
  altText?: string | null | undefined;
  metadata?: unknown;
}

export interface IngestResult {
  image: ImageRecord;
  created: boolean;
}

export interface IngestLimits {
  maxUploadBytes: number;
  maxTextChars: number;
  maxMetadataBytes: number;
  /** Ingests modelled at once, and how many may wait; more get SERVICE_UNAVAILABLE at once. */
  maxConcurrentIngests?: number;
  maxQueuedIngests?: number;
}

/**
 * Ingest, in crash-safe order: validate and model everything in memory -> write the original
 * atomically -> commit row + embedding in one transaction (the acknowledgement point) -> index.
 * A crash before the commit leaves only an orphan file (removed at start-up); after it, start-up
 * repair indexes the row. Same bytes (sha256) are stored once.
 */
export class IngestService {
  private readonly inFlight = new Map<string, Promise<IngestResult>>();
  private readonly slots: WorkLimiter;

  constructor(
    private readonly engine: BlipEngine,
    private readonly repo: PrismaImageRepository,
    private readonly files: ImageFileStore,
    private readonly index: ImageIndexService,
    private readonly itmStates: ItmStateCache,
    private readonly limits: IngestLimits,
    private readonly log: Logger,
  ) {
    this.slots = new WorkLimiter('ingests', limits.maxConcurrentIngests ?? Infinity, limits.maxQueuedIngests ?? Infinity);
  }

  async ingestImage(command: IngestCommand): Promise<IngestResult> {
    const altText = command.altText == null ? null : requireText(command.altText, 'input.altText', this.limits.maxTextChars);
    const metadata = requireMetadata(command.metadata, 'input.metadata', this.limits.maxMetadataBytes);
    const bytes = await readImageSource(command.source, this.limits.maxUploadBytes);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    // Concurrent uploads of the same bytes share one ingest.
    const running = this.inFlight.get(sha256);
    if (running) return { image: (await running).image, created: false };
    const work = this.slots.run(() => this.ingestBytes(bytes, sha256, altText, metadata), currentRequestSignal());
    this.inFlight.set(sha256, work);
    try {
      return await work;
    } finally {
      this.inFlight.delete(sha256);
    }
  }

  private async ingestBytes(bytes: Uint8Array, sha256: string, altText: string | null, metadata: unknown): Promise<IngestResult> {
    const existing = await this.repo.findBySha256(sha256);
    if (existing?.status === 'READY') return { image: existing, created: false };
    if (existing) await this.repo.delete(existing.label); // the leftover of an interrupted delete

    const loaded = await engineCall(() => this.engine.loadImage(bytes));
    const encoding = await engineCall(() => this.engine.embedImage(loaded));
    const caption = await engineCall(() => this.engine.caption(loaded));
    // Part of the ingest: background, or a stream of searches would hold it back.
    const match = async (text: string) =>
      (await engineCall(() => this.engine.itmScores(text, [encoding.itmStates], { priority: 'background' }))).probabilities[0] ?? null;
    const captionMatch = await match(caption);
    const altTextMatch = altText ? await match(altText) : null;

    await this.files.writeOriginal(sha256, bytes);
    await this.itmStates.put(sha256, encoding.itmStates);
    if (loaded.modelInput && this.engine.inputSize) await this.files.writeModelInput(this.engine.inputSize, sha256, loaded.modelInput);
    let image: ImageRecord;
    try {
      image = await this.repo.createWithEmbedding(
        {
          id: randomUUID(),
          sha256,
          mimeType: loaded.info.mimeType,
          format: loaded.info.format,
          width: loaded.info.width,
          height: loaded.info.height,
          byteSize: bytes.byteLength,
          caption,
          captionModelId: this.engine.modelId,
          captionMatch,
          altText,
          altTextMatch,
          metadata,
          takenAt: loaded.info.capture?.takenAt ?? null,
          cameraMake: loaded.info.capture?.cameraMake ?? null,
          cameraModel: loaded.info.capture?.cameraModel ?? null,
        },
        { modelId: this.engine.modelId, vector: encoding.feature },
      );
    } catch (error) {
      // Another process stored the same bytes between our lookup and our insert.
      const winner = await this.repo.findBySha256(sha256);
      if (winner?.status === 'READY') return { image: winner, created: false };
      throw error;
    }
    this.index.add(image.label, encoding.feature);
    this.log.info({ id: image.id, label: image.label, sha256 }, 'image ingested');
    return { image, created: true };
  }
}
