import fs from 'node:fs';
import path from 'node:path';
import type { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import cors from 'cors';
import express, { type Express } from 'express';
import graphqlUploadExpress from 'graphql-upload/graphqlUploadExpress.mjs';
import type { GraphQLContext, GraphQLServices } from '../graphql/context.js';
import type { Logger } from '../lib/logger.js';
import type { ApiKeyService } from '../services/api-key.service.js';
import type { ImageService } from '../services/image.service.js';
import { authenticate, requireScope, type AuthSettings } from './authenticate.js';
import { imageRoutes, restErrorHandler } from './image.routes.js';

export interface HttpAppOptions {
  apollo: ApolloServer<GraphQLContext>;
  services: GraphQLServices;
  images: ImageService;
  keys: ApiKeyService;
  auth: AuthSettings;
  isReady: () => boolean;
  /** Express "trust proxy" (config.http.trustProxy): whose X-Forwarded-For sets req.ip. */
  trustProxy: boolean | number | string;
  corsOrigins: readonly string[];
  maxUploadBytes: number;
  webDir: string;
  log: Logger;
}

/** Routes: /graphql (JSON and multipart), /images/:id[/thumbnail], /healthz, and the web page at /. */
export function createHttpApp(options: HttpAppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', options.trustProxy);
  app.get('/healthz', (_req, res) => {
    if (options.isReady()) res.json({ status: 'ok' });
    else res.status(503).json({ status: 'starting' });
  });
  app.use(
    '/graphql',
    cors({ origin: options.corsOrigins.includes('*') ? true : [...options.corsOrigins] }),
    authenticate(options.keys, options.auth),
    requireScope('read'),
    // graphql-upload implements the GraphQL multipart request spec; Apollo's CSRF prevention
    // (on) still requires a preflight-forcing header on these requests.
    graphqlUploadExpress({ maxFileSize: options.maxUploadBytes + 1, maxFiles: 1 }),
    express.json({ limit: Math.ceil(options.maxUploadBytes * 1.4) + 64 * 1024 }),
    expressMiddleware(options.apollo, { context: async ({ res }) => ({ services: options.services, principal: res.locals.principal }) }),
  );
  app.use('/images', authenticate(options.keys, options.auth, { cookie: true }), requireScope('read'));
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

