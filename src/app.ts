import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AppConfig } from './config/load-config.js';
import { createApolloServer, createGraphqlSchema } from './graphql/create-apollo-server.js';
import { attachSubscriptionServer } from './graphql/subscription-server.js';
import type { GraphQLServices } from './graphql/context.js';
import { principalOfUpgrade } from './http/authenticate.js';
import { createHttpApp } from './http/create-http-app.js';
import { createWorkerHttpApp } from './http/worker-http-app.js';
import type { AuthSettings } from './http/authenticate.js';
import type { Logger } from './lib/logger.js';
import { Metrics } from './lib/metrics.js';
import { resolverMetricsPlugin } from './graphql/metrics-plugin.js';
import type { BlipEngine } from './ml/blip-engine.js';
import { blipAnswerer, type VisualAnswerer } from './ml/visual-answerer.js';
import { AnswererRegistry } from './services/answerer-registry.js';
import { createBlobStore } from './repositories/create-blob-store.js';
import { createPrismaClient } from './repositories/database.js';
import { ACCEPTED_MIME_TYPES } from './ml/preprocess/image-decoder.js';
import { ImageFileStore } from './repositories/image-file-store.js';
import { ImageQueryRepository } from './repositories/image-query.repository.js';
import { PrismaImageRepository } from './repositories/image.repository.js';
import { IndexFeedRepository } from './repositories/index-feed.repository.js';
import { ProcessRegistryRepository } from './repositories/process-registry.repository.js';
import { JobRepository } from './repositories/job.repository.js';
import { PrismaApiKeyRepository } from './repositories/api-key.repository.js';
import { blobStoreIdentity, readDataDirIdentity, writeDataDirIdentity } from './repositories/data-dir-identity.js';
import { runMigrations } from './repositories/run-migrations.js';
import { PrismaSettingRepository } from './repositories/setting.repository.js';
import { ApiKeyService } from './services/api-key.service.js';
import { CaptureInfoBackfill } from './services/capture-info-backfill.service.js';
import { bindDataDir, describeDatabase } from './services/data-dir-binding.service.js';
import { ImageIndexService } from './services/image-index.service.js';
import { IndexFeedFollower } from './services/index-feed-follower.js';
import { IndexFeedRetention } from './services/index-feed-retention.js';
import { ModelRetirement } from './services/model-retirement.service.js';
import { ImageService } from './services/image.service.js';
import { IngestService } from './services/ingest.service.js';
import { ItmStateCache } from './services/itm-state-cache.js';
import { listJobs } from './services/job-list.js';
import { JobQueueService } from './services/job-queue.service.js';
import { seedSamples } from './services/sample-seeder.service.js';
import { SearchService } from './services/search.service.js';
import { StorageRecoveryService } from './services/storage-recovery.service.js';
import { RequestScopedEngine, requestScopedAnswerer } from './services/request-scope.js';
import { DomainErrorEngine, domainErrorAnswerer } from './services/engine-errors.js';
import { hnswIndexStore } from './services/ports.js';
import { createRateLimitStore } from './repositories/rate-limit-store.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface Application {
  readonly server: http.Server;
  readonly port: number;
  readonly ingest: IngestService;
  readonly jobs: JobQueueService;
  readonly metrics: Metrics;
  /** API keys in this application's database (what `npm run cli -- keys` manages). */
  readonly keys: ApiKeyService;
  /** Stops accepting requests, drains, saves the index, closes the DB and the engine. */
  stop(): Promise<void>;
}

/**
 * Wires config + an engine into a running server. The engine is a parameter so that tests (and a
 * model-less development setup) can pass a fake; src/main.ts passes createBlipEngine's.
 */
