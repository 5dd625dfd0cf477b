import type { ImageRecord, ImageStatus } from '../../src/domain/image.js';
import type { JobRecord } from '../../src/domain/job.js';
import { OriginalMissingError } from '../../src/domain/errors.js';
import { ExactVectorIndex } from '../../src/index/exact-vector-index.js';
import type { ImageDetailsPatch, NewImage, StoredEmbedding } from '../../src/repositories/image.repository.js';
import type { NewJob } from '../../src/repositories/job.repository.js';
import type { StoredItmStates } from '../../src/repositories/image-file-store.js';
import type { ImageFilter, JsonValue } from '../../src/domain/image-filter.js';
import type { KeysetPosition } from '../../src/domain/pagination.js';
import type { KeywordMatch } from '../../src/repositories/image-query.repository.js';
import type { ImageBlobs, ImageQueries, IndexRows, IngestJobs, IngestRows, RecoveryRows, SearchRows, StoredImageRows, StoredVectorIndex, VectorIndexStore } from '../../src/services/ports.js';

/** What the database does on a second row with the same sha256 (Prisma's P2002). */
export class UniqueViolation extends Error {
  readonly code = 'P2002';
}

/**
 * Image rows in memory, with the database's rules the services rely on: sha256 is unique (a second
 * insert throws), labels grow, a row and its embedding land together. `beforeInsert` runs just
 * before an insert is checked: a test uses it to play another process that stores the same bytes
 * between the service's lookup and its insert.
 */
export class InMemoryImageRows implements IngestRows, IndexRows, RecoveryRows, SearchRows, StoredImageRows {
  readonly rows = new Map<number, ImageRecord>();
  readonly embeddings = new Map<number, Map<string, Float32Array>>();
  readonly jobs = new Map<string, JobRecord>();
  beforeInsert: ((sha256: string) => void) | undefined;
  /** Bumped on every write, as the repository's (search lists key on it). */
  version = 0;
  private nextLabel = 1;

  /** Stores a row directly (as another process would), READY with an embedding unless told otherwise. */
  insert(image: Omit<NewImage, 'caption' | 'captionModelId' | 'captionMatch' | 'altTextMatch'> & Partial<NewImage>, status: ImageStatus, embedding?: { modelId: string; vector: Float32Array }): ImageRecord {
    for (const row of this.rows.values()) if (row.sha256 === image.sha256) throw new UniqueViolation(`sha256 ${image.sha256} is taken`);
    const record: ImageRecord = {
      caption: null,
      captionModelId: null,
      captionMatch: null,
      altTextMatch: null,
      ...image,
      label: this.nextLabel++,
      status,
      createdAt: new Date(),
    };
    this.rows.set(record.label, record);
    this.version++;
    if (embedding) this.embeddings.set(record.label, new Map([[embedding.modelId, Float32Array.from(embedding.vector)]]));
    return { ...record };
  }

  /** A READY 1x1 PNG row numbered n (id-n, sha-n) with `vector` as its embedding for `modelId`. */
  insertReady(n: number, modelId: string, vector: Float32Array): ImageRecord {
    return this.insert(
      { id: `id-${n}`, sha256: `sha-${n}`, mimeType: 'image/png', format: 'png', width: 1, height: 1, byteSize: 1, altText: null, metadata: null, takenAt: null, cameraMake: null, cameraModel: null },
      'READY',
      { modelId, vector },
    );
  }

  async findBySha256(sha256: string): Promise<ImageRecord | null> {
    for (const row of this.rows.values()) if (row.sha256 === sha256) return { ...row };
    return null;
  }

  async findAnyById(id: string): Promise<ImageRecord | null> {
    for (const row of this.rows.values()) if (row.id === id) return { ...row };
    return null;
  }

  /** READY only, as the repository's findById. */
  async findById(id: string): Promise<ImageRecord | null> {
    for (const row of this.rows.values()) if (row.id === id && row.status === 'READY') return { ...row };
    return null;
  }

  async delete(label: number): Promise<void> {
    this.rows.delete(label);
    this.embeddings.delete(label);
    this.version++;
  }

  async setStatus(label: number, status: ImageStatus): Promise<void> {
    const row = this.rows.get(label);
    if (row) row.status = status;
    this.version++;
  }

  async findReadyByLabels(labels: number[]): Promise<Map<number, ImageRecord>> {
    const out = new Map<number, ImageRecord>();
    for (const label of labels) {
      const row = this.rows.get(label);
      if (row?.status === 'READY') out.set(label, { ...row });
    }
    return out;
  }

