import { createHash, randomUUID } from 'node:crypto';
import type { ImageRecord } from '../domain/image.js';
import type { JobRecord } from '../domain/job.js';
import type { Logger } from '../lib/logger.js';
import type { BlipEngine } from '../ml/blip-engine.js';
import { InferenceError } from '../ml/errors.js';
import { readImageSource, type ImageSource } from './image-source.js';
import { requireMetadata, requireText } from './input-rules.js';
import type { ItmStateCache } from './itm-state-cache.js';
import { JobAbortedError, type JobContext, type JobHandler } from './job-queue.service.js';
import { currentRequestSignal } from './request-scope.js';
import { WorkLimiter } from './work-limiter.js';
import type { ImageBlobs, ImageVectors, IngestJobs, IngestRows } from './ports.js';

export interface IngestCommand {
  source: ImageSource;
  altText?: string | null | undefined;
  metadata?: unknown;
}

export interface IngestResult {
  image: ImageRecord;
  created: boolean;
  /** The INGEST job finishing an image stored by an asynchronous ingest. */
  job?: JobRecord | null;
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
 *
 * An asynchronous ingest (`wait: false`) checks the bytes decode, writes the original, then commits
 * the row (PROCESSING) together with an INGEST job: that commit is its acknowledgement. The job
 * (src/services/job-queue.service.ts) models the image and commits caption, embedding and READY
 * in one transaction; a crash in between leaves a queued or lease-expired job that runs again.
 */
export class IngestService implements JobHandler {
  private readonly inFlight = new Map<string, Promise<IngestResult>>();
  private readonly slots: WorkLimiter;

  constructor(
    private readonly engine: BlipEngine,
    private readonly repo: IngestRows,
    private readonly files: ImageBlobs,
    private readonly index: Pick<ImageVectors, 'add'>,
    private readonly itmStates: ItmStateCache,
    private readonly limits: IngestLimits,
    private readonly log: Logger,
    private readonly jobs: IngestJobs,
    private readonly counters: IngestCounters = { ingested: () => undefined, failed: () => undefined },
    /**
     * False in an API replica (ROLE=api): it runs no image inference, so a waiting ingest queues a
     * job like `wait: false` and waits for a worker to finish it.
     */
    private readonly runsInference = true,
  ) {
    this.slots = new WorkLimiter('ingests', limits.maxConcurrentIngests ?? Infinity, limits.maxQueuedIngests ?? Infinity);
  }

  async ingestImage(command: IngestCommand, options: { wait?: boolean } = {}): Promise<IngestResult> {
    try {
      return await this.ingestOne(command, options.wait ?? true);
    } catch (error) {
      this.counters.failed(options.wait === false ? 'async' : 'sync');
      throw error;
    }
  }

  private async ingestOne(command: IngestCommand, wait: boolean): Promise<IngestResult> {
    const altText = command.altText == null ? null : requireText(command.altText, 'input.altText', this.limits.maxTextChars);
    const metadata = requireMetadata(command.metadata, 'input.metadata', this.limits.maxMetadataBytes);
    const bytes = await readImageSource(command.source, this.limits.maxUploadBytes);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    // Concurrent uploads of the same bytes share one ingest.
    const running = this.inFlight.get(sha256);
    if (running) return { image: (await running).image, created: false };
    const work = !wait
      ? this.enqueueBytes(bytes, sha256, altText, metadata)
      : this.runsInference
        ? this.slots.run(() => this.ingestBytes(bytes, sha256, altText, metadata), currentRequestSignal())
        : this.enqueueAndWait(bytes, sha256, altText, metadata);
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
    if (existing?.status === 'PROCESSING') return { image: existing, created: false, job: await this.jobs.findForImage(existing.id) };
    if (existing) await this.repo.delete(existing.label); // the leftover of an interrupted delete

    const loaded = await this.engine.loadImage(bytes);
    const encoding = await this.engine.embedImage(loaded);
    const caption = await this.engine.caption(loaded);
    // Part of the ingest: background, or a stream of searches would hold it back.
    const match = async (text: string) =>
      (await this.engine.itmScores(text, [encoding.itmStates], { priority: 'background' })).probabilities[0] ?? null;
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
    this.counters.ingested('sync');
    return { image, created: true };
  }

