import { InvalidInputError, NotFoundError } from '../domain/errors.js';
import type { ImageRecord } from '../domain/image.js';
import { decodeKeysetCursor, encodeKeysetCursor, requireFirst, type Page } from '../domain/pagination.js';
import type { AnswerResult } from '../domain/search.js';
import type { Logger } from '../lib/logger.js';
import type { BlipEngine, CaptionOptions } from '../ml/blip-engine.js';
import { renderServableCopy, renderThumbnail } from '../ml/preprocess/image-decoder.js';
import { imageExtent } from '../ml/preprocess/image-extent.js';
import type { ImageDetailsPatch } from '../repositories/image.repository.js';
import { AnswererRegistry } from './answerer-registry.js';
import { blipAnswerer } from '../ml/visual-answerer.js';
import type { ItmStateCache } from './itm-state-cache.js';
import { requireFilter, requireImageId, requireIntInRange, requireMetadata, requireNumberInRange, requireText, type ImageFilterInput } from './input-rules.js';
import type { ImageBlobs, ImageQueries, ImageVectors, StoredImageRows } from './ports.js';

export interface ImageServiceSettings {
  maxPageSize: number;
  maxTextChars: number;
  maxMetadataBytes: number;
  thumbnailSize: number;
}

/** updateImage's input: a key that is absent stays as it is; null clears it. */
export interface ImageUpdate {
  altText?: string | null;
  metadata?: unknown;
}

/** The thumbnail "size" under which full-size servable copies are cached (thumbs/0/). */
const SERVABLE_COPY = 0;

/** Use cases on stored images: read, list, delete, edit, recaption, ask, bytes. */
export class ImageService {
  constructor(
    private readonly engine: BlipEngine,
    private readonly repo: StoredImageRows,
    private readonly queries: ImageQueries,
    private readonly files: ImageBlobs,
    private readonly index: ImageVectors,
    private readonly itmStates: ItmStateCache,
    private readonly settings: ImageServiceSettings,
    private readonly log: Logger,
    /** Models askImage may use; default: BLIP's engine alone. */
    readonly answerers: AnswererRegistry = new AnswererRegistry([blipAnswerer(engine)], blipAnswerer(engine)),
  ) {}

  /** null when the id is well-formed but unknown. */
  async getImage(id: string): Promise<ImageRecord | null> {
    return this.repo.findVisibleById(requireImageId(id));
  }

  /** Stored images (READY or PROCESSING) with any of these hashes. */
  async findBySha256s(hashes: string[]): Promise<ImageRecord[]> {
    if (hashes.length > 1000) throw new InvalidInputError('At most 1000 hashes per request', { argument: 'sha256' });
    const bad = hashes.find((h) => !/^[0-9a-f]{64}$/.test(h));
    if (bad !== undefined) throw new InvalidInputError(`Not a lower-case hex sha256: ${JSON.stringify(bad.slice(0, 80))}`, { argument: 'sha256' });
    return this.repo.findVisibleBySha256s([...new Set(hashes)]);
  }

  async requireImage(id: string, argument = 'id'): Promise<ImageRecord> {
    const image = await this.repo.findById(requireImageId(id, argument));
    if (!image) throw new NotFoundError('Image', id);
    return image;
  }

  /**
   * Stored images, newest first, by keyset: a cursor is the last image's (createdAt, id), so
   * images added or deleted while a client pages never repeat or skip one.
   */
  async listImages(first: number, after?: string | null, filterInput?: ImageFilterInput | null): Promise<Page<ImageRecord>> {
    const limit = requireFirst(first, this.settings.maxPageSize);
    const position = after == null ? null : decodeKeysetCursor(after);
    const filter = requireFilter(filterInput);
    const [labels, total] = await Promise.all([this.queries.pageLabels(filter, position, limit + 1), this.queries.count(filter)]);
    const rows = await this.repo.findReadyByLabels(labels.slice(0, limit));
    const page = labels.slice(0, limit).flatMap((label) => {
      const row = rows.get(label);
      return row ? [row] : [];
    });
    return {
      items: page.map((node) => ({ cursor: encodeKeysetCursor(node), node })),
      hasNextPage: labels.length > limit,
      hasPreviousPage: position !== null,
      totalCount: total,
    };
  }

