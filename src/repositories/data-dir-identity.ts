import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../lib/write-file-atomic.js';
import type { BlobStore } from './blob-store.js';

/** `DATA_DIR/instance.json`: which database this folder's originals belong to. */
const identitySchema = z.object({
  instanceId: z.string().min(1),
  /** Where the database was when the folder was claimed (no password), for error messages. */
  database: z.string(),
  claimedAt: z.string(),
});

export type DataDirIdentity = z.infer<typeof identitySchema>;

export const IDENTITY_FILE = 'instance.json';

/** null when the folder has no identity file; throws when it has an unreadable one. */
export async function readDataDirIdentity(dataDir: string): Promise<DataDirIdentity | null> {
  const file = path.join(dataDir, IDENTITY_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const parsed = identitySchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${file} is not a blip-search instance file: ${parsed.error.message}`);
  return parsed.data;
}

export async function writeDataDirIdentity(dataDir: string, identity: DataDirIdentity): Promise<void> {
  await writeFileAtomic(path.join(dataDir, IDENTITY_FILE), new TextEncoder().encode(`${JSON.stringify(identity, null, 2)}\n`));
}

/**
 * With a shared blob store (BLOB_STORE=postgres or s3) the originals are there, so the identity is
 * too (key `instance.json`): a process on a new machine, with an empty DATA_DIR, then finds the
 * store bound to its database, and a store bound to another database is refused as a folder is.
 */
export function blobStoreIdentity(store: BlobStore): { read(): Promise<DataDirIdentity | null>; write(identity: DataDirIdentity): Promise<void> } {
  return {
    read: async () => {
      const bytes = await store.get(IDENTITY_FILE);
      if (!bytes) return null;
      const parsed = identitySchema.safeParse(JSON.parse(bytes.toString('utf8')));
      if (!parsed.success) throw new Error(`the blob store's ${IDENTITY_FILE} is not a blip-search instance file: ${parsed.error.message}`);
      return parsed.data;
    },
    write: (identity) => store.put(IDENTITY_FILE, new TextEncoder().encode(`${JSON.stringify(identity, null, 2)}\n`)),
  };
}
