import { embeddingFromBytes, embeddingToBytes } from '../domain/embedding.js';
import type { ImageRecord, ImageStatus } from '../domain/image.js';
import type { DbClient } from './database.js';
import { jobCreateData, toJobRecord, type NewJob } from './job.repository.js';
import type { JobRecord } from '../domain/job.js';

/** A row as Prisma returns it (either provider): the domain record with status and metadata unparsed. */
type ImageRow = Omit<ImageRecord, 'status' | 'metadata'> & { status: string; metadata: string | null };

function toRecord(row: ImageRow): ImageRecord {
  return {
    id: row.id,
    label: row.label,
    sha256: row.sha256,
    status: row.status as ImageStatus,
    mimeType: row.mimeType,
    format: row.format,
    width: row.width,
    height: row.height,
    byteSize: row.byteSize,
    caption: row.caption,
    captionModelId: row.captionModelId,
    captionMatch: row.captionMatch,
    altText: row.altText,
    altTextMatch: row.altTextMatch,
    metadata: row.metadata === null ? null : (JSON.parse(row.metadata) as unknown),
    takenAt: row.takenAt,
    cameraMake: row.cameraMake,
    cameraModel: row.cameraModel,
    createdAt: row.createdAt,
  };
}

export interface NewImage {
  id: string;
  sha256: string;
  mimeType: string;
  format: string;
  width: number;
  height: number;
  byteSize: number;
  caption: string;
  captionModelId: string;
  captionMatch: number | null;
  altText: string | null;
  altTextMatch: number | null;
  metadata: unknown;
  takenAt: Date | null;
  cameraMake: string | null;
  cameraModel: string | null;
}

/** What updateImage may change; absent keys stay as they are. */
export interface ImageDetailsPatch {
  altText?: string | null;
  altTextMatch?: number | null;
  metadata?: unknown;
}

export interface StoredEmbedding {
  label: number;
  vector: Float32Array;
}

const metadataText = (metadata: unknown): string | null => (metadata === undefined || metadata === null ? null : JSON.stringify(metadata));

/** Prisma queries over Image and ImageEmbedding; returns domain records, decides nothing. */
export class PrismaImageRepository {
  /**
   * Bumped by every write through this repository: search result caches key on it, so that an
   * edit (alt text, metadata, caption) is seen by the next search (src/services/search.service.ts).
   */
  version = 0;

  constructor(private readonly db: DbClient) {}

  private wrote<T>(value: T): T {
    this.version++;
    return value;
  }

  async findById(id: string): Promise<ImageRecord | null> {
    const row = await this.db.image.findFirst({ where: { id, status: 'READY' } });
    return row ? toRecord(row) : null;
  }

  /** READY or PROCESSING (an asynchronous ingest under way): what `image(id)` may show. */
  async findVisibleById(id: string): Promise<ImageRecord | null> {
    const row = await this.db.image.findFirst({ where: { id, status: { in: ['READY', 'PROCESSING'] } } });
    return row ? toRecord(row) : null;
  }

  /** READY or PROCESSING images with these hashes (the CLI asks before uploading). */
  async findVisibleBySha256s(hashes: string[]): Promise<ImageRecord[]> {
    if (hashes.length === 0) return [];
    const rows = await this.db.image.findMany({ where: { sha256: { in: hashes }, status: { in: ['READY', 'PROCESSING'] } } });
    return rows.map(toRecord);
  }

  /** Any status: the INGEST job reads the PROCESSING image it finishes. */
  async findAnyById(id: string): Promise<ImageRecord | null> {
    const row = await this.db.image.findUnique({ where: { id } });
    return row ? toRecord(row) : null;
  }

  async findByLabel(label: number): Promise<ImageRecord | null> {
    const row = await this.db.image.findUnique({ where: { label } });
    return row ? toRecord(row) : null;
  }

