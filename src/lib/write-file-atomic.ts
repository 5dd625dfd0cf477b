import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * tmp + fsync + rename + fsync(dir): after a crash the file is either absent or complete. Small
 * enough to own rather than add a dependency (write-file-atomic does the same, without the
 * directory fsync that makes the rename itself durable).
 */
export async function writeFileAtomic(target: string, data: Uint8Array | Uint8Array[]): Promise<void> {
  const dir = path.dirname(target);
  await fs.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fs.open(tmp, 'w');
  try {
    // Parts are written as they are (writev), not concatenated into a new buffer first.
    const parts = Array.isArray(data) ? data : [data];
    let written = 0;
    const total = parts.reduce((s, p) => s + p.byteLength, 0);
    while (written < total) {
      let skip = written;
      const rest = parts.flatMap((p) => {
        if (skip >= p.byteLength) {
          skip -= p.byteLength;
          return [];
        }
        const view = p.subarray(skip);
        skip = 0;
        return [view];
      });
      written += (await handle.writev(rest)).bytesWritten;
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.rename(tmp, target);
  } catch (error) {
    await fs.rm(tmp, { force: true });
    throw error;
  }
  const dirHandle = await fs.open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}
