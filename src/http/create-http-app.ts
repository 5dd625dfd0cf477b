import { setMaxListeners } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import type { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import cors from 'cors';
import express, { type Express, type RequestHandler } from 'express';
import helmet from 'helmet';
import graphqlUploadExpress from 'graphql-upload/graphqlUploadExpress.mjs';
import type { GraphQLContext, GraphQLServices } from '../graphql/context.js';
import type { Logger } from '../lib/logger.js';
import type { Metrics } from '../lib/metrics.js';
import { accessLog } from './access-log.js';
import type { ApiKeyService } from '../services/api-key.service.js';
import type { ImageService } from '../services/image.service.js';
import { runInRequestScope } from '../services/request-scope.js';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { rateLimit } from './rate-limit.js';
import { authenticate, requireScope, type AuthSettings } from './authenticate.js';
import { imageRoutes, restErrorHandler } from './image.routes.js';

export interface HttpAppOptions {
  apollo: ApolloServer<GraphQLContext>;
  services: GraphQLServices;
  images: ImageService;
  keys: ApiKeyService;
  auth: AuthSettings;
  isReady: () => boolean;
  /** More of /healthz's answer (the index feed's lag on PostgreSQL, src/services/index-feed-follower.ts). */
  health?: () => Record<string, unknown>;
  /** Model work in flight: /healthz says "degraded" while the oldest has waited too long. */
  backlog: () => { pending: number; oldestMs: number; degraded: boolean };
  limiters: { address: RateLimiterAbstract; key: RateLimiterAbstract };
  /** Host names (no port) the server answers to; others get 421 (config.http.allowedHosts). */
  allowedHosts: readonly string[];
  /** Express "trust proxy" (config.http.trustProxy): whose X-Forwarded-For sets req.ip. */
  trustProxy: boolean | number | string;
  corsOrigins: readonly string[];
  maxUploadBytes: number;
  /** ingestImages: files one multipart request may carry. */
  maxFilesPerRequest: number;
  webDir: string;
  log: Logger;
  metrics: Metrics;
}

/** /healthz: "ok" once ready (503 "starting" before), with what `health` adds. */
export function healthz(options: Pick<HttpAppOptions, 'isReady' | 'health'>): express.RequestHandler {
  return (_req, res) => {
    if (options.isReady()) res.json({ status: 'ok', ...options.health?.() });
    else res.status(503).json({ status: 'starting' });
  };
}

/** Routes: /graphql (JSON and multipart), /images/:id[/thumbnail], /healthz, /metrics (Prometheus), and the web page at /. */
export function createHttpApp(options: HttpAppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', options.trustProxy);
  app.use(securityHeaders(options.corsOrigins.length > 0));
  app.use(accessLog(options.log.child({ module: 'http' }), options.metrics));
  app.get('/healthz', (_req, res) => {
    if (!options.isReady()) return void res.status(503).json({ status: 'starting' });
    // Still 200 when degraded: the server answers, slowly; a balancer may prefer another replica.
    const { pending, oldestMs, degraded } = options.backlog();
    res.json({ status: degraded ? 'degraded' : 'ok', pendingModelWork: pending, oldestWaitMs: oldestMs, ...options.health?.() });
  });
  app.use(requestScope);
  // After /healthz, which probes reach by address, and before everything that reads or acts.
  app.use(hostCheck(new Set(options.allowedHosts)));
  // Operational figures, not images: the read scope (a keyless local scraper under AUTH=local).
  app.get('/metrics', authenticate(options.keys, options.auth), requireScope('read'), async (_req, res, next) => {
    try {
      res.type(options.metrics.registry.contentType).send(await options.metrics.registry.metrics());
    } catch (error) {
      next(error);
    }
  });
  app.use(
    '/graphql',
    cors({ origin: options.corsOrigins.includes('*') ? true : [...options.corsOrigins] }),
    authenticate(options.keys, options.auth),
    rateLimit(options.limiters, options.log),
    requireScope('read'),
    // graphql-upload implements the GraphQL multipart request spec; Apollo's CSRF prevention
    // (on) still requires a preflight-forcing header on these requests.
    graphqlUploadExpress({ maxFileSize: options.maxUploadBytes + 1, maxFiles: options.maxFilesPerRequest }),
    express.json({ limit: Math.ceil(options.maxUploadBytes * 1.4) + 64 * 1024 }),
    expressMiddleware(options.apollo, { context: async ({ res }) => ({ services: options.services, principal: res.locals.principal }) }),
  );
  app.use('/images', authenticate(options.keys, options.auth, { cookie: true }), rateLimit(options.limiters, options.log), requireScope('read'));
  app.use(imageRoutes(options.images));
  if (fs.existsSync(path.join(options.webDir, 'index.html'))) {
    app.use(express.static(options.webDir, { index: 'index.html' }));
  } else {
    app.get('/', (_req, res) => {
      res.type('text/plain').send('blip-search: GraphQL at /graphql (the web page is served here once web/dist is built)\n');
    });
  }
  app.use(restErrorHandler(options.log));
  return app;
}

/**
 * helmet's headers on every response. The CSP fits the built page (web/dist: module scripts and
 * stylesheets from this origin, previews as blob:/data: images, GraphQL on this origin) and
 * nothing else; frame-ancestors 'none' keeps the page (and its delete button) out of other
 * sites' frames. Images may be embedded cross-origin only when CORS_ORIGIN lists front ends.
 */
function securityHeaders(crossOriginFrontEnds: boolean) {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:', 'blob:'],
        connectSrc: ["'self'"],
        fontSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
      },
    },
    crossOriginResourcePolicy: { policy: crossOriginFrontEnds ? 'cross-origin' : 'same-origin' },
    // No upgrade-insecure-requests or HSTS: the default listener is plain HTTP on loopback; a TLS
    // proxy in front sets HSTS itself (docs/security.md).
    strictTransportSecurity: false,
  });
}

/**
 * Answers 421 Misdirected Request to a Host the server does not go by: a page whose domain was
 * rebound to this machine's address (DNS rebinding) sends its own name, so it never reaches the
 * API, whatever AUTH allows.
 */
function hostCheck(allowed: ReadonlySet<string>): RequestHandler {
  return (req, res, next) => {
    if (allowed.has((req.hostname ?? '').toLowerCase())) return next();
    res.status(421).json({ errors: [{ message: `Host ${JSON.stringify(req.hostname)} is not served here; add it to ALLOWED_HOSTS`, extensions: { code: 'MISDIRECTED_REQUEST' } }] });
  };
}

/**
 * The rest of the request runs with a signal that fires when its client goes away before the
 * answer is sent, so its queued model work is dropped (src/services/request-scope.ts).
 */
const requestScope: RequestHandler = (_req, res, next) => {
  const abort = new AbortController();
  // Every model call the request makes listens to this signal (AbortSignal.any in
  // src/services/request-scope.ts); their number is bounded by the request's work budget
  // (src/graphql/work-budget-plugin.ts), not by Node's default warning threshold of 10.
  setMaxListeners(0, abort.signal);
  res.on('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  runInRequestScope(abort.signal, next);
};
