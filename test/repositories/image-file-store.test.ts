import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ImageFileStore } from '../../src/repositories/image-file-store.js';

const SHA = 'ab'.padEnd(64, 'c');

describe('ImageFileStore: ITM states', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-files-'));
  const store = new ImageFileStore(dir);
  const dims = { tokens: 3, hidden: 4 };
  const states = { codes: Int8Array.from([1, -2, 3, -4, 5, -6, 7, -8, 127, -127, 0, 9]), scales: Float32Array.from([0.5, 0.25, 1e-3]) };

  it('round-trips codes and scales, read into shared memory', async () => {
    await store.writeItmStates('m@1', SHA, states);
    expect(fs.statSync(store.itmStatesPath('m@1', SHA)).size).toBe(3 * 4 + 12);
    const back = await store.readItmStates('m@1', SHA, dims);
    expect(back).not.toBeNull();
    expect(Array.from(back!.codes)).toEqual(Array.from(states.codes));
    expect(Array.from(back!.scales)).toEqual(Array.from(states.scales));
    expect(back!.codes.buffer).toBeInstanceOf(SharedArrayBuffer);
  });

  it('EXPECTED FAILURE - a file of another length (torn, or another model size) reads as missing', async () => {
    expect(await store.readItmStates('m@1', SHA, { tokens: 3, hidden: 5 })).toBeNull();
    expect(await store.readItmStates('m@1', 'ff'.padEnd(64, '0'), dims)).toBeNull();
  });

  it('prunes the states of models no longer served and keeps the current one', async () => {
    await store.writeItmStates('old@0', SHA, states);
    expect(await store.pruneItmStates('m@1')).toEqual(['old_0']);
    expect(await store.readItmStates('m@1', SHA, dims)).not.toBeNull();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
