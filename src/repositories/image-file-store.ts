import fs from 'node:fs/promises';
import path from 'node:path';
import { OriginalMissingError } from '../domain/errors.js';
import { writeFileAtomic } from '../lib/write-file-atomic.js';
import type { BlobStore } from './blob-store.js';

/** An image's ITM states as stored: int8 codes and one scale per token (src/ml/blip-engine.ts ItmStates). */
export interface StoredItmStates {
  codes: Int8Array;
  scales: Float32Array;
}

/**
 * Files under DATA_DIR, content-addressed by sha256:
 *   images/ab/<sha256>          original bytes (source of truth for pixels)
 *   itm-states/<modelId>/ab/<sha256>.i8    derived ITM states (cache, recomputable): per-token
 *                                           float32 scales, then the int8 codes
 *   thumbs/<size>/ab/<sha256>.webp          derived thumbnails (cache); size 0: a servable full-size copy
 *   model-input/<size>/ab/<sha256>.png      the model's S x S input, lossless (cache: questions and
 *                                           captions read it instead of decoding the original)
 *   quarantine/<time>/<sha256>              originals no row referred to at a start (kept for a person to check)
 *
 * With a shared blob store (BLOB_STORE=postgres or s3, src/repositories/blob-store.ts) the
 * originals, and their quarantine, live there under the same keys (`images/ab/<sha256>`); ITM
 * states and thumbnails stay in this process's DATA_DIR as caches, recomputed from the original
 * wherever they are missing.
 */
export class ImageFileStore {
  constructor(
    private readonly dataDir: string,
    private readonly shared: BlobStore | null = null,
  ) {}

  /** The original's key in a blob store (and its path below DATA_DIR). */
  static originalKey(sha256: string): string {
    return `images/${sha256.slice(0, 2)}/${sha256}`;
  }

  originalPath(sha256: string): string {
    return path.join(this.dataDir, 'images', sha256.slice(0, 2), sha256);
  }

  async writeOriginal(sha256: string, bytes: Uint8Array): Promise<void> {
    if (this.shared) await this.shared.put(ImageFileStore.originalKey(sha256), bytes);
    else await writeFileAtomic(this.originalPath(sha256), bytes);
  }

  async readOriginal(sha256: string): Promise<Buffer> {
    if (this.shared) {
      const bytes = await this.shared.get(ImageFileStore.originalKey(sha256));
      if (!bytes) throw new OriginalMissingError(sha256);
      return bytes;
    }
    try {
      return await fs.readFile(this.originalPath(sha256));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new OriginalMissingError(sha256, { cause: error });
      throw error;
    }
  }

  itmStatesPath(modelId: string, sha256: string): string {
    return path.join(this.dataDir, 'itm-states', safeSegment(modelId), sha256.slice(0, 2), `${sha256}.i8`);
  }

  async writeItmStates(modelId: string, sha256: string, states: StoredItmStates): Promise<void> {
    const bytes = (a: Int8Array | Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    await writeFileAtomic(this.itmStatesPath(modelId, sha256), [bytes(states.scales), bytes(states.codes)]);
  }

  /**
   * null when absent or of the wrong length (a torn or foreign file is treated as missing). The
   * file is read straight into shared memory (src/ml/runtime/shared-memory.ts explains why), so
   * the event loop neither copies nor first-touches the states.
   */
  async readItmStates(modelId: string, sha256: string, dims: { tokens: number; hidden: number }): Promise<StoredItmStates | null> {
    const size = dims.tokens * 4 + dims.tokens * dims.hidden;
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(this.itmStatesPath(modelId, sha256), 'r');
    } catch {
      return null;
    }
    try {
      if ((await handle.stat()).size !== size) return null;
      const memory = new SharedArrayBuffer(size);
      let read = 0;
      while (read < size) {
        const { bytesRead } = await handle.read(new Uint8Array(memory, read), 0, size - read, read);
        if (bytesRead === 0) return null;
        read += bytesRead;
      }
      return { scales: new Float32Array(memory, 0, dims.tokens), codes: new Int8Array(memory, dims.tokens * 4) };
    } finally {
      await handle.close();
    }
  }