  /**
   * The acknowledgement point of an asynchronous ingest: the row (PROCESSING, no caption or
   * embedding yet) and the job that will finish it commit together, after the original is on disk.
   */
  async createProcessing(image: Omit<NewImage, 'caption' | 'captionModelId' | 'captionMatch' | 'altTextMatch'>, job: NewJob): Promise<{ image: ImageRecord; job: JobRecord }> {
    const [row, jobRow] = await this.db.$transaction(async (tx) => [
      await tx.image.create({ data: { ...image, status: 'PROCESSING', metadata: metadataText(image.metadata) } }),
      await tx.job.create({ data: jobCreateData({ ...job, imageId: image.id }) }),
    ]);
    return this.wrote({ image: toRecord(row), job: toJobRecord(jobRow) });
  }

  /** Finishes an asynchronous ingest: caption, matches and embedding land with status READY at once. */
  async completeProcessing(
    label: number,
    fields: { caption: string; captionModelId: string; captionMatch: number | null; altTextMatch: number | null },
    embedding: { modelId: string; vector: Float32Array },
  ): Promise<ImageRecord> {
    const row = await this.db.$transaction(async (tx) => {
      const updated = await tx.image.update({ where: { label, status: 'PROCESSING' }, data: { ...fields, status: 'READY' } });
      await tx.imageEmbedding.upsert({
        where: { imageLabel_modelId: { imageLabel: label, modelId: embedding.modelId } },
        create: { imageLabel: label, modelId: embedding.modelId, dim: embedding.vector.length, vector: embeddingToBytes(embedding.vector) as Uint8Array<ArrayBuffer> },
        update: { dim: embedding.vector.length, vector: embeddingToBytes(embedding.vector) as Uint8Array<ArrayBuffer> },
      });
      return updated;
    });
    return this.wrote(toRecord(row));
  }

  async countMissingEmbeddings(modelId: string): Promise<number> {
    return this.db.image.count({ where: { status: 'READY', embeddings: { none: { modelId } } } });
  }

  /** Any status: ingest uses it to find leftovers of an interrupted delete. */
  async findBySha256(sha256: string): Promise<ImageRecord | null> {
    const row = await this.db.image.findUnique({ where: { sha256 } });
    return row ? toRecord(row) : null;
  }

  /** READY images with the given labels, keyed by label (callers keep their own order). */
  async findReadyByLabels(labels: number[]): Promise<Map<number, ImageRecord>> {
    if (labels.length === 0) return new Map();
    const rows = await this.db.image.findMany({ where: { label: { in: labels }, status: 'READY' } });
    return new Map(rows.map((r) => [r.label, toRecord(r)]));
  }

  async countReady(): Promise<number> {
    return this.db.image.count({ where: { status: 'READY' } });
  }

  /**
   * The commit point of an ingest: row and embedding become visible together or not at all. A
   * crash before this leaves at most an orphan file; after it, start-up repair indexes the row.
   */
  async createWithEmbedding(image: NewImage, embedding: { modelId: string; vector: Float32Array }): Promise<ImageRecord> {
    const row = await this.db.$transaction(async (tx) => {
      const created = await tx.image.create({
        data: { ...image, status: 'READY', metadata: metadataText(image.metadata) },
      });
      await tx.imageEmbedding.create({
        data: {
          imageLabel: created.label,
          modelId: embedding.modelId,
          dim: embedding.vector.length,
          vector: embeddingToBytes(embedding.vector) as Uint8Array<ArrayBuffer>,
        },
      });
      return created;
    });
    return this.wrote(toRecord(row));
  }

  /** Replaces (or adds) the embedding of an existing image for a model: used after a model change. */
  async upsertEmbedding(label: number, modelId: string, vector: Float32Array): Promise<void> {
    const bytes = embeddingToBytes(vector) as Uint8Array<ArrayBuffer>;
    await this.db.imageEmbedding.upsert({
      where: { imageLabel_modelId: { imageLabel: label, modelId } },
      create: { imageLabel: label, modelId, dim: vector.length, vector: bytes },
      update: { dim: vector.length, vector: bytes },
    });
  }

  async getEmbedding(label: number, modelId: string): Promise<Float32Array | null> {
    const row = await this.db.imageEmbedding.findUnique({ where: { imageLabel_modelId: { imageLabel: label, modelId } } });
    return row ? embeddingFromBytes(row.vector) : null;
  }

