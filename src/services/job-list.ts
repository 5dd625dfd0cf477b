import { InvalidInputError } from '../domain/errors.js';
import type { JobKind, JobRecord, JobState } from '../domain/job.js';
import { requireFirst, type Page } from '../domain/pagination.js';
import type { JobQueueService } from './job-queue.service.js';

const encodeCursor = (seq: number) => Buffer.from(`job:${seq}`).toString('base64url');

function decodeCursor(cursor: string): number {
  const match = /^job:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw new InvalidInputError('Invalid cursor for jobs', { argument: 'after' });
  return Number(match[1]);
}

/** `jobs`: newest first, keyset by claim order (new jobs never shift a page being read). */
export async function listJobs(
  jobs: JobQueueService,
  args: { first: number; after?: string | null; states?: JobState[] | null; kind?: JobKind | null },
  maxPageSize: number,
): Promise<Page<JobRecord>> {
  const limit = requireFirst(args.first, maxPageSize);
  const beforeSeq = args.after == null ? null : decodeCursor(args.after);
  const [rows, totalCount] = await Promise.all([
    jobs.listJobs({ limit: limit + 1, beforeSeq, states: args.states, kind: args.kind }),
    jobs.countJobs({ states: args.states, kind: args.kind }),
  ]);
  return {
    items: rows.slice(0, limit).map((job) => ({ cursor: encodeCursor(job.seq), node: job })),
    hasNextPage: rows.length > limit,
    hasPreviousPage: beforeSeq !== null,
    totalCount,
  };
}
