import fs from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../lib/write-file-atomic.js';
import type { BlobStore } from './blob-store.js';

/**
 * BLOB_STORE=local: files under a folder (DATA_DIR), the key as the relative path; written
 * atomically (temp file, fsync, rename). Temp files (`*.tmp`) are not listed.
 */
export class LocalBlobStore implements BlobStore {
  constructor(private readonly root: string) {}

  path(key: string): string {
    return path.join(this.root, ...key.split('/'));
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    await writeFileAtomic(this.path(key), bytes);
  }

  async get(key: string): Promise<Buffer | null> {
    try {
      return await fs.readFile(this.path(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.path(key), { force: true });
  }

  async exists(key: string): Promise<boolean> {
    return fs.access(this.path(key)).then(() => true, () => false);
  }

  async *list(prefix: string): AsyncIterable<string> {
    // The folder part of the prefix, then a recursive walk filtered by the whole prefix.
    const dir = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const start = path.join(this.root, ...dir.split('/').filter(Boolean));
    const entries = await fs.readdir(start, { recursive: true, withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (!entry.isFile() || entry.name.endsWith('.tmp')) continue;
      const key = path.relative(this.root, path.join(entry.parentPath, entry.name)).split(path.sep).join('/');
      if (key.startsWith(prefix)) yield key;
    }
  }
}
