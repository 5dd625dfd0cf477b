import type { ApiKeyInfo, ApiKeyScope } from '../domain/api-key.js';
import type { DbClient } from './database.js';

type Row = { id: string; name: string; scope: string; prefix: string; createdAt: Date; revokedAt: Date | null };

const toInfo = (row: Row): ApiKeyInfo => ({ ...row, scope: row.scope as ApiKeyScope });

/** The ApiKey table; stores hashes only, decides nothing. */
export class PrismaApiKeyRepository {
  constructor(private readonly db: DbClient) {}

  async create(key: { id: string; name: string; scope: ApiKeyScope; hash: string; prefix: string }): Promise<ApiKeyInfo> {
    return toInfo(await this.db.apiKey.create({ data: key }));
  }

  /** The live (not revoked) key with this secret hash. */
  async findActiveByHash(hash: string): Promise<ApiKeyInfo | null> {
    const row = await this.db.apiKey.findFirst({ where: { hash, revokedAt: null } });
    return row ? toInfo(row) : null;
  }

  async list(): Promise<ApiKeyInfo[]> {
    return (await this.db.apiKey.findMany({ orderBy: { createdAt: 'asc' } })).map(toInfo);
  }

  /** Marks the key revoked; false when no live key has this id. */
  async revoke(id: string): Promise<boolean> {
    const { count } = await this.db.apiKey.updateMany({ where: { id, revokedAt: null }, data: { revokedAt: new Date() } });
    return count > 0;
  }
}