  /** Embeddings of the given labels for a model, keyed by label (absent ones are left out). */
  async findEmbeddings(labels: number[], modelId: string): Promise<Map<number, Float32Array>> {
    if (labels.length === 0) return new Map();
    const rows = await this.db.imageEmbedding.findMany({ where: { modelId, imageLabel: { in: labels } }, select: { imageLabel: true, vector: true } });
    return new Map(rows.map((r) => [r.imageLabel, embeddingFromBytes(r.vector)]));
  }

  /** Pages through READY images' embeddings for a model, in label order (index rebuild). */
  async *streamEmbeddings(modelId: string, dim: number, pageSize = 500): AsyncGenerator<StoredEmbedding[]> {
    let after = 0;
    for (;;) {
      const rows = await this.db.imageEmbedding.findMany({
        where: { modelId, dim, imageLabel: { gt: after }, image: { status: 'READY' } },
        orderBy: { imageLabel: 'asc' },
        take: pageSize,
        select: { imageLabel: true, vector: true },
      });
      if (rows.length === 0) return;
      yield rows.map((r) => ({ label: r.imageLabel, vector: embeddingFromBytes(r.vector) }));
      after = rows[rows.length - 1]!.imageLabel;
    }
  }

  /** READY images that have no embedding for this model (model changed since they were stored). */
  async findMissingEmbeddings(modelId: string, limit: number): Promise<ImageRecord[]> {
    const rows = await this.db.image.findMany({
      where: { status: 'READY', embeddings: { none: { modelId } } },
      orderBy: { label: 'asc' },
      take: limit,
    });
    return rows.map(toRecord);
  }

  async updateCaption(label: number, caption: string, modelId: string, captionMatch: number | null): Promise<ImageRecord> {
    // READY only: an image being deleted is not written to (the update then finds no row).
    return this.wrote(toRecord(await this.db.image.update({ where: { label, status: 'READY' }, data: { caption, captionModelId: modelId, captionMatch } })));
  }

  /** Alt text (with its match score) and metadata, as given; absent keys are left alone. */
  async updateDetails(label: number, patch: ImageDetailsPatch): Promise<ImageRecord> {
    const data: { altText?: string | null; altTextMatch?: number | null; metadata?: string | null } = {};
    if ('altText' in patch) data.altText = patch.altText ?? null;
    if ('altTextMatch' in patch) data.altTextMatch = patch.altTextMatch ?? null;
    if ('metadata' in patch) data.metadata = metadataText(patch.metadata);
    return this.wrote(toRecord(await this.db.image.update({ where: { label, status: 'READY' }, data })));
  }

  /** The highest label ever stored (0 when none). */
  async maxLabel(): Promise<number> {
    return (await this.db.image.aggregate({ _max: { label: true } }))._max.label ?? 0;
  }

  /** READY images with after < label <= upTo, in label order. */
  async findReadyInRange(after: number, upTo: number, limit: number): Promise<ImageRecord[]> {
    const rows = await this.db.image.findMany({ where: { status: 'READY', label: { gt: after, lte: upTo } }, orderBy: { label: 'asc' }, take: limit });
    return rows.map(toRecord);
  }

  async setCaptureInfo(label: number, capture: { takenAt: Date | null; cameraMake: string | null; cameraModel: string | null }): Promise<void> {
    await this.db.image.update({ where: { label }, data: capture });
    this.wrote(undefined);
  }

  async setStatus(label: number, status: ImageStatus): Promise<void> {
    await this.db.image.update({ where: { label }, data: { status } });
    this.wrote(undefined);
  }

  /** Rows whose delete was interrupted. */
  async findByStatus(status: ImageStatus): Promise<ImageRecord[]> {
    return (await this.db.image.findMany({ where: { status } })).map(toRecord);
  }

  async delete(label: number): Promise<void> {
    await this.db.$transaction([
      this.db.imageEmbedding.deleteMany({ where: { imageLabel: label } }),
      this.db.image.deleteMany({ where: { label } }),
    ]);
    this.wrote(undefined);
  }

  async allSha256(): Promise<Set<string>> {
    return new Set((await this.db.image.findMany({ select: { sha256: true } })).map((r) => r.sha256));
  }
}