  /** Removes the ITM states of every model but `modelId` (derived data of models no longer served). */
  async pruneItmStates(modelId: string): Promise<string[]> {
    const root = path.join(this.dataDir, 'itm-states');
    const keep = safeSegment(modelId);
    const removed: string[] = [];
    for (const model of await fs.readdir(root).catch(() => [] as string[])) {
      if (model === keep) continue;
      await fs.rm(path.join(root, model), { recursive: true, force: true });
      removed.push(model);
    }
    return removed;
  }

  thumbnailPath(size: number, sha256: string): string {
    return path.join(this.dataDir, 'thumbs', String(size), sha256.slice(0, 2), `${sha256}.webp`);
  }

  async readThumbnail(size: number, sha256: string): Promise<Buffer | null> {
    return fs.readFile(this.thumbnailPath(size, sha256)).catch(() => null);
  }

  async writeThumbnail(size: number, sha256: string, bytes: Uint8Array): Promise<void> {
    await writeFileAtomic(this.thumbnailPath(size, sha256), bytes);
  }

  modelInputPath(size: number, sha256: string): string {
    return path.join(this.dataDir, 'model-input', String(size), sha256.slice(0, 2), `${sha256}.png`);
  }

  async readModelInput(size: number, sha256: string): Promise<Buffer | null> {
    return fs.readFile(this.modelInputPath(size, sha256)).catch(() => null);
  }

  async writeModelInput(size: number, sha256: string, bytes: Uint8Array): Promise<void> {
    await writeFileAtomic(this.modelInputPath(size, sha256), bytes);
  }

  /** Removes the original and every derived file of an image. */
  async removeAll(sha256: string): Promise<void> {
    if (this.shared) await this.shared.delete(ImageFileStore.originalKey(sha256));
    else await fs.rm(this.originalPath(sha256), { force: true });
    const itmRoot = path.join(this.dataDir, 'itm-states');
    for (const model of await fs.readdir(itmRoot).catch(() => [] as string[])) {
      await fs.rm(path.join(itmRoot, model, sha256.slice(0, 2), `${sha256}.i8`), { force: true });
    }
    const thumbRoot = path.join(this.dataDir, 'thumbs');
    for (const size of await fs.readdir(thumbRoot).catch(() => [] as string[])) {
      await fs.rm(path.join(thumbRoot, size, sha256.slice(0, 2), `${sha256}.webp`), { force: true });
    }
    const inputRoot = path.join(this.dataDir, 'model-input');
    for (const size of await fs.readdir(inputRoot).catch(() => [] as string[])) {
      await fs.rm(path.join(inputRoot, size, sha256.slice(0, 2), `${sha256}.png`), { force: true });
    }
  }

  /**
   * Moves an original out of images/ into `quarantine/<batch>/` (derived files are dropped: they
   * can be recomputed). Start-up recovery never deletes an original it cannot prove orphaned.
   * @returns the new path.
   */
  async quarantineOriginal(sha256: string, batch: string): Promise<string> {
    if (this.shared) {
      // No rename in a blob store: copy, then delete.
      const key = `quarantine/${batch}/${sha256}`;
      const bytes = await this.shared.get(ImageFileStore.originalKey(sha256));
      if (bytes) await this.shared.put(key, bytes);
      await this.removeAll(sha256);
      return key;
    }
    const target = path.join(this.dataDir, 'quarantine', batch, sha256);
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.rename(this.originalPath(sha256), target);
    await this.removeAll(sha256);
    return target;
  }

  /** sha256s of stored originals, and leftover temp files (a crash mid-write). */
  async listOriginals(): Promise<{ hashes: string[]; tempFiles: string[] }> {
    if (this.shared) {
      const hashes: string[] = [];
      for await (const key of this.shared.list('images/')) hashes.push(key.slice(key.lastIndexOf('/') + 1));
      return { hashes, tempFiles: [] };
    }
    const root = path.join(this.dataDir, 'images');
    const hashes: string[] = [];
    const tempFiles: string[] = [];
    for (const prefix of await fs.readdir(root).catch(() => [] as string[])) {
      for (const name of await fs.readdir(path.join(root, prefix)).catch(() => [] as string[])) {
        if (name.endsWith('.tmp')) tempFiles.push(path.join(root, prefix, name));
        else hashes.push(name);
      }
    }
    return { hashes, tempFiles };
  }
}

function safeSegment(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100);
}
