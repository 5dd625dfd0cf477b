import { randomUUID } from 'node:crypto';
import type { Logger } from '../lib/logger.js';
import type { DataDirIdentity } from '../repositories/data-dir-identity.js';

/** Start-up refused because DATA_DIR and the database do not belong together. Nothing was changed. */
export class DataDirMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataDirMismatchError';
  }
}

export interface DataDirBindingDeps {
  settings: { get(key: string): Promise<string | null>; setIfAbsent(key: string, value: string): Promise<string> };
  identity: { read(): Promise<DataDirIdentity | null>; write(identity: DataDirIdentity): Promise<void> };
  /** sha256s of the originals stored in DATA_DIR. */
  listOriginals(): Promise<string[]>;
  /** sha256s of every image row, whatever its status. */
  knownSha256(): Promise<Set<string>>;
  dataDir: string;
  /** The database as configured, without a password (for messages and the identity file). */
  database: string;
  /** CLAIM_DATA_DIR: bind this folder to this database although the checks say they differ. */
  claim: boolean;
  log: Logger;
}

const KEY = 'instanceId';

/**
 * Proves that DATA_DIR and the database belong together before start-up recovery may touch a file.
 * An id is written in both on the first start (the database first, so concurrent starts agree);
 * later starts compare them. Without this, a dropped or mistyped DATABASE_URL opened a new, empty
 * database and recovery took every stored original for a crash leftover.
 * @returns the instance id.
 * @throws DataDirMismatchError when they do not match (unless `claim`); nothing is changed then.
 */
export async function bindDataDir(deps: DataDirBindingDeps): Promise<string> {
  const [inDb, inFolder, originals, known] = await Promise.all([
    deps.settings.get(KEY),
    deps.identity.read(),
    deps.listOriginals(),
    deps.knownSha256(),
  ]);
  const unknown = originals.filter((h) => !known.has(h)).length;
  const here = `DATA_DIR ${deps.dataDir}`;
  const db = `the database ${deps.database}`;
  const fix = 'Nothing was changed. Check DATABASE_URL and DATA_DIR; if this pairing is really meant, start once with CLAIM_DATA_DIR=true (files the database does not know are then moved to DATA_DIR/quarantine, never deleted).';
  const refuse = (why: string): never => {
    throw new DataDirMismatchError(`Refusing to start: ${why} ${fix}`);
  };
  const claimed = async (id: string, reason: string, level: 'info' | 'warn' = 'warn'): Promise<string> => {
    const stored = await deps.settings.setIfAbsent(KEY, id);
    await deps.identity.write({ instanceId: stored, database: deps.database, claimedAt: new Date().toISOString() });
    deps.log[level]({ instanceId: stored, dataDir: deps.dataDir, database: deps.database }, reason);
    return stored;
  };

  if (inDb && inFolder) {
    if (inDb === inFolder.instanceId) return inDb;
    if (deps.claim) return claimed(inDb, 'CLAIM_DATA_DIR: DATA_DIR re-bound to this database');
    return refuse(`${here} belongs to instance ${inFolder.instanceId} (database ${inFolder.database}), but ${db} is instance ${inDb}.`);
  }
  if (!inDb && inFolder) {
    if (deps.claim) return claimed(inFolder.instanceId, 'CLAIM_DATA_DIR: this database adopted DATA_DIR');
    return refuse(`${here} belongs to instance ${inFolder.instanceId} (database ${inFolder.database}), but ${db} has no instance id: it is new, or not the one this folder belongs to.`);
  }
  if (inDb && !inFolder) {
    if (!deps.claim && originals.length > 0) {
      return refuse(`${here} holds ${originals.length} stored originals but no instance file, and ${db} belongs to instance ${inDb}.`);
    }
    if (!deps.claim && known.size > 0) {
      return refuse(`${db} (instance ${inDb}) has ${known.size} images, but ${here} has no instance file and none of their originals.`);
    }
    return claimed(inDb, 'DATA_DIR bound to this database');
  }
  // Neither has an id: a first start, or a folder and database from before instance ids.
  if (!deps.claim && originals.length > 0 && known.size === 0) {
    return refuse(`${here} holds ${originals.length} stored originals, but ${db} is empty.`);
  }
  if (!deps.claim && unknown > Math.max(10, originals.length / 2)) {
    return refuse(`${db} knows only ${originals.length - unknown} of the ${originals.length} originals in ${here}.`);
  }
  if (originals.length > 0) return claimed(randomUUID(), 'instance id recorded for an existing DATA_DIR and database');
  return claimed(randomUUID(), 'new instance: DATA_DIR and the database bound to each other', 'info');
}

/** A database URL without its password, for messages and DATA_DIR/instance.json. */
export function describeDatabase(url: string): string {
  if (!/^postgres(ql)?:/.test(url)) return url;
  const u = new URL(url);
  if (u.password) u.password = '';
  return u.toString();
}
