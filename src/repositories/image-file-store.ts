import fs from 'node:fs/promises';
import path from 'node:path';
import { OriginalMissingError } from '../domain/errors.js';
import { writeFileAtomic } from '../lib/write-file-atomic.js';

/**
 * Files under DATA_DIR, content-addressed by sha256:
 *   images/ab/<sha256>          original bytes (source of truth for pixels)
 *   itm-states/<modelId>/ab/<sha256>.f32   derived ITM vision states (cache, recomputable)
 *   thumbs/<size>/ab/<sha256>.webp          derived thumbnails (cache)
 *   quarantine/<time>/<sha256>              originals no row referred to at a start (kept for a person to check)
 */
export class ImageFileStore {
  constructor(private readonly dataDir: string) {}

  originalPath(sha256: string): string {
    return path.join(this.dataDir, 'images', sha256.slice(0, 2), sha256);
  }

  async writeOriginal(sha256: string, bytes: Uint8Array): Promise<void> {
    await writeFileAtomic(this.originalPath(sha256), bytes);
  }

  async readOriginal(sha256: string): Promise<Buffer> {
    try {
      return await fs.readFile(this.originalPath(sha256));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new OriginalMissingError(sha256, { cause: error });
      throw error;
    }
  }

  itmStatesPath(modelId: string, sha256: string): string {
    return path.join(this.dataDir, 'itm-states', safeSegment(modelId), sha256.slice(0, 2), `${sha256}.f32`);
  }

  async writeItmStates(modelId: string, sha256: string, states: Float32Array): Promise<void> {
    await writeFileAtomic(this.itmStatesPath(modelId, sha256), new Uint8Array(states.buffer, states.byteOffset, states.byteLength));
  }

  /** null when absent or of the wrong length (a torn or foreign file is treated as missing). */
  async readItmStates(modelId: string, sha256: string, expectedLength: number): Promise<Float32Array | null> {
    let buf: Buffer;
    try {
      buf = await fs.readFile(this.itmStatesPath(modelId, sha256));
    } catch {
      return null;
    }
    if (buf.byteLength !== expectedLength * 4) return null;
    const copy = new Float32Array(expectedLength);
    new Uint8Array(copy.buffer).set(buf);
    return copy;
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

  /** Removes the original and every derived file of an image. */
  async removeAll(sha256: string): Promise<void> {
    await fs.rm(this.originalPath(sha256), { force: true });
    const itmRoot = path.join(this.dataDir, 'itm-states');
    for (const model of await fs.readdir(itmRoot).catch(() => [] as string[])) {
      await fs.rm(path.join(itmRoot, model, sha256.slice(0, 2), `${sha256}.f32`), { force: true });
    }
    const thumbRoot = path.join(this.dataDir, 'thumbs');
    for (const size of await fs.readdir(thumbRoot).catch(() => [] as string[])) {
      await fs.rm(path.join(thumbRoot, size, sha256.slice(0, 2), `${sha256}.webp`), { force: true });
    }
  }

  /**
   * Moves an original out of images/ into `quarantine/<batch>/` (derived files are dropped: they
   * can be recomputed). Start-up recovery never deletes an original it cannot prove orphaned.
   * @returns the new path.
   */
  async quarantineOriginal(sha256: string, batch: string): Promise<string> {
    const target = path.join(this.dataDir, 'quarantine', batch, sha256);
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.rename(this.originalPath(sha256), target);
    await this.removeAll(sha256);
    return target;
  }

  /** sha256s of stored originals, and leftover temp files (a crash mid-write). */
  async listOriginals(): Promise<{ hashes: string[]; tempFiles: string[] }> {
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
