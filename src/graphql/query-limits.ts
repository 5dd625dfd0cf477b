import depthLimit from 'graphql-depth-limit';
import { createComplexityRule, fieldExtensionsEstimator, simpleEstimator } from 'graphql-query-complexity';
import { GraphQLError, type ValidationRule } from 'graphql';

/** Connection fields multiply the cost of their selection by the page size they ask for. */
const LIST_ARGUMENTS = ['first'];

/**
 * Validation rules against pathological queries: a depth cap (graphql-depth-limit) and a cost
 * cap (graphql-query-complexity), both reported as GRAPHQL_VALIDATION_FAILED before execution.
 */
export function queryLimitRules(maxDepth: number, maxComplexity: number): ValidationRule[] {
  return [
    depthLimit(maxDepth),
    createComplexityRule({
      maximumComplexity: maxComplexity,
      estimators: [
        fieldExtensionsEstimator(),
        (args) => {
          const size = LIST_ARGUMENTS.map((a) => args.args[a]).find((v) => typeof v === 'number');
          if (typeof size !== 'number') return undefined;
          return Math.max(1, size) * (1 + args.childComplexity);
        },
        simpleEstimator({ defaultComplexity: 1 }),
      ],
      createError: (max, actual) =>
        new GraphQLError(`Query is too complex: cost ${actual}, the limit is ${max}`, {
          extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
        }),
    }),
  ];
}
