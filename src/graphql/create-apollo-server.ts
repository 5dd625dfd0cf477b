import { readFileSync } from 'node:fs';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { makeExecutableSchema } from '@graphql-tools/schema';
import type { GraphQLSchema } from 'graphql';
import type { Server } from 'node:http';
import type { Logger } from '../lib/logger.js';
import type { GraphQLContext } from './context.js';
import { createFormatError } from './format-error.js';
import { complexityLimitPlugin, depthLimitRule } from './query-limits.js';
import { resolvers } from './resolvers/index.js';
import { scopePlugin } from './scope-plugin.js';
import { workBudgetPlugin, type WorkBudget } from './work-budget-plugin.js';

export interface ApolloOptions {
  schemaPath: string;
  maxQueryDepth: number;
  maxQueryComplexity: number;
  log: Logger;
  httpServer?: Server;
  /** Model work per request (src/graphql/work-budget-plugin.ts); none: unbounded. */
  workBudget?: WorkBudget;
  /** Most lexical tokens a document may have. */
  maxQueryTokens?: number;
  /** Production hides "did you mean" field suggestions, which map the schema for a prober. */
  hideSuggestions?: boolean;
  /** The schema, when the WebSocket server shares it (src/graphql/subscription-server.ts). */
  schema?: GraphQLSchema;
  plugins?: ApolloServerPlugin<GraphQLContext>[];
}

/** One executable schema for HTTP (Apollo) and WebSocket (graphql-ws) operations. */
export function createGraphqlSchema(schemaPath: string): GraphQLSchema {
  return makeExecutableSchema({ typeDefs: readFileSync(schemaPath, 'utf8'), resolvers });
}

/** Schema-first Apollo Server; no listen here, so tests can run operations directly. */
export function createApolloServer(options: ApolloOptions): ApolloServer<GraphQLContext> {
  return new ApolloServer<GraphQLContext>({
    schema: options.schema ?? createGraphqlSchema(options.schemaPath),
    // Kept on deliberately: multipart uploads must carry Apollo-Require-Preflight (or an
    // operation-name header), which a cross-site form post cannot.
    csrfPrevention: true,
    formatError: createFormatError(options.log),
    validationRules: [depthLimitRule(options.maxQueryDepth)],
    includeStacktraceInErrorResponses: false,
    // src/main.ts owns SIGTERM/SIGINT. Apollo's own handler (on outside NODE_ENV=test) stopped the
    // server and then re-sent the signal, which main.ts took for a second one: exit code 1.
    stopOnTerminationSignals: false,
    // A document of 200k aliases costs seconds to parse and validate before any limit sees it;
    // graphql-js stops counting tokens here instead (GRAPHQL_PARSE_FAILED).
    parseOptions: { maxTokens: options.maxQueryTokens ?? 50_000 },
    hideSchemaDetailsFromClientErrors: options.hideSuggestions ?? false,
    logger: options.log,
    plugins: [
      // Scope first: a caller without access learns nothing about the cost of its query.
      scopePlugin(),
      complexityLimitPlugin(options.maxQueryComplexity),
      ...(options.workBudget ? [workBudgetPlugin(options.workBudget)] : []),
      ...(options.httpServer ? [ApolloServerPluginDrainHttpServer({ httpServer: options.httpServer })] : []),
      ...(options.plugins ?? []),
    ],
  });
}
