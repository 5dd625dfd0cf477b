import type { Logger } from '../lib/logger.js';
import type { BlipEngine } from '../ml/blip-engine.js';
import type { ImageFileStore } from '../repositories/image-file-store.js';
import type { PrismaImageRepository } from '../repositories/image.repository.js';
import type { PrismaSettingRepository } from '../repositories/setting.repository.js';
import { engineCall } from './engine-errors.js';

/** Setting key: which labels still need their EXIF read, as {"after": n, "upTo": m}. */
const KEY = 'captureInfoBackfill';

/**
 * Images stored before capture time and camera were read at ingest (migration
 * 20261207100000_capture_fields) get them read from their originals once, in the background.
 * The first start of a database notes the highest label then; later images are read at ingest.
 * Progress is saved per batch, so a restart carries on where it stopped.
 */
export class CaptureInfoBackfill {
  constructor(
    private readonly engine: BlipEngine,
    private readonly repo: PrismaImageRepository,
    private readonly settings: PrismaSettingRepository,
    private readonly files: ImageFileStore,
    private readonly log: Logger,
  ) {}

  /** Before serving: every image stored so far predates this code (once per database). */
  async plan(): Promise<void> {
    await this.settings.setIfAbsent(KEY, JSON.stringify({ after: 0, upTo: await this.repo.maxLabel() }));
  }

  async run(signal?: AbortSignal, batchSize = 50): Promise<number> {
    const stored = await this.settings.get(KEY);
    const state = stored ? (JSON.parse(stored) as { after: number; upTo: number }) : { after: 0, upTo: 0 };
    let found = 0;
    while (state.after < state.upTo && !signal?.aborted) {
      const batch = await this.repo.findReadyInRange(state.after, state.upTo, batchSize);
      if (batch.length === 0) {
        state.after = state.upTo;
        break;
      }
      for (const image of batch) {
        if (signal?.aborted) break;
        try {
          const capture = (await engineCall(async () => this.engine.loadImage(await this.files.readOriginal(image.sha256)))).info.capture;
          if (capture && (capture.takenAt || capture.cameraMake || capture.cameraModel)) {
            await this.repo.setCaptureInfo(image.label, capture);
            found++;
          }
        } catch (error) {
          this.log.warn({ err: error, id: image.id }, 'could not read the EXIF of a stored image');
        }
        state.after = image.label;
      }
      await this.settings.set(KEY, JSON.stringify(state));
    }
    await this.settings.set(KEY, JSON.stringify(state));
    if (found) this.log.info({ found }, 'capture time and camera read for images stored before they were extracted');
    return found;
  }
}
