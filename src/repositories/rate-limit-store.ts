import pg from 'pg';
import { RateLimiterMemory, RateLimiterPostgres, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { DatabaseConfig } from '../config/load-config.js';
import { stripPrismaParams } from './database.js';

export interface RateLimitStore {
  /** One limiter per name ("address", "key"), `points` per `durationSec`. */
  limiter(name: string, points: number, durationSec: number): Promise<RateLimiterAbstract>;
  close(): Promise<void>;
}

/**
 * Where rate-limit counters live: in this process (the default; each replica counts alone), or in
 * the PostgreSQL database, so that replicas behind one balancer share them. rate-limiter-flexible
 * creates its own table per limiter (rate_limit_<name>) in the configured schema.
 */
export function createRateLimitStore(kind: 'memory' | 'postgres', db: DatabaseConfig): RateLimitStore {
  if (kind === 'memory' || db.provider !== 'postgresql') {
    return {
      limiter: async (name, points, duration) => new RateLimiterMemory({ keyPrefix: name, points, duration }),
      close: async () => {},
    };
  }
  const pool = new pg.Pool({ connectionString: stripPrismaParams(db.url), max: 4 });
  return {
    limiter: (name, points, duration) =>
      new Promise((resolve, reject) => {
        const limiter: RateLimiterPostgres = new RateLimiterPostgres(
          { storeClient: pool, tableName: `rate_limit_${name}`, schemaName: db.schema, keyPrefix: name, points, duration },
          (error?: unknown) => (error ? reject(error as Error) : resolve(limiter)),
        );
      }),
    close: () => pool.end(),
  };
}
