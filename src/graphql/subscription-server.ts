import type { IncomingMessage, Server } from 'node:http';
import type { ApolloServerPlugin } from '@apollo/server';
import { GraphQLError, type GraphQLSchema } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { requireScopeOf, type Principal } from '../domain/api-key.js';
import type { Logger } from '../lib/logger.js';
import type { GraphQLContext, GraphQLServices } from './context.js';
import { createFormatError } from './format-error.js';

/**
 * GraphQL over WebSocket (the graphql-ws protocol) on the HTTP server Apollo uses, at the same
 * path (/graphql): subscriptions (jobUpdates) share the schema and resolvers with HTTP. The
 * returned Apollo plugin closes the sockets when Apollo stops (Apollo's documented pattern).
 */
export function attachSubscriptionServer(options: {
  httpServer: Server;
  schema: GraphQLSchema;
  services: GraphQLServices;
  log: Logger;
  /**
   * Who the connection is (src/http/authenticate.ts, principalOfUpgrade); null refuses it. A
   * subscription needs the read scope, as a query does.
   */
  authorize: (request: IncomingMessage, params: Readonly<Record<string, unknown>> | undefined) => Promise<Principal | null>;
}): { plugin: ApolloServerPlugin<GraphQLContext>; dispose: () => Promise<void> } {
  const wsServer = new WebSocketServer({ server: options.httpServer, path: '/graphql' });
  const formatError = createFormatError(options.log);
  const cleanup = useServer(
    {
      schema: options.schema,
      onConnect: async (ctx) => {
        try {
          const principal = await options.authorize(ctx.extra.request, ctx.connectionParams);
          if (!principal) return false;
          requireScopeOf(principal, 'read');
          (ctx.extra as { principal?: Principal }).principal = principal;
          return true;
        } catch (error) {
          options.log.info({ err: (error as Error).message }, 'WebSocket connection refused');
          return false;
        }
      },
      context: (ctx): GraphQLContext & Record<string, unknown> => ({
        services: options.services,
        principal: (ctx.extra as { principal?: Principal }).principal ?? { kind: 'anonymous' },
      }),
      // No depth or complexity limit here: the only root field is jobUpdates, whose selection
      // (Job -> Image -> scalars) is at most three deep and one object wide.
      // Errors leave as they do over HTTP: domain codes kept, internals masked.
      onError: (_ctx, _id, _payload, errors) =>
        errors.map((error) => {
          const formatted = formatError(error.toJSON(), error);
          return new GraphQLError(formatted.message, { extensions: formatted.extensions });
        }),
      onNext: (_ctx, _id, _payload, _args, result) => {
        if (!('errors' in result) || !result.errors?.length) return undefined;
        return {
          ...result,
          errors: result.errors.map((error) => {
            const formatted = formatError(error.toJSON(), error);
            return new GraphQLError(formatted.message, { path: error.path, extensions: formatted.extensions });
          }),
        };
      },
    },
    wsServer,
  );
  let disposed: Promise<void> | undefined;
  const dispose = () => (disposed ??= Promise.resolve(cleanup.dispose()).then(() => undefined));
  return {
    dispose,
    plugin: {
      async serverWillStart() {
        return { drainServer: dispose };
      },
    },
  };
}