export async function startApplication(
  config: Readonly<AppConfig>,
  engineSource: BlipEngine | ((metrics: Metrics) => Promise<BlipEngine>),
  log: Logger,
  hooks: {
    onListening?: (port: number) => void;
    /**
     * More models askImage may use (BLIP-2 folders), loaded after BLIP's engine; with
     * `defaultAnswerer` the first of them answers when a question names no model.
     */
    answerers?: () => Promise<VisualAnswerer[]>;
    defaultAnswerer?: boolean;
  } = {},
): Promise<Application> {
  fs.mkdirSync(config.dataDir, { recursive: true });
  const metrics = new Metrics();
  const applied = await runMigrations(config.db, path.join(ROOT, 'prisma'));
  if (applied.length) log.info({ applied }, 'database migrations applied');
  const db = createPrismaClient(config.db);
  const repo = new PrismaImageRepository(db);
  const queries = new ImageQueryRepository(db, config.db.provider);
  const blobs = createBlobStore(config.blobs, db);
  const files = new ImageFileStore(config.dataDir, blobs);
  try {
    // Before anything may touch a file: recovery would take a wrong database's missing rows for
    // crash leftovers.
    await bindDataDir({
      settings: new PrismaSettingRepository(db),
      identity: blobs ? blobStoreIdentity(blobs) : { read: () => readDataDirIdentity(config.dataDir), write: (id) => writeDataDirIdentity(config.dataDir, id) },
      listOriginals: async () => (await files.listOriginals()).hashes,
      knownSha256: () => repo.allSha256(),
      dataDir: config.dataDir,
      database: describeDatabase(config.db.url),
      claim: config.claimDataDir,
      log: log.child({ module: 'data-dir' }),
    });
  } catch (error) {
    await db.$disconnect();
    throw error;
  }

  // Listen first, answering 503 (and /healthz "starting") while the model loads and the index is
  // recovered, so orchestrators can tell "starting" from "down".
  let handler: http.RequestListener = (req, res) => {
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '5' });
    res.end(JSON.stringify(req.url === '/healthz' ? { status: 'starting' } : { errors: [{ message: 'Starting', extensions: { code: 'SERVICE_UNAVAILABLE' } }] }));
  };
  // Bounded sockets (docs/security.md): slow or idle clients cannot hold file descriptors for long.
  // connectionsCheckingInterval: how often Node enforces headers/request timeouts (default 30 s).
  const server = http.createServer(
    {
      headersTimeout: config.server.headersTimeoutMs,
      requestTimeout: config.server.requestTimeoutMs,
      keepAliveTimeout: config.server.keepAliveTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, config.server.headersTimeoutMs),
    },
    (req, res) => handler(req, res),
  );
  server.maxConnections = config.server.maxConnections;
  // Sockets with no traffic at all (not even a request line) close after this.
  server.setTimeout(Math.max(config.server.headersTimeoutMs, config.server.keepAliveTimeoutMs) * 2);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.http.port, config.http.host, resolve);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.http.port;
  log.info({ port, role: config.role, blobStore: config.blobs.kind, dataDir: config.dataDir, db: config.db.provider }, 'listening; loading the model');
  hooks.onListening?.(port);
  let engine: RequestScopedEngine;
  try {
    engine = new RequestScopedEngine(typeof engineSource === 'function' ? await engineSource(metrics) : engineSource, {
      maxConcurrentDecodes: config.work.maxConcurrentDecodes,
    });
  } catch (error) {
    server.close();
    await db.$disconnect();
    throw error;
  }

  // What services get: every engine failure already a domain error (outside the request scope, so
  // a cancelled request's AbortError is translated too).
  const model = new DomainErrorEngine(engine);
  // ROLE=worker keeps no index: API replicas follow the database (the feed on PostgreSQL).
  const role = config.role;
  const index = new ImageIndexService(
    repo,
    hnswIndexStore(engine.modelId, engine.embedDim, config.index),
    engine.modelId,
    engine.embedDim,
    config.index,
    log.child({ module: 'index' }),
  );
  const indexSink = role === 'worker' ? { add: () => undefined, open: async () => undefined } : index;
  const itmStates = new ItmStateCache(model, files, config.search.itmCacheBytes);
  const limits = {
    ...config.limits,
    maxMetadataBytes: 16 * 1024,
    maxConcurrentIngests: config.work.maxConcurrentIngests,
    maxQueuedIngests: config.work.maxQueued,
  };
  const jobs = new JobQueueService(new JobRepository(db, config.db.provider), config.jobs, log.child({ module: 'jobs' }), engine.modelId);
  const ingest = new IngestService(model, repo, files, indexSink, itmStates, limits, log.child({ module: 'ingest' }), jobs, {
    ingested: (mode) => metrics.imagesIngested.inc({ mode }),
    failed: (mode) => metrics.ingestFailures.inc({ mode }),
  }, role !== 'api');
  metrics.observeJobs = () => jobs.countByState();
  metrics.observeActiveJobs = () => jobs.active;
  metrics.observeIndexSize = () => index.size;
  metrics.observeInferenceQueue = () => engine.queueDepth?.() ?? { interactive: 0, background: 0 };
  const recovery = new StorageRecoveryService(model, repo, files, indexSink, itmStates, log.child({ module: 'recovery' }));
  // PostgreSQL: who serves which model (ROLE=all too, so that a replica of another model never
  // takes its model for abandoned), and, in API replicas, the removal of models nobody serves.
  const retirement = config.db.provider !== 'postgresql' ? null : new ModelRetirement(new ProcessRegistryRepository(db), { id: jobs.workerId, role, modelId: engine.modelId }, { staleMs: config.modelRetireAfterMs, retire: role === 'api' }, log.child({ module: 'models' }));
  if (role === 'worker') {
    await retirement?.start();
    const keys = new ApiKeyService(new PrismaApiKeyRepository(db));
    const auth = { mode: config.auth.mode, localHosts: new Set(config.http.allowedHosts) };
    return startWorker({ server, port, ingest, jobs, metrics, keys, auth, recovery, log, close: async () => {
      await retirement?.stop();
      blobs?.close?.();
      await db.$disconnect();
      await engine.close();
    }, setHandler: (h) => (handler = h) });
  }
  const search = new SearchService(model, repo, queries, index, itmStates, { ...limits, ...config.search });
  let extra: VisualAnswerer[];
  try {
    extra = (await hooks.answerers?.()) ?? [];
  } catch (error) {
    server.close();
    await db.$disconnect();
    await engine.close();
    throw error;
  }
  const blip = blipAnswerer(model);
  // Outside the request scope, as for the engine: a cancelled question is translated too.
  const others = extra.map((answerer) => domainErrorAnswerer(requestScopedAnswerer(answerer)));
  const answerers = new AnswererRegistry([blip, ...others], hooks.defaultAnswerer && others[0] ? others[0] : blip);
  const images = new ImageService(model, repo, queries, files, index, itmStates, { ...limits, thumbnailSize: config.thumbnailSize }, log.child({ module: 'images' }), answerers);
  const captureInfo = new CaptureInfoBackfill(model, repo, new PrismaSettingRepository(db), files, log.child({ module: 'capture-info' }));

  // PostgreSQL: every process with an index follows the change feed, so that what another process
  // (a worker, another replica) commits reaches this index within a NOTIFY's time.
  const feed = config.db.provider === 'postgresql' ? new IndexFeedRepository(db, config.db) : null;
  if (feed) index.feed = feed;
  await recovery.recover({ shared: role !== 'all' });
  const follower = feed ? new IndexFeedFollower(feed, index, engine.modelId, { pollMs: config.index.feedPollMs }, log.child({ module: 'index-feed' })) : null;
  await follower?.start();
  const retention = feed ? new IndexFeedRetention(feed, { retentionMs: config.index.feedRetentionMs }, log.child({ module: 'index-feed' })) : null;
  await retention?.start();
  metrics.observeFeedLag = () => {
    const status = follower?.status();
    return status ? { positions: status.lagPositions, seconds: status.lagSeconds } : null;
  };
  await captureInfo.plan();
  jobs.register('INGEST', ingest);
  jobs.register('REEMBED', recovery.reembedJob);
  // Before the queue starts, so a restart after a model change shows the run as a job at once.
  await recovery.planReembedding(jobs);
  // A replica of a new model serves once that model covers every image (workers of the new model
  // embed them beside the old model's rows, while replicas of the old model keep serving): until
  // then it answers 503 "starting", so a load balancer keeps sending searches to the others.
  if (role === 'api') await waitForCoverage(repo, recovery, jobs, engine.modelId, config.index.feedPollMs, log);
  let ready = false;
  const services: GraphQLServices = {
    ingest,
    search,
    images,
    jobs,
    listJobs: (args) => listJobs(jobs, args, config.limits.maxPageSize),
    minAltTextMatch: config.search.minAltTextMatch,
    publicUrl: config.http.publicUrl,
    info: () => ({
      modelId: engine.modelId,
      embedDim: engine.embedDim,
      indexedImages: index.size,
      maxTextChars: config.limits.maxTextChars,
      maxUploadBytes: config.limits.maxUploadBytes,
      maxImagePixels: config.models.maxImagePixels,
      maxPageSize: config.limits.maxPageSize,
      defaultCandidates: search.defaultCandidates,
      maxCandidates: config.search.maxCandidates,
      acceptedMimeTypes: [...ACCEPTED_MIME_TYPES],
      models: answerers.list(),
    }),
  };
  const schema = createGraphqlSchema(path.join(ROOT, 'schema.graphql'));
  const keys = new ApiKeyService(new PrismaApiKeyRepository(db));
  const auth = { mode: config.auth.mode, localHosts: new Set(config.http.allowedHosts) };
  const subscriptions = attachSubscriptionServer({
    httpServer: server,
    schema,
    services,
    log: log.child({ module: 'graphql-ws' }),
    authorize: (request, params) =>
      principalOfUpgrade(request, params, keys, { ...auth, allowedHosts: auth.localHosts, corsOrigins: config.http.corsOrigins }),
  });
  const apollo = createApolloServer({
    schema,
    plugins: [subscriptions.plugin, resolverMetricsPlugin(metrics)],
    schemaPath: path.join(ROOT, 'schema.graphql'),
    maxQueryDepth: config.limits.maxQueryDepth,
    maxQueryComplexity: config.limits.maxQueryComplexity,
    log: log.child({ module: 'graphql' }),
    httpServer: server,
    workBudget: {
      maxItmCandidates: config.work.maxItmCandidates,
      maxGenerations: config.work.maxGenerations,
      maxDecodes: config.work.maxDecodes,
      defaultCandidates: () => search.defaultCandidates,
    },
    hideSuggestions: config.production,
  });
  await apollo.start();
  const rateLimits = createRateLimitStore(config.rateLimit.store, config.db, config.rateLimit.redisUrl);
  const limiters = {
    address: await rateLimits.limiter('address', config.rateLimit.perMinute, 60),
    key: await rateLimits.limiter('key', config.rateLimit.keyPerMinute, 60),
  };
  handler = createHttpApp({
    apollo,
    services,
    images,
    keys,
    auth,
    trustProxy: config.http.trustProxy,
    isReady: () => ready,
    health: () => ({ role, ...(follower ? { indexFeed: follower.status() } : {}) }),
    backlog: () => {
      const b = engine.backlog();
      return { ...b, degraded: b.pending > 0 && b.oldestMs > config.work.degradedAfterMs };
    },
    limiters,
    corsOrigins: config.http.corsOrigins,
    allowedHosts: config.http.allowedHosts,
    maxUploadBytes: config.limits.maxUploadBytes,
    maxFilesPerRequest: config.maxFilesPerRequest,
    webDir: config.http.webDir,
    log,
    metrics,
  });
  log.info({ port, role, modelId: engine.modelId, indexed: index.size }, 'ready');
  await retirement?.start();

  const abort = new AbortController();
  // ROLE=api queues jobs and runs none: workers (ROLE=worker) take them from PostgreSQL.
  if (role === 'all') jobs.start();
  const background = (async () => {
    await captureInfo.run(abort.signal);
    // "First start": nothing stored and never seeded (a marker, so that emptying the collection
    // later does not bring the samples back, while a first start that crashed still seeds).
    const marker = path.join(config.dataDir, '.samples-seeded');
    if (config.seed.enabled && !fs.existsSync(marker) && (await repo.countReady()) === 0) {
      await seedSamples(ingest, config.seed.samplesDir, log.child({ module: 'seed' }), abort.signal);
      if (!abort.signal.aborted) fs.writeFileSync(marker, new Date().toISOString());
    }
  })().catch((error: unknown) => log.error({ err: error }, 'background start-up work failed'));
  ready = true;

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      ready = false;
      abort.abort();
      await jobs.stop(); // running jobs go back to QUEUED; subscriptions end
      await apollo.stop(); // drains the HTTP server and the WebSocket server
      await background;
      await follower?.stop();
      await retention?.stop();
      await retirement?.stop();
      await index.flush();
      blobs?.close?.();
      await db.$disconnect();
      await rateLimits.close();
      await answerers.close();
      await engine.close();
      log.info('stopped');
    })());
  return { server, port, ingest, jobs, metrics, keys, stop };
}

