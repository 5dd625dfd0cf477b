import fs from 'node:fs/promises';
import { z } from 'zod';
import { writeFileAtomic } from '../lib/write-file-atomic.js';

/**
 * Sidecar of the HNSW file: what built it, which labels are marked deleted (hnswlib-node cannot
 * say), from format 2 the file's size and sha256 (a torn or foreign file is not loaded), and from
 * format 3 the file's name: each save writes a new file and this manifest's atomic rename commits
 * it (src/index/hnsw-vector-index.ts), where formats 1-2 renamed over `hnsw.bin` first and a
 * crash between the two renames cost a full rebuild.
 */
const SNAPSHOT_FILE = /^hnsw-[0-9a-f]{16}\.bin$/;
/** What formats 1-2 always wrote. */
const LEGACY_SNAPSHOT_FILE = 'hnsw.bin';

const manifestSchema = z.object({
  formatVersion: z.union([z.literal(1), z.literal(2), z.literal(3)]),
  modelId: z.string(),
  dim: z.number().int().positive(),
  /** The snapshot file in the same folder (format 3); formats 1-2 mean `hnsw.bin`. */
  file: z.string().regex(SNAPSHOT_FILE).optional(),
  deleted: z.array(z.number().int()),
  savedAt: z.string(),
  bytes: z.number().int().nonnegative().optional(),
  sha256: z.string().optional(),
  /** The change-feed position the snapshot includes (PostgreSQL replicas, src/services/index-feed-follower.ts). */
  feedPosition: z.number().int().nonnegative().optional(),
});

export type IndexManifest = z.infer<typeof manifestSchema>;

export async function readIndexManifest(file: string): Promise<IndexManifest | null> {
  try {
    return manifestSchema.parse(JSON.parse(await fs.readFile(file, 'utf8')));
  } catch {
    return null;
  }
}

export async function writeIndexManifest(file: string, manifest: IndexManifest): Promise<void> {
  await writeFileAtomic(file, new TextEncoder().encode(JSON.stringify(manifest)));
}

/** A snapshot file's name, from its sha256: a save never writes over the committed one. */
export function snapshotFileFor(sha256: string): string {
  return `hnsw-${sha256.slice(0, 16)}.bin`;
}

/** The snapshot file a manifest commits (format 3 names it; formats 1-2 wrote `hnsw.bin`). */
export function snapshotFileOf(manifest: IndexManifest): string {
  return manifest.file ?? LEGACY_SNAPSHOT_FILE;
}

/** Whether a file in an index folder is a snapshot of any format. */
export function isSnapshotFile(name: string): boolean {
  return name === LEGACY_SNAPSHOT_FILE || SNAPSHOT_FILE.test(name);
}
