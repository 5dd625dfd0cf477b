import type { ApolloServerPlugin } from '@apollo/server';
import depthLimit from 'graphql-depth-limit';
import { fieldExtensionsEstimator, getComplexity, simpleEstimator, type ComplexityEstimator } from 'graphql-query-complexity';
import { GraphQLError, type ValidationRule } from 'graphql';

/** graphql-depth-limit as a validation rule: too deep -> GRAPHQL_VALIDATION_FAILED before execution. */
export function depthLimitRule(maxDepth: number): ValidationRule {
  return depthLimit(maxDepth);
}

/** Connection fields multiply the cost of their selection by the page size they ask for. */
const pageSizeEstimator: ComplexityEstimator = ({ args, childComplexity }) => {
  const first = args.first;
  return typeof first === 'number' ? Math.max(1, first) * (1 + childComplexity) : undefined;
};

/**
 * graphql-query-complexity needs the operation's variables, which validation rules never see, so
 * it runs as a plugin once the operation is resolved (the library's documented Apollo setup).
 */
export function complexityLimitPlugin(maxComplexity: number): ApolloServerPlugin {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ request, document, schema }) {
          let complexity: number;
          try {
            complexity = getComplexity({
            schema,
            query: document,
            variables: request.variables ?? {},
            operationName: request.operationName ?? undefined,
            estimators: [fieldExtensionsEstimator(), pageSizeEstimator, simpleEstimator({ defaultComplexity: 1 })],
            });
          } catch {
            // Variables that do not coerce: execution reports them as BAD_USER_INPUT next.
            return;
          }
          if (complexity > maxComplexity) {
            throw new GraphQLError(`Query is too complex: cost ${complexity}, the limit is ${maxComplexity}`, {
              extensions: { code: 'GRAPHQL_VALIDATION_FAILED', http: { status: 400 } },
            });
          }
        },
      };
    },
  };
}