/**
 * ROLE=worker: runs the queue's jobs (ingest inference, re-embedding) and nothing else; its HTTP
 * server answers /healthz and /metrics only. A worker killed mid-job loses nothing: the job's
 * lease runs out and another worker takes it over (src/repositories/job.repository.ts).
 */
function startWorker(parts: {
  server: http.Server;
  port: number;
  ingest: IngestService;
  jobs: JobQueueService;
  metrics: Metrics;
  keys: ApiKeyService;
  auth: AuthSettings;
  recovery: StorageRecoveryService;
  log: Logger;
  close: () => Promise<void>;
  setHandler: (handler: http.RequestListener) => void;
}): Application {
  const { server, port, ingest, jobs, metrics, recovery, log } = parts;
  let ready = true;
  jobs.register('INGEST', ingest);
  jobs.register('REEMBED', recovery.reembedJob);
  // A worker of a new model plans its own re-embedding (it claims only its model's runs).
  void recovery.planReembedding(jobs).catch((error: unknown) => log.error({ err: error }, 'could not plan re-embedding'));
  parts.setHandler(createWorkerHttpApp({ isReady: () => ready, health: () => ({ role: 'worker', runningJobs: jobs.active }), log, metrics, keys: parts.keys, auth: parts.auth }));
  jobs.start();
  log.info({ port, role: 'worker', workerId: jobs.workerId }, 'ready');
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      ready = false;
      await jobs.stop(); // running jobs go back to QUEUED for another worker
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await parts.close();
      log.info('stopped');
    })());
  return { server, port, ingest, jobs, metrics, keys: parts.keys, stop };
}

/** ROLE=api: returns once every READY image has an embedding of `modelId` (see the call). */
async function waitForCoverage(repo: PrismaImageRepository, recovery: StorageRecoveryService, jobs: JobQueueService, modelId: string, pollMs: number, log: Logger): Promise<void> {
  let logged = false;
  for (;;) {
    const missing = await repo.countMissingEmbeddings(modelId);
    if (missing === 0) return;
    if (!logged) log.info({ modelId, missing }, 'waiting for workers of this model to embed every image before serving');
    logged = true;
    // Images ingested meanwhile by workers of the old model need a new run once this one is done.
    await recovery.planReembedding(jobs);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
