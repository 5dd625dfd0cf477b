import type { ApolloServerPlugin } from '@apollo/server';
import { getComplexity, type ComplexityEstimator, type ComplexityEstimatorArgs } from 'graphql-query-complexity';
import { GraphQLError } from 'graphql';

export interface WorkBudget {
  /** Images ITM re-ranks, summed over the request's searches. */
  maxItmCandidates: number;
  /** Text generations: answers and captions. */
  maxGenerations: number;
  /** Images decoded (an upload, or a stored original for a question or a caption). */
  maxDecodes: number;
  /** Re-ranking depth of a search that names no `candidates` (SearchService.defaultCandidates). */
  defaultCandidates: () => number;
}

type Dimension = 'itm' | 'generations' | 'decodes';

/**
 * What each field costs the model, per dimension. Fields not listed cost nothing; the listed
 * ones are top-level fields, so their children add nothing (an Image's fields are stored data).
 */
function cost(dimension: Dimension, { type, field, args }: ComplexityEstimatorArgs, budget: WorkBudget): number {
  const at = `${type.name}.${field.name}`;
  if (at === 'Mutation.ingestImages') {
    // Each input is an ingestImage; with wait: false its captioning and embedding run later as
    // a background job (bounded by the job queue), so the request only decodes.
    const n = Array.isArray(args.inputs) ? args.inputs.length : 0;
    const now = args.wait !== false;
    return dimension === 'decodes' ? n : now ? (dimension === 'itm' ? 2 * n : n) : 0;
  }
  switch (dimension) {
    case 'itm':
      if (at === 'Query.searchImages') {
        const rerank = typeof args.rerank === 'boolean' ? args.rerank : args.mode !== 'KEYWORD';
        return rerank ? (typeof args.candidates === 'number' ? args.candidates : budget.defaultCandidates()) : 0;
      }
      if (at === 'Mutation.updateImage') return 1; // a new alt text is scored against the image
      if (at === 'Mutation.ingestImage') return 2; // caption and alt text matches
      return 0;
    case 'generations':
      return at === 'Query.askImage' || at === 'Mutation.recaption' || at === 'Mutation.ingestImage' ? 1 : 0;
    case 'decodes':
      return at === 'Query.askImage' || at === 'Mutation.recaption' || at === 'Mutation.ingestImage' || at === 'Query.searchByImage' ? 1 : 0;
  }
}

/**
 * Counts a request's model work before anything runs, with the library the complexity limit
 * uses (aliases, fragments and variables counted as executed), and refuses it with
 * QUERY_TOO_EXPENSIVE when any dimension is over its budget. The complexity limit bounds the size
 * of the answer; this bounds the CPU time: 1000 aliased askImage calls cost little to return but
 * minutes of inference.
 */
export function workBudgetPlugin(budget: WorkBudget): ApolloServerPlugin {
  const limits: Record<Dimension, number> = { itm: budget.maxItmCandidates, generations: budget.maxGenerations, decodes: budget.maxDecodes };
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ request, document, schema }) {
          const work = {} as Record<Dimension, number>;
          for (const dimension of Object.keys(limits) as Dimension[]) {
            const estimator: ComplexityEstimator = (args) => cost(dimension, args, budget) + args.childComplexity;
            try {
              work[dimension] = getComplexity({ schema, query: document, variables: request.variables ?? {}, operationName: request.operationName ?? undefined, estimators: [estimator] });
            } catch {
              return; // variables that do not coerce: execution reports BAD_USER_INPUT
            }
          }
          const over = (Object.keys(limits) as Dimension[]).filter((d) => work[d] > limits[d]);
          if (over.length) {
            const what = over.map((d) => `${d === 'itm' ? 'ITM candidates' : d} ${work[d]} (limit ${limits[d]})`).join(', ');
            throw new GraphQLError(`This request asks for too much model work: ${what}; split it into several requests`, {
              extensions: { code: 'QUERY_TOO_EXPENSIVE', work, limits, http: { status: 400 } },
            });
          }
        },
      };
    },
  };
}
