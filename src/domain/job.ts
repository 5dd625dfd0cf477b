/** Background work kept in the database (src/services/job-queue.service.ts). */
export type JobKind = 'INGEST' | 'REEMBED';
export type JobState = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED';

export interface JobRecord {
  /** Public opaque id (UUID). */
  id: string;
  /** Claim order; also the keyset of `jobs` pages. */
  seq: number;
  kind: JobKind;
  state: JobState;
  /** 0..1 */
  progress: number;
  done: number;
  total: number;
  error: string | null;
  /** INGEST: the image it finishes. */
  imageId: string | null;
  payload: unknown;
  attempts: number;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export const isFinished = (state: JobState): boolean => state === 'SUCCEEDED' || state === 'FAILED';
