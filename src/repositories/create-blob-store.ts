import type { BlobStoreConfig } from '../config/load-config.js';
import type { BlobStore } from './blob-store.js';
import type { DbClient } from './database.js';
import { PostgresBlobStore } from './postgres-blob-store.js';
import { S3BlobStore } from './s3-blob-store.js';

/**
 * The shared store of originals BLOB_STORE names; null for `local`, where ImageFileStore keeps
 * them as files in DATA_DIR (src/repositories/image-file-store.ts).
 */
export function createBlobStore(config: BlobStoreConfig, db: DbClient): (BlobStore & { close?(): void }) | null {
  switch (config.kind) {
    case 'local':
      return null;
    case 'postgres':
      return new PostgresBlobStore(db);
    case 's3':
      return new S3BlobStore(config);
  }
}
