import path from 'node:path';
import { z } from 'zod';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const num = (min: number, max: number) => z.coerce.number().min(min).max(max);

/** Every variable the service reads, with its default. Documented in the README table. */
const envSchema = z.object({
  PORT: int(0, 65535).default(4000),
  // all: one process does everything; api and worker split it over processes meeting in PostgreSQL
  // (docs/scaling.md).
  ROLE: z.enum(['all', 'api', 'worker']).default('all'),
  // Where this process keeps its HNSW snapshot; each API replica needs its own (default DATA_DIR/index).
  INDEX_DIR: z.string().min(1).optional(),
  // PostgreSQL: how often an API replica reads the index change feed without a NOTIFY (a safety net).
  INDEX_FEED_POLL_MS: int(50, 600_000).default(1000),
  // PostgreSQL: change-feed entries older than this are deleted (a replica whose snapshot is older scans once).
  INDEX_FEED_RETENTION_HOURS: int(1, 87_600).default(168),
  // Roles: embeddings of a model no replica or worker has served for this long are removed.
  MODEL_RETIRE_AFTER_MS: int(1000, 86_400_000).default(120_000),
  // Where originals live: DATA_DIR (local), the database (postgres) or an S3-compatible bucket.
  BLOB_STORE: z.enum(['local', 'postgres', 's3']).default('local'),
  S3_BUCKET: z.string().min(1).optional(),
  S3_PREFIX: z.string().default(''),
  S3_REGION: z.string().min(1).default('us-east-1'),
  S3_ENDPOINT: z.string().url().optional(),
  // Path-style URLs (http://host/bucket/key): what most S3-compatible servers want.
  S3_FORCE_PATH_STYLE: bool.optional(),
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  // Loopback unless told otherwise: a fresh install is reachable from this machine only.
  HOST: z.string().min(1).default('127.0.0.1'),
  // Who needs an API key (docs/security.md): required: everyone; local: all but loopback clients
  // addressing the server by a local name; off: nobody.
  AUTH: z.enum(['required', 'local', 'off']).default('local'),
  ALLOW_INSECURE: bool.default(false),
  // Host names (comma-separated, without port) accepted besides localhost, 127.0.0.1 and [::1].
  ALLOWED_HOSTS: z.string().optional(),
  // express's "trust proxy": which peers' X-Forwarded-For to believe (docs/security.md).
  TRUST_PROXY: z.string().min(1).optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: z
    .string()
    .regex(/^(file:|postgres:\/\/|postgresql:\/\/)/, 'must start with file:, postgres:// or postgresql://')
    .optional(),
  CLAIM_DATA_DIR: bool.default(false),
  MODEL_DIR: z.string().min(1).default('models/blip-scenes'),
  // A model folder that answers askImage by default (a BLIP-2 folder, docs/blip2.md); unset: BLIP.
  VQA_MODEL_DIR: z.string().min(1).optional(),
  SEED_SAMPLES: bool.default(true),
  SAMPLES_DIR: z.string().min(1).default('samples'),
  WEB_DIR: z.string().min(1).default('web/dist'),
  NODE_ENV: z.string().optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  // Origins (comma-separated) other pages may call the API from; unset: none (same origin only).
  CORS_ORIGIN: z.string().optional(),
  PUBLIC_URL: z
    .string()
    .url()
    .regex(/^https?:\/\//, 'must be an http:// or https:// URL')
    .refine((u) => !/[?#]/.test(u), 'must not have a query or a fragment')
    .optional(),
  MAX_UPLOAD_BYTES: int(1024, 1024 ** 3).default(20 * 1024 * 1024),
  // 25 MP: a 24 MP camera's photos fit. Each decoded pixel costs 3+ bytes before the shrink, and
  // a 2 KB WebP can claim 50 MP (4.4 s, 150 MB); docs/configuration.md.
  MAX_IMAGE_PIXELS: int(1, 1e9).default(25_000_000),
  MAX_TEXT_CHARS: int(1, 100_000).default(500),
  MAX_PAGE_SIZE: int(1, 1000).default(100),
  // Unset: the model's manifest chooses (models/*/manifest.json "search"), else 128.
  SEARCH_CANDIDATES: int(1, 10_000).optional(),
  MAX_SEARCH_CANDIDATES: int(1, 10_000).default(500),
  SEARCH_EXACT_MAX_ROWS: int(0, 10_000_000).default(20_000),
  ITM_BATCH_SIZE: int(1, 1024).default(16),
  // Inference: one worker using every core serves a lone request fastest and holds one copy of
  // each model's weights (docs/performance.md).
  INFERENCE_WORKERS: int(1, 64).default(1),
  INFERENCE_THREADS: int(1, 256).optional(),
  ITM_CACHE_MB: int(0, 1_000_000).default(256),
  MIN_ALT_TEXT_MATCH: num(0, 1).default(0.5),
  MAX_QUERY_DEPTH: int(1, 100).default(8),
  MAX_QUERY_COMPLEXITY: int(10, 1_000_000).default(2000),
  HNSW_M: int(2, 128).default(16),
  HNSW_EF_CONSTRUCTION: int(10, 2000).default(200),
  HNSW_EF_SEARCH: int(10, 5000).default(100),
  HNSW_INITIAL_CAPACITY: int(16, 100_000_000).default(1024),
  INDEX_SAVE_DELAY_MS: int(0, 3_600_000).default(2000),
  INDEX_COMPACT_RATIO: num(0.01, 1).default(0.2),
  THUMBNAIL_SIZE: int(16, 2048).default(256),
  JOB_CONCURRENCY: int(1, 64).default(1),
  JOB_LEASE_MS: int(1000, 3_600_000).default(60_000),
  JOB_POLL_MS: int(50, 600_000).default(2000),
  JOB_MAX_ATTEMPTS: int(1, 100).default(3),
  MAX_FILES_PER_REQUEST: int(1, 1000).default(32),
  // Model work one GraphQL request may ask for, counted before it runs (QUERY_TOO_EXPENSIVE).
  MAX_REQUEST_ITM_CANDIDATES: int(1, 1_000_000).default(1000),
  MAX_REQUEST_GENERATIONS: int(1, 1000).default(4),
  MAX_REQUEST_DECODES: int(1, 1000).default(4),
  // Requests per minute: per API key, and per client address for requests without one.
  RATE_LIMIT_PER_MINUTE: int(1, 10_000_000).default(600),
  RATE_LIMIT_KEY_PER_MINUTE: int(1, 10_000_000).default(1200),
  RATE_LIMIT_STORE: z.enum(['memory', 'postgres', 'redis']).default('memory'),
  // RATE_LIMIT_STORE=redis: where the counters live (redis://[user:password@]host:port[/db]).
  REDIS_URL: z.string().optional(),
  // Overload: ingests and image decodes running at once, and how many may wait for a slot.
  MAX_CONCURRENT_INGESTS: int(1, 1024).default(4),
  MAX_CONCURRENT_DECODES: int(1, 1024).default(4),
  MAX_QUEUED_WORK: int(0, 100_000).default(16),
  // /healthz says degraded once model work has waited this long.
  HEALTH_DEGRADED_MS: int(100, 3_600_000).default(10_000),
  // Idle sockets cannot hold file descriptors for long (docs/security.md).
  MAX_CONNECTIONS: int(1, 1_000_000).default(1024),
  HEADERS_TIMEOUT_MS: int(100, 600_000).default(10_000),
  REQUEST_TIMEOUT_MS: int(100, 3_600_000).default(120_000),
  KEEP_ALIVE_TIMEOUT_MS: int(100, 600_000).default(5_000),
});

export type DatabaseConfig =
  | { provider: 'sqlite'; url: string; filePath: string }
  | { provider: 'postgresql'; url: string; schema: string | undefined };

export type Role = 'all' | 'api' | 'worker';

export type BlobStoreConfig =
  | { kind: 'local' }
  | { kind: 'postgres' }
  | {
      kind: 's3';
      bucket: string;
      prefix: string;
      region: string;
      endpoint: string | undefined;
      forcePathStyle: boolean;
      credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
    };

export interface AppConfig {
  /** ROLE: which part of the service this process runs (src/app.ts). */
  role: Role;
  /** MODEL_RETIRE_AFTER_MS (src/services/model-retirement.service.ts). */
  modelRetireAfterMs: number;
  /** BLOB_STORE and S3_*: where originals live (src/repositories/blob-store.ts). */
  blobs: BlobStoreConfig;
  http: {
    port: number;
    host: string;
    /** Empty: no other origin; ['*']: any (AUTH=required only). */
    corsOrigins: string[];
    /** Host header values (lower-case, no port) the server answers to: local names plus ALLOWED_HOSTS. */
    allowedHosts: string[];
    /** express "trust proxy" value: false, a hop count, or addresses/subnets. */
    trustProxy: boolean | number | string;
    webDir: string;
    /** Base of absolute image URLs (no trailing slash); '' keeps them relative. */
    publicUrl: string;
  };
  auth: { mode: 'required' | 'local' | 'off' };
  dataDir: string;
  /** Bind DATA_DIR to this database although their instance ids differ (src/services/data-dir-binding.service.ts). */
  claimDataDir: boolean;
  db: DatabaseConfig;
  models: {
    modelDir: string;
    /** VQA_MODEL_DIR: a BLIP-2 folder that answers askImage by default; null: BLIP answers. */
    vqaModelDir: string | null;
    maxImagePixels: number;
    /** Inference worker threads, each with its own copy of the sessions. */
    workers: number;
    /** onnxruntime intra-op threads per worker; undefined: cores / workers. */
    threads: number | undefined;
    /** ITM candidates per graph run inside a worker. */
    itmBatchSize: number;
  };
  seed: { enabled: boolean; samplesDir: string };
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  limits: {
    maxUploadBytes: number;
    maxTextChars: number;
    maxPageSize: number;
    maxQueryDepth: number;
    maxQueryComplexity: number;
  };
  search: {
    /** SEARCH_CANDIDATES; undefined lets the model's manifest choose. */
    defaultCandidates: number | undefined;
    maxCandidates: number;
    /** A filter leaving at most this many images ranks them by an exact scan (src/services/candidate-sources.ts). */
    exactMaxRows: number;
    itmCacheBytes: number;
    minAltTextMatch: number;
  };
  index: {
    m: number;
    efConstruction: number;
    efSearch: number;
    initialCapacity: number;
    saveDelayMs: number;
    compactRatio: number;
    /** The snapshot's folder (INDEX_DIR, default DATA_DIR/index). */
    dir: string;
    /** INDEX_FEED_POLL_MS: the change feed's catch-up poll (PostgreSQL). */
    feedPollMs: number;
    /** INDEX_FEED_RETENTION_HOURS in ms: how long change-feed entries are kept (PostgreSQL). */
    feedRetentionMs: number;
  };
  thumbnailSize: number;
  /** Background jobs (src/services/job-queue.service.ts). */
  jobs: { concurrency: number; leaseMs: number; pollMs: number; maxAttempts: number };
  /** Files one multipart request (ingestImages) may carry. */
  maxFilesPerRequest: number;
  /** NODE_ENV=production: GraphQL errors give no field suggestions. */
  production: boolean;
  /** Bounded work (docs/security.md, "Bounded work"). */
  work: {
    maxItmCandidates: number;
    maxGenerations: number;
    maxDecodes: number;
    maxConcurrentIngests: number;
    maxConcurrentDecodes: number;
    maxQueued: number;
    degradedAfterMs: number;
  };
  rateLimit: { perMinute: number; keyPerMinute: number; store: 'memory' | 'postgres' | 'redis'; redisUrl?: string | undefined };
  server: { maxConnections: number; headersTimeoutMs: number; requestTimeoutMs: number; keepAliveTimeoutMs: number };
}

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`Invalid configuration:\n${issues.map((i) => `  - ${i}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    Object.values(value).forEach(deepFreeze);
    Object.freeze(value);
  }
  return value;
}

function databaseConfig(url: string | undefined, dataDir: string): DatabaseConfig {
  if (url?.startsWith('postgres')) {
    return { provider: 'postgresql', url, schema: new URL(url).searchParams.get('schema') ?? undefined };
  }
  const filePath = url ? path.resolve(url.slice('file:'.length)) : path.join(dataDir, 'blip-search.db');
  return { provider: 'sqlite', url: `file:${filePath}`, filePath };
}

/** The names a loopback client uses for this machine; AUTH=local lets them through without a key. */
export const LOCAL_HOST_NAMES = ['localhost', '127.0.0.1', '[::1]'];

const list = (value: string | undefined) => (value ?? '').split(',').map((v) => v.trim()).filter(Boolean);

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

function trustProxy(value: string | undefined): boolean | number | string {
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  return /^\d+$/.test(value) ? Number(value) : value;
}

/**
 * Reads the environment once, validates all of it and lists every problem at once (immich's
 * getEnv). Empty strings count as unset, as in most .env tooling. The result is deeply frozen and
 * passed down by value; nothing else reads process.env.
 */
export function loadConfig(env: NodeJS.ProcessEnv): Readonly<AppConfig> {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message} (got ${JSON.stringify(present[String(i.path[0])] ?? null)})`),
    );
  }
  const e = parsed.data;
  const issues: string[] = [];
  if (e.SEARCH_CANDIDATES !== undefined && e.SEARCH_CANDIDATES > e.MAX_SEARCH_CANDIDATES) {
    issues.push(`SEARCH_CANDIDATES: must not exceed MAX_SEARCH_CANDIDATES (${e.MAX_SEARCH_CANDIDATES})`);
  }
  const corsOrigins = list(e.CORS_ORIGIN);
  if (corsOrigins.includes('*') && e.AUTH !== 'required') {
    issues.push(`CORS_ORIGIN: '*' lets any web page use the API with its visitors' access; it needs AUTH=required (got AUTH=${e.AUTH})`);
  }
  for (const origin of corsOrigins.filter((o) => o !== '*')) {
    if (!/^https?:\/\/[^/]+$/.test(origin)) issues.push(`CORS_ORIGIN: ${JSON.stringify(origin)} is not an origin (scheme://host[:port], no path)`);
  }
  if (e.RATE_LIMIT_STORE === 'postgres' && !e.DATABASE_URL?.startsWith('postgres')) {
    issues.push('RATE_LIMIT_STORE: postgres needs DATABASE_URL to be a PostgreSQL URL');
  }
  if (e.RATE_LIMIT_STORE === 'redis' && !/^rediss?:\/\//.test(e.REDIS_URL ?? '')) {
    issues.push('RATE_LIMIT_STORE: redis needs REDIS_URL (redis://host:port)');
  }
  if (e.AUTH === 'off' && !isLoopbackHost(e.HOST) && !e.ALLOW_INSECURE) {
    issues.push(`AUTH=off with HOST=${e.HOST} lets anyone who reaches the port delete the library; set AUTH=local or required, or ALLOW_INSECURE=true`);
  }
  const dataDir = path.resolve(e.DATA_DIR);
  const db = databaseConfig(e.DATABASE_URL, dataDir);
  if (e.ROLE !== 'all' && db.provider !== 'postgresql') {
    issues.push(`ROLE: ${e.ROLE} needs PostgreSQL (DATABASE_URL=postgres://...): API replicas and workers meet in its job queue and index feed; with SQLite use ROLE=all`);
  }
  if (e.BLOB_STORE === 'postgres' && db.provider !== 'postgresql') issues.push('BLOB_STORE: postgres keeps originals in the database, so DATABASE_URL must be postgres://...');
  if (e.BLOB_STORE === 's3' && !e.S3_BUCKET) issues.push('S3_BUCKET: required with BLOB_STORE=s3');
  if ((e.S3_ACCESS_KEY_ID === undefined) !== (e.S3_SECRET_ACCESS_KEY === undefined)) issues.push('S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY: set both or neither');
  if (issues.length) throw new ConfigError(issues);
  return deepFreeze({
    role: e.ROLE,
    modelRetireAfterMs: e.MODEL_RETIRE_AFTER_MS,
    blobs:
      e.BLOB_STORE === 's3'
        ? {
            kind: 's3',
            bucket: e.S3_BUCKET!,
            prefix: e.S3_PREFIX,
            region: e.S3_REGION,
            endpoint: e.S3_ENDPOINT,
            forcePathStyle: e.S3_FORCE_PATH_STYLE ?? e.S3_ENDPOINT !== undefined,
            credentials: e.S3_ACCESS_KEY_ID && e.S3_SECRET_ACCESS_KEY ? { accessKeyId: e.S3_ACCESS_KEY_ID, secretAccessKey: e.S3_SECRET_ACCESS_KEY } : undefined,
          }
        : { kind: e.BLOB_STORE },
    http: {
      port: e.PORT,
      host: e.HOST,
      corsOrigins,
      allowedHosts: [...new Set([...LOCAL_HOST_NAMES, ...list(e.ALLOWED_HOSTS).map((h) => h.toLowerCase())])],
      trustProxy: trustProxy(e.TRUST_PROXY),
      webDir: path.resolve(e.WEB_DIR), publicUrl: (e.PUBLIC_URL ?? '').replace(/\/+$/, '') },
    auth: { mode: e.AUTH },
    dataDir,
    claimDataDir: e.CLAIM_DATA_DIR,
    db,
    models: {
      modelDir: path.resolve(e.MODEL_DIR),
      vqaModelDir: e.VQA_MODEL_DIR === undefined ? null : path.resolve(e.VQA_MODEL_DIR),
      maxImagePixels: e.MAX_IMAGE_PIXELS,
      workers: e.INFERENCE_WORKERS,
      threads: e.INFERENCE_THREADS,
      itmBatchSize: e.ITM_BATCH_SIZE,
    },
    seed: { enabled: e.SEED_SAMPLES, samplesDir: path.resolve(e.SAMPLES_DIR) },
    logLevel: e.LOG_LEVEL,
    limits: {
      maxUploadBytes: e.MAX_UPLOAD_BYTES,
      maxTextChars: e.MAX_TEXT_CHARS,
      maxPageSize: e.MAX_PAGE_SIZE,
      maxQueryDepth: e.MAX_QUERY_DEPTH,
      maxQueryComplexity: e.MAX_QUERY_COMPLEXITY,
    },
    search: {
      defaultCandidates: e.SEARCH_CANDIDATES,
      maxCandidates: e.MAX_SEARCH_CANDIDATES,
      exactMaxRows: e.SEARCH_EXACT_MAX_ROWS,
      itmCacheBytes: e.ITM_CACHE_MB * 1024 * 1024,
      minAltTextMatch: e.MIN_ALT_TEXT_MATCH,
    },
    index: {
      m: e.HNSW_M,
      efConstruction: e.HNSW_EF_CONSTRUCTION,
      efSearch: e.HNSW_EF_SEARCH,
      initialCapacity: e.HNSW_INITIAL_CAPACITY,
      saveDelayMs: e.INDEX_SAVE_DELAY_MS,
      compactRatio: e.INDEX_COMPACT_RATIO,
      dir: e.INDEX_DIR === undefined ? path.join(dataDir, 'index') : path.resolve(e.INDEX_DIR),
      feedPollMs: e.INDEX_FEED_POLL_MS,
      feedRetentionMs: e.INDEX_FEED_RETENTION_HOURS * 3_600_000,
    },
    thumbnailSize: e.THUMBNAIL_SIZE,
    jobs: { concurrency: e.JOB_CONCURRENCY, leaseMs: e.JOB_LEASE_MS, pollMs: e.JOB_POLL_MS, maxAttempts: e.JOB_MAX_ATTEMPTS },
    maxFilesPerRequest: e.MAX_FILES_PER_REQUEST,
    production: e.NODE_ENV === 'production',
    work: {
      maxItmCandidates: e.MAX_REQUEST_ITM_CANDIDATES,
      maxGenerations: e.MAX_REQUEST_GENERATIONS,
      maxDecodes: e.MAX_REQUEST_DECODES,
      maxConcurrentIngests: e.MAX_CONCURRENT_INGESTS,
      maxConcurrentDecodes: e.MAX_CONCURRENT_DECODES,
      maxQueued: e.MAX_QUEUED_WORK,
      degradedAfterMs: e.HEALTH_DEGRADED_MS,
    },
    rateLimit: { perMinute: e.RATE_LIMIT_PER_MINUTE, keyPerMinute: e.RATE_LIMIT_KEY_PER_MINUTE, store: e.RATE_LIMIT_STORE, redisUrl: e.REDIS_URL },
    server: {
      maxConnections: e.MAX_CONNECTIONS,
      headersTimeoutMs: e.HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: e.KEEP_ALIVE_TIMEOUT_MS,
    },
  });
}
