import { Redis } from 'ioredis';
import pg from 'pg';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { DatabaseConfig } from '../config/load-config.js';
import { stripPrismaParams } from './database.js';

export interface RateLimitStore {
  /** One limiter per name ("address", "key"), `points` per `durationSec`. */
  limiter(name: string, points: number, durationSec: number): Promise<RateLimiterAbstract>;
  close(): Promise<void>;
}

/**
 * Where rate-limit counters live: in this process (the default; each replica counts alone), in
 * the PostgreSQL database, or in Redis, so that replicas behind one balancer share them.
 * rate-limiter-flexible creates its own table per limiter (rate_limit_<name>) in the configured
 * schema; in Redis its keys are `blip_rl_<name>:<client>`, expiring with their window.
 * loadConfig refuses postgres without a PostgreSQL DATABASE_URL and redis without REDIS_URL.
 */
export function createRateLimitStore(kind: 'memory' | 'postgres' | 'redis', db: DatabaseConfig, redisUrl?: string): RateLimitStore {
  if (kind === 'redis' && redisUrl) {
    // No offline queue: a request must not wait for a Redis that is down; the limiter then fails
    // and src/http/rate-limit.ts lets the request through and logs.
    const client = new Redis(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true });
    const ready = client.connect();
    return {
      limiter: async (name, points, duration) => {
        await ready;
        return new RateLimiterRedis({ storeClient: client, keyPrefix: `blip_rl_${name}`, points, duration });
      },
      close: async () => {
        await client.quit().catch(() => undefined);
      },
    };
  }
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
