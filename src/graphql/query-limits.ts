import type { ApolloServerPlugin } from '@apollo/server';
import depthLimit from 'graphql-depth-limit';
import { fieldExtensionsEstimator, getComplexity, simpleEstimator, type ComplexityEstimator } from 'graphql-query-complexity';
import { GraphQLError, Kind, visit, type DocumentNode, type ValidationRule } from 'graphql';

/**
 * graphql-depth-limit as a validation rule: too deep -> GRAPHQL_VALIDATION_FAILED before execution.
 * It follows fragment spreads without remembering them, so a fragment cycle overflowed the stack
 * (INTERNAL_SERVER_ERROR); on a cyclic document it stands aside and graphql-js's own
 * NoFragmentCyclesRule reports the cycle.
 */
export function depthLimitRule(maxDepth: number): ValidationRule {
  const rule = depthLimit(maxDepth);
  return (context) => (hasFragmentCycle(context.getDocument()) ? {} : rule(context));
}

function hasFragmentCycle(document: DocumentNode): boolean {
  const spreads = new Map<string, string[]>();
  for (const def of document.definitions) {
    if (def.kind !== Kind.FRAGMENT_DEFINITION) continue;
    const names: string[] = [];
    visit(def.selectionSet, { FragmentSpread: (node) => void names.push(node.name.value) });
    spreads.set(def.name.value, names);
  }
  // Depth-first with colours, iterative: a grey fragment reached again closes a cycle.
  const state = new Map<string, 'grey' | 'black'>();
  for (const start of spreads.keys()) {
    if (state.has(start)) continue;
    const stack: Array<[string, number]> = [[start, 0]];
    state.set(start, 'grey');
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const next = spreads.get(top[0])?.[top[1]++];
      if (next === undefined) {
        state.set(top[0], 'black');
        stack.pop();
      } else if (state.get(next) === 'grey') {
        return true;
      } else if (!state.has(next) && spreads.has(next)) {
        state.set(next, 'grey');
        stack.push([next, 0]);
      }
    }
  }
  return false;
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
