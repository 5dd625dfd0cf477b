import fs from 'node:fs';
import path from 'node:path';
import type { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import cors from 'cors';
import express, { type Express } from 'express';
import graphqlUploadExpress from 'graphql-upload/graphqlUploadExpress.mjs';
import type { GraphQLContext, GraphQLServices } from '../graphql/context.js';
import type { Logger } from '../lib/logger.js';
import type { Metrics } from '../lib/metrics.js';
import { accessLog } from './access-log.js';
import type { ImageService } from '../services/image.service.js';
import { imageRoutes, restErrorHandler } from './image.routes.js';

export interface HttpAppOptions {
  apollo: ApolloServer<GraphQLContext>;
  services: GraphQLServices;
  images: ImageService;
  isReady: () => boolean;
  /** More of /healthz's answer (the index feed's lag on PostgreSQL, src/services/index-feed-follower.ts). */
  health?: () => Record<string, unknown>;
  corsOrigin: string;
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
  app.use(accessLog(options.log.child({ module: 'http' }), options.metrics));
  app.get('/metrics', async (_req, res, next) => {
    try {
      res.type(options.metrics.registry.contentType).send(await options.metrics.registry.metrics());
    } catch (error) {
      next(error);
    }
  });
  app.get('/healthz', healthz(options));
  app.use(
    '/graphql',
    cors({ origin: options.corsOrigin === '*' ? true : options.corsOrigin.split(',') }),
    // graphql-upload implements the GraphQL multipart request spec; Apollo's CSRF prevention
    // (on) still requires a preflight-forcing header on these requests.
    graphqlUploadExpress({ maxFileSize: options.maxUploadBytes + 1, maxFiles: options.maxFilesPerRequest }),
    express.json({ limit: Math.ceil(options.maxUploadBytes * 1.4) + 64 * 1024 }),
    expressMiddleware(options.apollo, { context: async () => ({ services: options.services }) }),
  );
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
