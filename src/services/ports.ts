/**
 * What services need from the layers below, in one place: image rows and queries (the database), vectors (the
 * nearest-neighbour index), blobs (files under DATA_DIR) and the engine. Services take these types,
 * not the concrete Prisma, hnswlib and file classes, so a test can build one over in-memory fakes
 * (test/unit/). src/app.ts passes the real ones: PrismaImageRepository, HnswVectorIndex (through
 * hnswIndexStore), ImageFileStore and the engine wrapped by DomainErrorEngine.
 */
import type { JobRecord } from '../domain/job.js';
import type { HnswOptions } from '../index/hnsw-vector-index.js';
import { HnswVectorIndex } from '../index/hnsw-vector-index.js';
import type { VectorIndex, VectorMatch } from '../index/vector-index.js';
import type { PrismaImageRepository } from '../repositories/image.repository.js';
import type { ImageQueryRepository } from '../repositories/image-query.repository.js';
import type { IndexFeedRepository } from '../repositories/index-feed.repository.js';
import type { StoredItmStates } from '../repositories/image-file-store.js';

export type { BlipEngine as Engine } from '../ml/blip-engine.js';

/**
 * Image rows and their embeddings, as the services use them (the methods of
 * src/repositories/image.repository.ts they call; a fake implements the ones its service needs).
 */
export type ImageRows = Pick<
  PrismaImageRepository,
  | 'allSha256'
  | 'completeProcessing'
  | 'countMissingEmbeddings'
  | 'createProcessing'
  | 'createWithEmbedding'
  | 'delete'
  | 'findAnyById'
  | 'findById'
  | 'findBySha256'
  | 'findByStatus'
  | 'findEmbeddings'
  | 'findMissingEmbeddings'
  | 'findReadyByLabels'
  | 'findReadyInRange'
  | 'findVisibleById'
  | 'findVisibleBySha256s'
  | 'getEmbedding'
  | 'maxLabel'
  | 'setCaptureInfo'
  | 'setStatus'
  | 'streamEmbeddings'
  | 'updateCaption'
  | 'updateDetails'
  | 'upsertEmbedding'
  /** Bumped on every write: search result caches key on it. */
  | 'version'
>;

/** The rows SearchService reads: candidates' records by label, a stored image's embedding. */
export type SearchRows = Pick<ImageRows, 'findById' | 'findReadyByLabels' | 'getEmbedding' | 'version'>;

/** The rows ImageService reads and edits (src/services/image.service.ts). */
export type StoredImageRows = Pick<
  ImageRows,
  'findById' | 'findVisibleById' | 'findVisibleBySha256s' | 'findReadyByLabels' | 'updateDetails' | 'updateCaption' | 'setStatus' | 'delete'
>;

/**
 * Filtered listings and full-text matches (src/repositories/image-query.repository.ts): labels and
 * counts only, records come from {@link ImageRows}.
 */
export type ImageQueries = Pick<ImageQueryRepository, 'count' | 'matchingLabels' | 'pageLabels' | 'keywordMatches'>;

/** The rows IngestService reads and writes. */
export type IngestRows = Pick<
  ImageRows,
  'findBySha256' | 'findAnyById' | 'findById' | 'delete' | 'createWithEmbedding' | 'createProcessing' | 'completeProcessing' | 'setStatus'
>;

/** The rows StorageRecoveryService mends at start and re-embeds after a model change. */
export type RecoveryRows = Pick<
  ImageRows,
  'findByStatus' | 'delete' | 'allSha256' | 'countMissingEmbeddings' | 'findMissingEmbeddings' | 'upsertEmbedding'
>;

/** The rows ImageIndexService reads to build and check its index. */
export type IndexRows = Pick<ImageRows, 'findEmbeddings' | 'streamEmbeddings'>;

/** What ImageIndexService needs of the PostgreSQL change feed to trust a snapshot's position. */
export type FeedBounds = Pick<IndexFeedRepository, 'head' | 'trimmedTo'>;

