import fs from 'node:fs/promises';
import { z } from 'zod';
import { writeFileAtomic } from '../lib/write-file-atomic.js';

/** Sidecar of the HNSW file: what built it, and which labels are marked deleted (hnswlib-node cannot say). */
const manifestSchema = z.object({
  formatVersion: z.literal(1),
  modelId: z.string(),
  dim: z.number().int().positive(),
  deleted: z.array(z.number().int()),
  savedAt: z.string(),
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
