import type { Readable } from 'node:stream';
import { InvalidInputError, PayloadTooLargeError } from '../domain/errors.js';

/** Where ingest bytes come from; transport layers build one of these. */
export type ImageSource = { kind: 'stream'; open: () => Promise<Readable> } | { kind: 'base64'; data: string };

/** Reads a source fully, refusing more than maxBytes before it is all in memory. */
export async function readImageSource(source: ImageSource, maxBytes: number): Promise<Uint8Array> {
  const bytes = source.kind === 'base64' ? decodeBase64(source.data, maxBytes) : await readStream(await source.open(), maxBytes);
  if (bytes.byteLength === 0) throw new InvalidInputError('The image is empty', { argument: 'input' });
  return bytes;
}

function decodeBase64(data: string, maxBytes: number): Uint8Array {
  const body = data.replace(/^data:[^,]*;base64,/, '').replace(/\s+/g, '');
  if (Math.floor((body.length * 3) / 4) > maxBytes + 3) {
    throw new PayloadTooLargeError(`The image is larger than the limit of ${maxBytes} bytes`, { limit: maxBytes, unit: 'bytes' });
  }
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(body) || body.length % 4 === 1) {
    throw new InvalidInputError('input.base64 is not valid base64', { argument: 'input.base64' });
  }
  const bytes = Buffer.from(body, body.includes('-') || body.includes('_') ? 'base64url' : 'base64');
  if (bytes.byteLength > maxBytes) {
    throw new PayloadTooLargeError(`The image is larger than the limit of ${maxBytes} bytes`, { limit: maxBytes, unit: 'bytes' });
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

async function readStream(stream: Readable, maxBytes: number): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of stream) {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      total += buf.byteLength;
      if (total > maxBytes) {
        stream.destroy();
        throw new PayloadTooLargeError(`The upload is larger than the limit of ${maxBytes} bytes`, { limit: maxBytes, unit: 'bytes' });
      }
      chunks.push(buf);
    }
  } catch (error) {
    // graphql-upload aborts the stream itself when its maxFileSize is passed.
    if ((error as { status?: number }).status === 413) {
      throw new PayloadTooLargeError(`The upload is larger than the limit of ${maxBytes} bytes`, { limit: maxBytes, unit: 'bytes' });
    }
    throw error;
  }
  const all = Buffer.concat(chunks);
  return new Uint8Array(all.buffer, all.byteOffset, all.byteLength);
}