  async findVisibleById(id: string): Promise<ImageRecord | null> {
    for (const row of this.rows.values()) if (row.id === id && (row.status === 'READY' || row.status === 'PROCESSING')) return { ...row };
    return null;
  }

  async findVisibleBySha256s(hashes: string[]): Promise<ImageRecord[]> {
    return [...this.rows.values()].filter((r) => hashes.includes(r.sha256) && (r.status === 'READY' || r.status === 'PROCESSING')).map((r) => ({ ...r }));
  }

  /** READY rows only, as the repository's updates (a row being deleted is not written to). */
  async updateDetails(label: number, patch: ImageDetailsPatch): Promise<ImageRecord> {
    return this.updateReady(label, patch);
  }

  async updateCaption(label: number, caption: string, modelId: string, captionMatch: number | null): Promise<ImageRecord> {
    return this.updateReady(label, { caption, captionModelId: modelId, captionMatch });
  }

  private updateReady(label: number, fields: Partial<ImageRecord>): ImageRecord {
    const row = this.rows.get(label);
    if (row?.status !== 'READY') throw new Error(`no READY image with label ${label} (Prisma's P2025)`);
    Object.assign(row, fields);
    this.version++;
    return { ...row };
  }

  async getEmbedding(label: number, modelId: string): Promise<Float32Array | null> {
    return this.embeddings.get(label)?.get(modelId) ?? null;
  }

  async createWithEmbedding(image: NewImage, embedding: { modelId: string; vector: Float32Array }): Promise<ImageRecord> {
    this.beforeInsert?.(image.sha256);
    return this.insert(image, 'READY', embedding);
  }

  async createProcessing(image: Omit<NewImage, 'caption' | 'captionModelId' | 'captionMatch' | 'altTextMatch'>, job: NewJob): Promise<{ image: ImageRecord; job: JobRecord }> {
    this.beforeInsert?.(image.sha256);
    const record = this.insert(image, 'PROCESSING');
    return { image: record, job: this.addJob(job, record.id) };
  }

  addJob(job: NewJob, imageId: string): JobRecord {
    const now = new Date();
    const record: JobRecord = {
      id: job.id,
      seq: this.jobs.size + 1,
      kind: job.kind,
      state: 'QUEUED',
      progress: 0,
      done: 0,
      total: job.total ?? 0,
      error: null,
      imageId,
      payload: job.payload ?? null,
      attempts: 0,
      createdAt: now,
      updatedAt: now,
      startedAt: null,
      finishedAt: null,
    };
    this.jobs.set(record.id, record);
    return record;
  }

  async completeProcessing(
    label: number,
    fields: { caption: string; captionModelId: string; captionMatch: number | null; altTextMatch: number | null },
    embedding: { modelId: string; vector: Float32Array },
  ): Promise<ImageRecord> {
    const row = this.rows.get(label);
    if (!row || row.status !== 'PROCESSING') throw new Error(`no PROCESSING image with label ${label}`);
    Object.assign(row, fields, { status: 'READY' });
    this.embeddings.set(label, new Map([[embedding.modelId, Float32Array.from(embedding.vector)]]));
    this.version++;
    return { ...row };
  }

  async findByStatus(status: ImageStatus): Promise<ImageRecord[]> {
    return [...this.rows.values()].filter((r) => r.status === status).map((r) => ({ ...r }));
  }

  async allSha256(): Promise<Set<string>> {
    return new Set([...this.rows.values()].map((r) => r.sha256));
  }

  async countMissingEmbeddings(modelId: string): Promise<number> {
    return this.missing(modelId).length;
  }

  /** READY rows without an embedding of `modelId`, by label. */
  async findMissingEmbeddings(modelId: string, limit: number): Promise<ImageRecord[]> {
    return this.missing(modelId).slice(0, limit);
  }

  async upsertEmbedding(label: number, modelId: string, vector: Float32Array): Promise<void> {
    const byModel = this.embeddings.get(label) ?? new Map<string, Float32Array>();
    byModel.set(modelId, Float32Array.from(vector));
    this.embeddings.set(label, byModel);
  }

  private missing(modelId: string): ImageRecord[] {
    return [...this.rows.values()]
      .filter((r) => r.status === 'READY' && !this.embeddings.get(r.label)?.has(modelId))
      .sort((a, b) => a.label - b.label)
      .map((r) => ({ ...r }));
  }

  async findEmbeddings(labels: number[], modelId: string): Promise<Map<number, Float32Array>> {
    const out = new Map<number, Float32Array>();
    for (const label of labels) {
      const vector = this.embeddings.get(label)?.get(modelId);
      if (vector) out.set(label, vector);
    }
    return out;
  }

