import type { Logger } from '../lib/logger.js';
import type { BlipEngine } from '../ml/blip-engine.js';
import type { PrismaSettingRepository } from '../repositories/setting.repository.js';
import type { ImageBlobs, ImageRows } from './ports.js';

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
    private readonly repo: ImageRows,
    private readonly settings: PrismaSettingRepository,
    private readonly files: ImageBlobs,
    private readonly log: Logger,
  ) {}

  /** Before serving: every image stored so far predates this code (once per database). */
  async plan(): Promise<void> {
    await this.settings.setIfAbsent(KEY, JSON.stringify({ after: 0, upTo: await this.repo.maxLabel() }));
  }

  async run(signal?: AbortSignal, batchSize = 50): Promise<number> {
    const stored = await this.settings.get(KEY);
    const state = readState(stored);
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
          const capture = (await this.engine.loadImage(await this.files.readOriginal(image.sha256))).info.capture;
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

/**
 * The stored progress; a value this version cannot read (hand-edited, or written by another
 * version) means nothing is left to do rather than a crash at every start.
 */
function readState(stored: string | null): { after: number; upTo: number } {
  let parsed: unknown;
  try {
    parsed = stored ? JSON.parse(stored) : null;
  } catch {
    parsed = null;
  }
  if (parsed && typeof parsed === 'object' && 'after' in parsed && 'upTo' in parsed) {
    const { after, upTo } = parsed;
    if (typeof after === 'number' && typeof upTo === 'number' && Number.isSafeInteger(after) && Number.isSafeInteger(upTo)) return { after, upTo };
  }
  return { after: 0, upTo: 0 };
}
