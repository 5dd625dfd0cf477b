import type { JobKind, JobRecord, JobState } from '../domain/job.js';
import { Prisma } from '../generated/prisma-sqlite/client.js';
import type { DbClient } from './database.js';
import type { SqlDialect } from './image-filter-sql.js';

type JobRow = Omit<JobRecord, 'kind' | 'state' | 'payload'> & { kind: string; state: string; payload: string | null };

export function toJobRecord(row: JobRow): JobRecord {
  return {
    id: row.id,
    seq: row.seq,
    kind: row.kind as JobKind,
    state: row.state as JobState,
    progress: row.progress,
    done: row.done,
    total: row.total,
    error: row.error,
    imageId: row.imageId,
    payload: row.payload === null ? null : (JSON.parse(row.payload) as unknown),
    attempts: row.attempts,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
  };
}

export interface NewJob {
  id: string;
  kind: JobKind;
  imageId?: string | null;
  payload?: unknown;
  total?: number;
}

/** A REEMBED job's payload, as stored: claims and look-ups match it exactly. */
export const reembedPayload = (modelId: string) => JSON.stringify({ modelId });

export const jobCreateData = (job: NewJob) => ({
  id: job.id,
  kind: job.kind,
  imageId: job.imageId ?? null,
  payload: job.payload === undefined ? null : JSON.stringify(job.payload),
  total: job.total ?? 0,
});

/**
 * The Job table as a queue. Claims are one atomic UPDATE whose WHERE picks the oldest QUEUED job
 * (or a RUNNING one whose holder's lease ran out: a process that died). On PostgreSQL the inner
 * SELECT takes the row FOR UPDATE SKIP LOCKED, so concurrent consumers never wait on or take the
 * same job; SQLite has one writer at a time, so its single statement is atomic as it is.
 */
export class JobRepository {
  constructor(
    private readonly db: DbClient,
    private readonly dialect: SqlDialect,
  ) {}

  async create(job: NewJob): Promise<JobRecord> {
    return toJobRecord(await this.db.job.create({ data: jobCreateData(job) }));
  }

  /**
   * With `modelId`, REEMBED jobs of other models are left to their own workers: during a model
   * change, workers of the old and the new model share the queue (docs/scaling.md).
   */
  async claim(workerId: string, leaseMs: number, now = Date.now(), modelId?: string): Promise<JobRecord | null> {
    const ownModel = modelId === undefined ? Prisma.empty : Prisma.sql` AND ("kind" <> 'REEMBED' OR "payload" = ${reembedPayload(modelId)})`;
    const pick = Prisma.sql`SELECT "seq" FROM "Job" WHERE ("state" = 'QUEUED' OR ("state" = 'RUNNING' AND "leaseUntil" < ${now}))${ownModel}
      ORDER BY "seq" LIMIT 1${this.dialect === 'postgresql' ? Prisma.raw(' FOR UPDATE SKIP LOCKED') : Prisma.empty}`;
    const rows = await this.db.$queryRaw<Array<{ id: string }>>(
      Prisma.sql`UPDATE "Job" SET "state" = 'RUNNING', "lockedBy" = ${workerId}, "leaseUntil" = ${now + leaseMs}, "attempts" = "attempts" + 1
        WHERE "seq" = (${pick}) RETURNING "id"`,
    );
    const id = rows[0]?.id;
    if (!id) return null;
    // Dates through Prisma (each adapter stores them its own way); the job is ours already.
    const row = await this.db.job.findUniqueOrThrow({ where: { id } });
    return toJobRecord(await this.db.job.update({ where: { id }, data: { startedAt: row.startedAt ?? new Date(now) } }));
  }

  async findById(id: string): Promise<JobRecord | null> {
    const row = await this.db.job.findUnique({ where: { id } });
    return row ? toJobRecord(row) : null;
  }

  /** Newest first, strictly before `beforeSeq`. */
  async list(options: { limit: number; beforeSeq?: number | null; states?: JobState[] | null; kind?: JobKind | null }): Promise<JobRecord[]> {
    const rows = await this.db.job.findMany({
      where: {
        ...(options.beforeSeq != null ? { seq: { lt: options.beforeSeq } } : {}),
        ...(options.states?.length ? { state: { in: options.states } } : {}),
        ...(options.kind ? { kind: options.kind } : {}),
      },
      orderBy: { seq: 'desc' },
      take: options.limit,
    });
    return rows.map(toJobRecord);
  }

  async count(options: { states?: JobState[] | null; kind?: JobKind | null }): Promise<number> {
    return this.db.job.count({
      where: { ...(options.states?.length ? { state: { in: options.states } } : {}), ...(options.kind ? { kind: options.kind } : {}) },
    });
  }

  async countByState(): Promise<Map<string, number>> {
    const rows = await this.db.job.groupBy({ by: ['kind', 'state'], _count: { _all: true } });
    return new Map(rows.map((r) => [`${r.kind}:${r.state}`, r._count._all]));
  }

  /** Progress of a job this worker holds; extends its lease. False when the job is no longer ours. */
  async report(id: string, workerId: string, update: { progress: number; done?: number; total?: number }, leaseUntil: number): Promise<JobRecord | null> {
    const { count } = await this.db.job.updateMany({
      where: { id, lockedBy: workerId, state: 'RUNNING' },
      data: { progress: update.progress, ...(update.done !== undefined ? { done: update.done } : {}), ...(update.total !== undefined ? { total: update.total } : {}), leaseUntil },
    });
    return count ? this.findById(id) : null;
  }

  async finish(id: string, workerId: string, state: 'SUCCEEDED' | 'FAILED', error: string | null): Promise<JobRecord | null> {
    const { count } = await this.db.job.updateMany({
      where: { id, lockedBy: workerId, state: 'RUNNING' },
      data: { state, error, ...(state === 'SUCCEEDED' ? { progress: 1 } : {}), finishedAt: new Date(), lockedBy: null, leaseUntil: null },
    });
    return count ? this.findById(id) : null;
  }

  /** Back to QUEUED (a retry, or a graceful stop handing its jobs to the next process). */
  async requeue(id: string, workerId: string, error: string | null): Promise<JobRecord | null> {
    const { count } = await this.db.job.updateMany({
      where: { id, lockedBy: workerId, state: 'RUNNING' },
      data: { state: 'QUEUED', error, lockedBy: null, leaseUntil: null },
    });
    return count ? this.findById(id) : null;
  }

  /** The latest job that works on this image. */
  async findForImage(imageId: string): Promise<JobRecord | null> {
    const row = await this.db.job.findFirst({ where: { imageId }, orderBy: { seq: 'desc' } });
    return row ? toJobRecord(row) : null;
  }

  /** An unfinished job of this kind, if any (one re-embedding run at a time). */
  async findUnfinished(kind: JobKind, modelId?: string): Promise<JobRecord | null> {
    const row = await this.db.job.findFirst({
      where: { kind, state: { in: ['QUEUED', 'RUNNING'] }, ...(modelId === undefined ? {} : { payload: reembedPayload(modelId) }) },
      orderBy: { seq: 'asc' },
    });
    return row ? toJobRecord(row) : null;
  }
}
