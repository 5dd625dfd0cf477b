/**
 * Where originals live (BLOB_STORE): a key-value store of immutable byte strings, keys like
 * `images/ab/<sha256>`. The local folder is the default (src/repositories/local-blob-store.ts);
 * PostgreSQL (a bytea table) and any S3-compatible store let processes on several machines share
 * them (docs/scaling.md). Writes are all-or-nothing in each: a reader never sees half a blob.
 */
export interface BlobStore {
  /** Stores (or replaces) the bytes under `key`; done once durable. */
  put(key: string, bytes: Uint8Array): Promise<void>;
  /** The bytes, or null when absent. */
  get(key: string): Promise<Buffer | null>;
  /** No-op when absent. */
  delete(key: string): Promise<void>;
  exists(key: string): Promise<boolean>;
  /** Every key starting with `prefix`, in no particular order. */
  list(prefix: string): AsyncIterable<string>;
}