  private async enqueueBytes(bytes: Uint8Array, sha256: string, altText: string | null, metadata: unknown): Promise<IngestResult> {
    const existing = await this.repo.findBySha256(sha256);
    if (existing?.status === 'READY') return { image: existing, created: false };
    if (existing?.status === 'PROCESSING') return { image: existing, created: false, job: await this.jobs.findForImage(existing.id) };
    if (existing) await this.repo.delete(existing.label);

    // Decoding now refuses what is not an image before anything is stored or acknowledged.
    const loaded = await this.engine.loadImage(bytes);
    await this.files.writeOriginal(sha256, bytes);
    const id = randomUUID();
    let stored: { image: ImageRecord; job: JobRecord };
    try {
      stored = await this.repo.createProcessing(
        {
          id,
          sha256,
          mimeType: loaded.info.mimeType,
          format: loaded.info.format,
          width: loaded.info.width,
          height: loaded.info.height,
          byteSize: bytes.byteLength,
          altText,
          metadata,
          takenAt: loaded.info.capture?.takenAt ?? null,
          cameraMake: loaded.info.capture?.cameraMake ?? null,
          cameraModel: loaded.info.capture?.cameraModel ?? null,
        },
        { id: randomUUID(), kind: 'INGEST', total: 1 },
      );
    } catch (error) {
      const winner = await this.repo.findBySha256(sha256);
      if (winner && winner.status !== 'DELETING') return { image: winner, created: false, job: await this.jobs.findForImage(winner.id) };
      throw error;
    }
    this.jobs.announce(stored.job);
    this.log.info({ id, label: stored.image.label, sha256, job: stored.job.id }, 'image stored; captioning and embedding queued');
    return { image: stored.image, created: true, job: stored.job };
  }

  /** ROLE=api's waiting ingest: queued for a worker, answered once its job has finished. */
  private async enqueueAndWait(bytes: Uint8Array, sha256: string, altText: string | null, metadata: unknown): Promise<IngestResult> {
    const queued = await this.enqueueBytes(bytes, sha256, altText, metadata);
    if (queued.image.status === 'READY' || !queued.job) return queued;
    const job = await this.jobs.waitUntilFinished(queued.job.id);
    const image = await this.repo.findById(queued.image.id);
    if (job.state !== 'SUCCEEDED' || !image) throw new InferenceError(job.error ?? 'the ingest job did not finish');
    return { image, created: queued.created, job };
  }

  /** The INGEST job: models a PROCESSING image from its stored original and makes it READY. */
  async run(job: JobRecord, ctx: JobContext): Promise<void> {
    const image = job.imageId ? await this.repo.findAnyById(job.imageId) : null;
    // Deleted meanwhile, or finished by an earlier attempt that died before marking the job.
    if (!image || image.status !== 'PROCESSING') return;
    const step = async (progress: number) => {
      if (ctx.signal.aborted) throw new JobAbortedError();
      await ctx.report(progress);
    };
    const bytes = await this.files.readOriginal(image.sha256);
    const loaded = await this.engine.loadImage(bytes);
    await step(0.1);
    const encoding = await this.engine.embedImage(loaded);
    await step(0.4);
    const caption = await this.engine.caption(loaded);
    await step(0.7);
    const match = async (text: string) =>
      (await this.engine.itmScores(text, [encoding.itmStates], { priority: 'background' })).probabilities[0] ?? null;
    const captionMatch = await match(caption);
    const altTextMatch = image.altText ? await match(image.altText) : null;
    await step(0.9);
    await this.itmStates.put(image.sha256, encoding.itmStates);
    const ready = await this.repo.completeProcessing(
      image.label,
      { caption, captionModelId: this.engine.modelId, captionMatch, altTextMatch },
      { modelId: this.engine.modelId, vector: encoding.feature },
    );
    this.index.add(ready.label, encoding.feature);
    await ctx.report(1, { done: 1 });
    this.counters.ingested('async');
    this.log.info({ id: ready.id, label: ready.label, job: job.id }, 'image ingested');
  }

  /** The last attempt failed: the image cannot be modelled, so it is removed rather than left half-made. */
  async onFailed(job: JobRecord): Promise<void> {
    const image = job.imageId ? await this.repo.findAnyById(job.imageId) : null;
    if (!image || image.status !== 'PROCESSING') return;
    await this.repo.setStatus(image.label, 'DELETING');
    await this.repo.delete(image.label);
    await this.files.removeAll(image.sha256);
    this.counters.failed('async');
  }
}

/** Metrics hooks (src/lib/metrics.ts); the service only says what happened. */
export interface IngestCounters {
  ingested(mode: 'sync' | 'async'): void;
  failed(mode: 'sync' | 'async'): void;
}
