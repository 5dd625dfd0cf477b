import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { InvalidInputError, PayloadTooLargeError } from '../../src/domain/errors.js';
import { readImageSource } from '../../src/services/image-source.js';

const failing = (reason: unknown) => ({
  kind: 'stream' as const,
  open: async () =>
    Readable.from(
      (async function* () {
        yield Buffer.from('abc');
        throw reason;
      })(),
    ),
});

describe('readImageSource', () => {
  it('reads a stream whole, and refuses one past the limit before it is all in memory', async () => {
    expect(await readImageSource({ kind: 'stream', open: async () => Readable.from([Buffer.from('ab'), Buffer.from('cd')]) }, 10)).toEqual(Uint8Array.from(Buffer.from('abcd')));
    await expect(readImageSource({ kind: 'stream', open: async () => Readable.from([Buffer.alloc(6), Buffer.alloc(6)]) }, 10)).rejects.toBeInstanceOf(PayloadTooLargeError);
    await expect(readImageSource({ kind: 'base64', data: '' }, 10)).rejects.toBeInstanceOf(InvalidInputError);
  });

  it("turns graphql-upload's own size refusal (status 413) into PAYLOAD_TOO_LARGE", async () => {
    await expect(readImageSource(failing(Object.assign(new Error('too big'), { status: 413 })), 10)).rejects.toBeInstanceOf(PayloadTooLargeError);
  });

  it('passes other stream failures through as they are', async () => {
    const other = new Error('socket hang up');
    await expect(readImageSource(failing(other), 10)).rejects.toBe(other);
    await expect(readImageSource(failing('a string'), 10)).rejects.toBe('a string');
  });
});