/**
 * Files kept per image, content-addressed by sha256: the original (source of truth for pixels) and
 * derived caches (ITM states, thumbnails, the model's input). What services call on
 * src/repositories/image-file-store.ts.
 */
export interface ImageBlobs {
  writeOriginal(sha256: string, bytes: Uint8Array): Promise<void>;
  /** Throws OriginalMissingError (src/domain/errors.ts) when there is none. */
  readOriginal(sha256: string): Promise<Buffer>;
  /** Moves an original no row refers to aside for a person to check; returns where it went. */
  quarantineOriginal(sha256: string, batch: string): Promise<string>;
  listOriginals(): Promise<{ hashes: string[]; tempFiles: string[] }>;
  writeItmStates(modelId: string, sha256: string, states: StoredItmStates): Promise<void>;
  /** null when absent or not of these dimensions. */
  readItmStates(modelId: string, sha256: string, dims: { tokens: number; hidden: number }): Promise<StoredItmStates | null>;
  /** Removes the ITM states of every model but `modelId`; returns the models removed. */
  pruneItmStates(modelId: string): Promise<string[]>;
  readThumbnail(size: number, sha256: string): Promise<Buffer | null>;
  writeThumbnail(size: number, sha256: string, bytes: Uint8Array): Promise<void>;
  readModelInput(size: number, sha256: string): Promise<Buffer | null>;
  writeModelInput(size: number, sha256: string, bytes: Uint8Array): Promise<void>;
  /** The original and every derived file of the image. */
  removeAll(sha256: string): Promise<void>;
}

/** The vector index ImageIndexService keeps in step with the rows, and persists. */
export interface StoredVectorIndex extends VectorIndex {
  /** The stored (normalised) vector of a live label. */
  vector(label: number): Float32Array;
  /** Drops deleted entries when they pass `ratio` of all; true when it did. */
  compactIfNeeded(ratio: number): boolean;
  /** `feedPosition`: the change-feed position the snapshot includes (PostgreSQL replicas). */
  save(dir: string, feedPosition?: () => number): Promise<void>;
}

/** Where ImageIndexService gets its index: an empty one, or the persisted one (or empty and why). */
export interface VectorIndexStore {
  create(): StoredVectorIndex;
  open(dir: string): Promise<
    | { status: 'loaded'; index: StoredVectorIndex; feedPosition?: number | undefined }
    | { status: 'empty'; index: StoredVectorIndex; reason: string }
  >;
}

/** The HNSW index files under DATA_DIR/index (src/index/hnsw-vector-index.ts). */
export function hnswIndexStore(modelId: string, dim: number, options: HnswOptions): VectorIndexStore {
  return {
    create: () => HnswVectorIndex.create(dim, modelId, options),
    open: (dir) => HnswVectorIndex.open(dir, modelId, dim, options),
  };
}

/** What services read from the vector index (src/services/image-index.service.ts). */
export interface ImageVectors {
  /** Loads the persisted index (or builds it) and repairs it against the rows: once, at start. */
  open(): Promise<void>;
  readonly size: number;
  /** Bumped on every change: search result caches key on it. */
  readonly version: number;
  add(label: number, vector: Float32Array): void;
  remove(label: number): void;
  has(label: number): boolean;
  labels(): number[];
  search(vector: Float32Array, k: number, allow?: (label: number) => boolean): VectorMatch[];
  exactSearch(vector: Float32Array, labels: Iterable<number>): VectorMatch[];
  similarity(vector: Float32Array, label: number): number | null;
}

/** The job queue as ingest uses it (src/services/job-queue.service.ts). */
export interface IngestJobs {
  findForImage(imageId: string): Promise<JobRecord | null>;
  /** Tells subscribers about a job stored together with its image. */
  announce(job: JobRecord): void;
  /** ROLE=api: an ingest that waits for the worker that runs its job (src/services/job-queue.service.ts). */
  waitUntilFinished(jobId: string): Promise<JobRecord>;
}
