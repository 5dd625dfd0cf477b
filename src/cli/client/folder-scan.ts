import fs from 'node:fs/promises';
import path from 'node:path';

/** File extensions of the content types the server accepts (serviceInfo.acceptedMimeTypes). */
const EXTENSIONS: Record<string, string[]> = {
  'image/jpeg': ['.jpg', '.jpeg', '.jpe'],
  'image/png': ['.png'],
  'image/webp': ['.webp'],
  'image/gif': ['.gif'],
  'image/tiff': ['.tif', '.tiff'],
  'image/avif': ['.avif'],
  'image/heif': ['.heif', '.heic'],
};

export function extensionsFor(mimeTypes: readonly string[]): Map<string, string> {
  return new Map(mimeTypes.flatMap((type) => (EXTENSIONS[type] ?? []).map((ext) => [ext, type] as [string, string])));
}

/** Image files under `dir`, recursively, in a stable (sorted) order; hidden entries are skipped. */
export async function scanFolder(dir: string, extensions: Map<string, string>): Promise<Array<{ file: string; type: string }>> {
  const found: Array<{ file: string; type: string }> = [];
  const walk = async (current: string): Promise<void> => {
    const entries = (await fs.readdir(current, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) {
        const type = extensions.get(path.extname(entry.name).toLowerCase());
        if (type) found.push({ file: full, type });
      }
    }
  };
  await walk(dir);
  return found;
}
