import { InvalidInputError, NotFoundError } from '../domain/errors.js';
import type { ImageRecord } from '../domain/image.js';
import { encodeOffsetCursor, resolvePage, type Page } from '../domain/pagination.js';
import type { AnswerResult } from '../domain/search.js';
import type { Logger } from '../lib/logger.js';
import type { BlipEngine, CaptionOptions } from '../ml/blip-engine.js';
import { renderThumbnail } from '../ml/preprocess/image-decoder.js';
import type { ImageFileStore } from '../repositories/image-file-store.js';
import type { PrismaImageRepository } from '../repositories/image.repository.js';
import { engineCall } from './engine-errors.js';
import type { ImageIndexService } from './image-index.service.js';
import type { ItmStateCache } from './itm-state-cache.js';
import { requireImageId, requireIntInRange, requireNumberInRange, requireText } from './input-rules.js';

export interface ImageServiceSettings {
  maxPageSize: number;
  maxTextChars: number;
  thumbnailSize: number;
}

/** Use cases on stored images: read, list, delete, recaption, ask, bytes. */
export class ImageService {
  constructor(
    private readonly engine: BlipEngine,
    private readonly repo: PrismaImageRepository,
    private readonly files: ImageFileStore,
    private readonly index: ImageIndexService,
    private readonly itmStates: ItmStateCache,
    private readonly settings: ImageServiceSettings,
    private readonly log: Logger,
  ) {}

  /** null when the id is well-formed but unknown. */
  async getImage(id: string): Promise<ImageRecord | null> {
    return this.repo.findById(requireImageId(id));
  }

  async requireImage(id: string, argument = 'id'): Promise<ImageRecord> {
    const image = await this.repo.findById(requireImageId(id, argument));
    if (!image) throw new NotFoundError('Image', id);
    return image;
  }

  async listImages(first: number, after?: string | null): Promise<Page<ImageRecord>> {
    const { offset, limit } = resolvePage({ first, after }, this.settings.maxPageSize);
    const [rows, total] = await Promise.all([this.repo.list(offset, limit), this.repo.countReady()]);
    return {
      items: rows.map((node, i) => ({ cursor: encodeOffsetCursor(offset + i), node })),
      hasNextPage: offset + rows.length < total,
      hasPreviousPage: offset > 0,
      totalCount: total,
    };
  }

  /**
   * Marks the row first so that a crash mid-way is finished at start-up; then the index entry,
   * the row and the files go. The image stops being returned at the first step.
   */
  async deleteImage(id: string): Promise<{ id: string; deleted: boolean }> {
    const image = await this.requireImage(id);
    await this.repo.setStatus(image.label, 'DELETING');
    this.index.remove(image.label);
    await this.repo.delete(image.label);
    await this.files.removeAll(image.sha256);
    this.log.info({ id, label: image.label }, 'image deleted');
    return { id, deleted: true };
  }

  async recaption(imageId: string, options: CaptionOptions | null | undefined): Promise<ImageRecord> {
    const checked = this.checkCaptionOptions(options ?? {});
    const image = await this.requireImage(imageId, 'imageId');
    const loaded = await engineCall(async () => this.engine.loadImage(await this.files.readOriginal(image.sha256)));
    const caption = await engineCall(() => this.engine.caption(loaded, checked));
    const states = await this.itmStates.get(image);
    const match = (await engineCall(() => this.engine.itmScores(caption, [states]))).probabilities[0] ?? null;
    return this.repo.updateCaption(image.label, caption, this.engine.modelId, match);
  }

  async askImage(imageId: string, question: string): Promise<AnswerResult> {
    const text = requireText(question, 'question', this.settings.maxTextChars);
    const image = await this.requireImage(imageId, 'imageId');
    const loaded = await engineCall(async () => this.engine.loadImage(await this.files.readOriginal(image.sha256)));
    const answer = await engineCall(() => this.engine.answer(loaded, text));
    return { answer, question: text, image };
  }

  async readOriginal(id: string): Promise<{ bytes: Buffer; mimeType: string; sha256: string }> {
    const image = await this.requireImage(id);
    return { bytes: await this.files.readOriginal(image.sha256), mimeType: image.mimeType, sha256: image.sha256 };
  }

  /** WebP, longest side at most thumbnailSize; rendered once and kept under DATA_DIR. */
  async readThumbnail(id: string): Promise<{ bytes: Buffer; mimeType: string; sha256: string }> {
    const image = await this.requireImage(id);
    const size = this.settings.thumbnailSize;
    let bytes = await this.files.readThumbnail(size, image.sha256);
    if (!bytes) {
      bytes = await renderThumbnail(await this.files.readOriginal(image.sha256), size);
      await this.files.writeThumbnail(size, image.sha256, bytes);
    }
    return { bytes, mimeType: 'image/webp', sha256: image.sha256 };
  }

  private checkCaptionOptions(options: CaptionOptions): CaptionOptions {
    const out: CaptionOptions = {};
    if (options.numBeams != null) out.numBeams = requireIntInRange(options.numBeams, 'options.numBeams', 1, 8);
    if (options.maxLength != null) out.maxLength = requireIntInRange(options.maxLength, 'options.maxLength', 2, 128);
    if (options.minLength != null) out.minLength = requireIntInRange(options.minLength, 'options.minLength', 0, 128);
    if (out.minLength !== undefined && out.maxLength !== undefined && out.minLength > out.maxLength) {
      throw new InvalidInputError('options.minLength must not exceed options.maxLength', { argument: 'options.minLength' });
    }
    if (options.repetitionPenalty != null) {
      out.repetitionPenalty = requireNumberInRange(options.repetitionPenalty, 'options.repetitionPenalty', 0.5, 5);
    }
    if (options.prompt != null) out.prompt = requireText(options.prompt, 'options.prompt', this.settings.maxTextChars);
    return out;
  }
}
