import fs from 'node:fs/promises';
import { z } from 'zod';
import { writeFileAtomic } from '../lib/write-file-atomic.js';

/**
 * Sidecar of the HNSW file: what built it, which labels are marked deleted (hnswlib-node cannot
 * say), and, from format 2, the file's size and sha256 (a torn or foreign file is not loaded).
 */
const manifestSchema = z.object({
  formatVersion: z.union([z.literal(1), z.literal(2)]),
  modelId: z.string(),
  dim: z.number().int().positive(),
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
