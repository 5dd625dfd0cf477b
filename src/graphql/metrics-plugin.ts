import type { ApolloServerPlugin } from '@apollo/server';
import type { Metrics } from '../lib/metrics.js';
import type { GraphQLContext } from './context.js';

/** Latency of root fields (Query, Mutation): nested fields are cheap reads and would only add series. */
export function resolverMetricsPlugin(metrics: Metrics): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async executionDidStart() {
          return {
            willResolveField({ info }) {
              const type = info.parentType.name;
              if (type !== 'Query' && type !== 'Mutation') return;
              const end = metrics.resolverDuration.startTimer({ type, field: info.fieldName });
              return (error) => end({ outcome: error ? 'error' : 'ok' });
            },
          };
        },
      };
    },
  };
}