  async *streamEmbeddings(modelId: string, dim: number): AsyncGenerator<StoredEmbedding[]> {
    const page: StoredEmbedding[] = [];
    for (const [label, byModel] of this.embeddings) {
      const vector = byModel.get(modelId);
      if (vector?.length === dim && this.rows.get(label)?.status === 'READY') page.push({ label, vector });
    }
    yield page;
  }
}

/** The job queue's side of ingest over the rows' jobs; `announced` is what subscribers were told. */
export class InMemoryIngestJobs implements IngestJobs {
  readonly announced: JobRecord[] = [];

  constructor(private readonly rows: InMemoryImageRows) {}

  async findForImage(imageId: string): Promise<JobRecord | null> {
    for (const job of this.rows.jobs.values()) if (job.imageId === imageId) return job;
    return null;
  }

  announce(job: JobRecord): void {
    this.announced.push(job);
  }

  /** As the queue's: the job once SUCCEEDED or FAILED (here the tests settle jobs themselves). */
  async waitUntilFinished(jobId: string): Promise<JobRecord> {
    for (;;) {
      const job = this.rows.jobs.get(jobId);
      if (!job) throw new Error(`no job ${jobId}`);
      if (job.state === 'SUCCEEDED' || job.state === 'FAILED') return job;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

/** Files by name in memory, with ImageFileStore's answers for what is absent. */
export class InMemoryImageBlobs implements ImageBlobs {
  readonly originals = new Map<string, Buffer>();
  /** Originals moved aside, by where they went. */
  readonly quarantined = new Map<string, Buffer>();
  readonly derived = new Map<string, Buffer | StoredItmStates>();
  writes = 0;

  async writeOriginal(sha256: string, bytes: Uint8Array): Promise<void> {
    this.writes++;
    this.originals.set(sha256, Buffer.from(bytes));
  }
  async readOriginal(sha256: string): Promise<Buffer> {
    const bytes = this.originals.get(sha256);
    if (!bytes) throw new OriginalMissingError(sha256);
    return bytes;
  }
  async quarantineOriginal(sha256: string, batch: string): Promise<string> {
    const bytes = this.originals.get(sha256);
    const where = `quarantine/${batch}/${sha256}`;
    if (bytes) this.quarantined.set(where, bytes);
    // As ImageFileStore: derived files go (recomputable), the original is kept aside.
    await this.removeAll(sha256);
    return where;
  }
  async listOriginals(): Promise<{ hashes: string[]; tempFiles: string[] }> {
    return { hashes: [...this.originals.keys()], tempFiles: [] };
  }
  async writeItmStates(modelId: string, sha256: string, states: StoredItmStates): Promise<void> {
    this.derived.set(`itm/${modelId}/${sha256}`, states);
  }
  async readItmStates(modelId: string, sha256: string, dims: { tokens: number; hidden: number }): Promise<StoredItmStates | null> {
    const states = this.derived.get(`itm/${modelId}/${sha256}`);
    if (!states || Buffer.isBuffer(states)) return null;
    return states.scales.length === dims.tokens && states.codes.length === dims.tokens * dims.hidden ? states : null;
  }
  async pruneItmStates(modelId: string): Promise<string[]> {
    const models = new Set<string>();
    for (const key of this.derived.keys()) {
      const [kind, model] = key.split('/');
      if (kind === 'itm' && model !== undefined && model !== modelId) {
        models.add(model);
        this.derived.delete(key);
      }
    }
    return [...models];
  }
  async readThumbnail(size: number, sha256: string): Promise<Buffer | null> {
    return this.bytes(`thumb/${size}/${sha256}`);
  }
  async writeThumbnail(size: number, sha256: string, bytes: Uint8Array): Promise<void> {
    this.derived.set(`thumb/${size}/${sha256}`, Buffer.from(bytes));
  }
  async readModelInput(size: number, sha256: string): Promise<Buffer | null> {
    return this.bytes(`input/${size}/${sha256}`);
  }
  async writeModelInput(size: number, sha256: string, bytes: Uint8Array): Promise<void> {
    this.derived.set(`input/${size}/${sha256}`, Buffer.from(bytes));
  }
  async removeAll(sha256: string): Promise<void> {
    this.originals.delete(sha256);
    for (const key of this.derived.keys()) if (key.endsWith(`/${sha256}`)) this.derived.delete(key);
  }
  private bytes(key: string): Buffer | null {
    const value = this.derived.get(key);
    return Buffer.isBuffer(value) ? value : null;
  }
}

/** ExactVectorIndex as ImageIndexService keeps it: vectors normalised (as HNSW's cosine space stores them), saves kept in memory. */
class SavedExactIndex extends ExactVectorIndex implements StoredVectorIndex {
  constructor(
    dim: number,
    private readonly saved: Map<string, Map<number, Float32Array>>,
  ) {
    super(dim);
  }
  override add(label: number, vector: Float32Array): void {
    const norm = Math.hypot(...vector) || 1;
    super.add(label, vector.map((v) => v / norm));
  }
  compactIfNeeded(): boolean {
    return false;
  }
  async save(dir: string): Promise<void> {
    this.saved.set(dir, new Map(this.labels().map((label) => [label, this.vector(label)])));
  }
}

/** The exact index behind VectorIndexStore; `saved` holds what each directory's last save wrote. */
export function memoryIndexStore(dim: number): VectorIndexStore & { saved: Map<string, Map<number, Float32Array>> } {
  const saved = new Map<string, Map<number, Float32Array>>();
  return {
    saved,
    create: () => new SavedExactIndex(dim, saved),
    async open(dir) {
      const index = new SavedExactIndex(dim, saved);
      const file = saved.get(dir);
      if (!file) return { status: 'empty', index, reason: 'nothing saved' };
      for (const [label, vector] of file) index.add(label, vector);
      return { status: 'loaded', index };
    },
  };
}

/** PostgreSQL's `@>` on JSON values: objects by key, arrays contain every given element. */
function contains(stored: JsonValue | undefined, given: JsonValue): boolean {
  if (Array.isArray(given)) return Array.isArray(stored) && given.every((g) => stored.some((s) => contains(s, g)));
  if (given !== null && typeof given === 'object') {
    return stored !== null && typeof stored === 'object' && !Array.isArray(stored) && Object.entries(given).every(([k, v]) => contains(stored[k], v));
  }
  return stored === given;
}

/**
 * The filtered and full-text queries of src/repositories/image-query.repository.ts over
 * InMemoryImageRows: READY rows only, every filter part, newest-first keyset pages, and keyword
 * matches on whole lower-case words of caption and alt text (no stemming), relevance = terms found.
 */
export class InMemoryImageQueries implements ImageQueries {
  constructor(private readonly images: InMemoryImageRows) {}

  private passing(filter: ImageFilter): ImageRecord[] {
    const inRange = (t: Date | null | undefined, after?: Date, before?: Date) =>
      (after === undefined && before === undefined) || (!!t && (!after || t >= after) && (!before || t < before));
    return [...this.images.rows.values()].filter(
      (r) =>
        r.status === 'READY' &&
        (!filter.mimeTypes || filter.mimeTypes.includes(r.mimeType)) &&
        (!filter.metadata || contains((r.metadata ?? undefined) as JsonValue | undefined, filter.metadata)) &&
        inRange(r.createdAt, filter.createdAfter, filter.createdBefore) &&
        inRange(r.takenAt, filter.takenAfter, filter.takenBefore),
    );
  }

  async count(filter: ImageFilter): Promise<number> {
    return this.passing(filter).length;
  }

  async matchingLabels(filter: ImageFilter, within?: readonly number[]): Promise<number[]> {
    const allowed = within ? new Set(within) : null;
    return this.passing(filter).map((r) => r.label).filter((l) => !allowed || allowed.has(l));
  }

  async pageLabels(filter: ImageFilter, after: KeysetPosition | null, limit: number): Promise<number[]> {
    const key = (r: { createdAt: Date; id: string }) => [r.createdAt.getTime(), r.id] as const;
    const before = (a: readonly [number, string], b: readonly [number, string]) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
    return this.passing(filter)
      .filter((r) => !after || before(key(r), key(after)))
      .sort((a, b) => (before(key(a), key(b)) ? 1 : -1))
      .slice(0, limit)
      .map((r) => r.label);
  }

  async keywordMatches(terms: readonly string[], match: 'all' | 'any', filter: ImageFilter, limit: number): Promise<KeywordMatch[]> {
    return this.passing(filter)
      .map((r) => {
        const words = new Set(`${r.caption ?? ''} ${r.altText ?? ''}`.toLowerCase().split(/[^\p{L}\p{N}]+/u));
        return { label: r.label, relevance: terms.filter((t) => words.has(t.toLowerCase())).length };
      })
      .filter((m) => (match === 'all' ? m.relevance === terms.length : m.relevance > 0))
      .sort((a, b) => b.relevance - a.relevance || b.label - a.label)
      .slice(0, limit);
  }
}