  /**
   * Edits what the publisher supplied. A new alt text is scored by the ITM head against the
   * image (altTextMatch), which also decides the description (CapFilt, src/domain/image.ts).
   */
  async updateImage(id: string, update: ImageUpdate): Promise<ImageRecord> {
    const hasAlt = update.altText !== undefined;
    const hasMetadata = update.metadata !== undefined;
    if (!hasAlt && !hasMetadata) throw new InvalidInputError('Give input.altText, input.metadata or both (null clears one)', { argument: 'input' });
    const patch: ImageDetailsPatch = {};
    // null or blank removes the alt text.
    const altText = update.altText?.trim() ? requireText(update.altText, 'input.altText', this.settings.maxTextChars) : null;
    if (hasMetadata) patch.metadata = requireMetadata(update.metadata, 'input.metadata', this.settings.maxMetadataBytes);
    const image = await this.requireImage(id);
    if (hasAlt) {
      patch.altText = altText;
      patch.altTextMatch = altText === null ? null : await this.itmMatch(image, altText);
    }
    const updated = await this.stillStored(image, () => this.repo.updateDetails(image.label, patch));
    this.log.info({ id, altText: hasAlt, metadata: hasMetadata }, 'image updated');
    return updated;
  }

  private async itmMatch(image: ImageRecord, text: string): Promise<number | null> {
    const states = await this.itmStates.get(image);
    return (await this.engine.itmScores(text, [states])).probabilities[0] ?? null;
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
    const loaded = await this.loadForModel(image);
    const caption = await this.engine.caption(loaded, checked);
    const match = await this.itmMatch(image, caption);
    return this.stillStored(image, () => this.repo.updateCaption(image.label, caption, this.engine.modelId, match));
  }

  /** Answers with `model` (a loaded model's name or modelId) or the default answerer; Answer.model says which. */
  async askImage(imageId: string, question: string, model?: string | null): Promise<AnswerResult> {
    const text = requireText(question, 'question', this.settings.maxTextChars);
    const answerer = this.answerers.pick(model);
    const image = await this.requireImage(imageId, 'imageId');
    // BLIP answers from the kept model input (no decode of the original); another model, such as
    // BLIP-2 at its own input size, decodes the original.
    const loaded = answerer.modelId === this.engine.modelId
      ? await this.loadForModel(image)
      : await answerer.loadImage(await this.files.readOriginal(image.sha256));
    const answer = await answerer.answer(loaded, text);
    return { answer, question: text, image, model: this.answerers.describe(answerer) };
  }

  /**
   * The original as the decoder saw it: cut where its container ends (data appended after the
   * image is never served, src/ml/preprocess/image-extent.ts), or, for formats whose end cannot be
   * found (TIFF, AVIF, HEIF), a lossless WebP copy made once and kept beside the thumbnails.
   * The stored file itself is untouched: its sha256 is the image's identity.
   */
  async readOriginal(id: string): Promise<{ bytes: Buffer; mimeType: string; sha256: string }> {
    const image = await this.requireImage(id);
    const bytes = await this.files.readOriginal(image.sha256);
    const end = imageExtent(bytes, image.mimeType);
    if (end !== null) return { bytes: bytes.subarray(0, end), mimeType: image.mimeType, sha256: image.sha256 };
    let copy = await this.files.readThumbnail(SERVABLE_COPY, image.sha256);
    if (!copy) {
      copy = await renderServableCopy(bytes);
      await this.files.writeThumbnail(SERVABLE_COPY, image.sha256, copy);
    }
    return { bytes: copy, mimeType: 'image/webp', sha256: image.sha256 };
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

  /**
   * The model's input for a stored image: its kept S x S copy when there is one (ingest writes it),
   * else the original, decoded once more and its copy kept for the next question.
   */
  private async loadForModel(image: ImageRecord) {
    const size = this.engine.inputSize;
    const kept = size ? await this.files.readModelInput(size, image.sha256) : null;
    if (kept) return this.engine.loadImage(kept);
    const loaded = await this.engine.loadImage(await this.files.readOriginal(image.sha256));
    if (size && loaded.modelInput) await this.files.writeModelInput(size, image.sha256, loaded.modelInput);
    return loaded;
  }

  /**
   * Writes to an image that may have been deleted while its model work ran: then the write finds
   * no row, which is the client's NOT_FOUND, not a server fault.
   */
  private async stillStored<T>(image: ImageRecord, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (error) {
      if ((await this.repo.findById(image.id))?.label !== image.label) throw new NotFoundError('Image', image.id);
      throw error;
    }
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
