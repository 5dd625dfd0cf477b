import fs from 'node:fs/promises';
import type { Logger } from '../lib/logger.js';
import type { BlipEngine } from '../ml/blip-engine.js';
import type { ItmStateCache } from './itm-state-cache.js';
import { JobAbortedError, type JobHandler, type JobQueueService } from './job-queue.service.js';
import type { JobRecord } from '../domain/job.js';
import type { ImageBlobs, ImageVectors, RecoveryRows } from './ports.js';

/**
 * Start-up work that turns whatever a crash left behind into a consistent state, before any
 * request is served: finish interrupted deletes, quarantine originals no row refers to, load-or-
 * rebuild and repair the index. Runs only once DATA_DIR is proven to belong to this database
 * (src/services/data-dir-binding.service.ts). Embeddings for a new model are backfilled
 * afterwards, in the background.
 */
export class StorageRecoveryService {
  constructor(
    private readonly engine: BlipEngine,
    private readonly repo: RecoveryRows,
    private readonly files: ImageBlobs,
    private readonly index: Pick<ImageVectors, 'open' | 'add'>,
    private readonly itmStates: ItmStateCache,
    private readonly log: Logger,
  ) {}

  /**
   * `shared`: other processes use this DATA_DIR at the same time (ROLE=api or worker), so an
   * original without a row (or a temporary file) may be an ingest's that has not committed yet: it
   * is left alone.
   */
  async recover(options: { shared?: boolean } = {}): Promise<void> {
    for (const image of await this.repo.findByStatus('DELETING')) {
      await this.repo.delete(image.label);
      await this.files.removeAll(image.sha256);
      this.log.info({ id: image.id }, 'finished an interrupted delete');
    }
    const known = await this.repo.allSha256();
    const { hashes, tempFiles } = await this.files.listOriginals();
    // Shared: another process may be writing these right now.
    if (!options.shared) for (const file of tempFiles) await fs.rm(file, { force: true });
    if (tempFiles.length && !options.shared) this.log.info({ tempFiles: tempFiles.length }, 'removed temporary files of interrupted writes');
    // A crash between writing the original and committing its row leaves such a file; so would a
    // database that lost rows. Only the first is certain, so the file is moved aside, not deleted.
    const orphans = options.shared ? [] : hashes.filter((h) => !known.has(h));
    const batch = new Date().toISOString().replace(/[:.]/g, '-');
    for (const sha256 of orphans) await this.files.quarantineOriginal(sha256, batch);
    if (orphans.length) {
      this.log.warn({ orphans: orphans.length, folder: `quarantine/${batch}` }, 'originals that no image row refers to were moved to quarantine; check and delete them');
    }
    const pruned = await this.files.pruneItmStates(this.engine.modelId);
    if (pruned.length) this.log.info({ models: pruned }, 'removed the ITM states of models no longer served');
    await this.index.open();
  }

  /**
   * After a model change: a REEMBED job (visible in `jobs`, streamed by `jobUpdates`) unless one is
   * queued or running already. Returns it, or null when every image has this model's embedding.
   */
  async planReembedding(jobs: JobQueueService): Promise<JobRecord | null> {
    const missing = await this.repo.countMissingEmbeddings(this.engine.modelId);
    const unfinished = await jobs.findUnfinished('REEMBED', this.engine.modelId);
    if (unfinished || missing === 0) return unfinished;
    const job = await jobs.enqueue({ kind: 'REEMBED', total: missing, payload: { modelId: this.engine.modelId } });
    this.log.info({ job: job.id, images: missing, modelId: this.engine.modelId }, 're-embedding queued after a model change');
    return job;
  }

  /** The REEMBED job's handler. */
  readonly reembedJob: JobHandler = {
    run: async (job, ctx) => {
      const total = Math.max(job.total, await this.repo.countMissingEmbeddings(this.engine.modelId));
      await this.backfillEmbeddings(ctx.signal, (done) => ctx.report(total ? done / total : 1, { done, total }));
      if (ctx.signal.aborted) throw new JobAbortedError();
    },
  };

  /** Embeds images stored under another model; each becomes searchable as soon as it is done. */
  async backfillEmbeddings(signal?: AbortSignal, onProgress?: (done: number) => Promise<void>): Promise<number> {
    let done = 0;
    const failed = new Set<number>();
    for (;;) {
      const batch = (await this.repo.findMissingEmbeddings(this.engine.modelId, 50 + failed.size)).filter((i) => !failed.has(i.label));
      if (batch.length === 0 || signal?.aborted) break;
      for (const image of batch) {
        if (signal?.aborted) break;
        try {
          const loaded = await this.engine.loadImage(await this.files.readOriginal(image.sha256));
          const encoding = await this.engine.embedImage(loaded);
          await this.itmStates.put(image.sha256, encoding.itmStates);
          await this.repo.upsertEmbedding(image.label, this.engine.modelId, encoding.feature);
          this.index.add(image.label, encoding.feature);
          done++;
          await onProgress?.(done);
        } catch (error) {
          failed.add(image.label);
          this.log.error({ err: error, id: image.id }, 'could not embed a stored image with the current model');
        }
      }
    }
    if (done) this.log.info({ done, modelId: this.engine.modelId }, 'embeddings backfilled for the current model');
    return done;
  }
}
