import type { ApolloServerPlugin } from '@apollo/server';
import { GraphQLError, Kind, type FragmentDefinitionNode, type GraphQLSchema, type SelectionSetNode } from 'graphql';
import { isApiKeyScope, requireScopeOf, type ApiKeyScope } from '../domain/api-key.js';
import { DomainError } from '../domain/errors.js';
import type { GraphQLContext } from './context.js';

/**
 * Checks the whole operation's scope before anything runs, so a document mixing a query with a
 * forbidden mutation does no part of its work. Queries need `read` (the HTTP layer refused keyless
 * requests already); each mutation field needs its `@requiresScope` from schema.graphql, and one
 * without the directive needs `admin` (a new mutation is closed until someone decides).
 */
export function scopePlugin(): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ operation, document, schema, contextValue }) {
          let required: ApiKeyScope = 'read';
          if (operation?.operation === 'mutation') {
            const fragments = new Map(
              document.definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION).map((d) => [d.name.value, d]),
            );
            for (const field of topLevelFields(operation.selectionSet, fragments, new Set())) {
              const scope = mutationScope(schema, field);
              if (scope === 'admin' || (scope === 'write' && required === 'read')) required = scope;
            }
          }
          try {
            requireScopeOf(contextValue.principal, required);
          } catch (error) {
            const code = (error as DomainError).code;
            throw new GraphQLError((error as Error).message, {
              extensions: { code, http: { status: code === 'UNAUTHENTICATED' ? 401 : 403 } },
            });
          }
        },
      };
    },
  };
}

/** Field names at the operation's top level, through fragments (visited once: cycles are a validation error already). */
function* topLevelFields(set: SelectionSetNode, fragments: Map<string, FragmentDefinitionNode>, seen: Set<string>): Generator<string> {
  for (const selection of set.selections) {
    if (selection.kind === Kind.FIELD) yield selection.name.value;
    else if (selection.kind === Kind.INLINE_FRAGMENT) yield* topLevelFields(selection.selectionSet, fragments, seen);
    else if (!seen.has(selection.name.value)) {
      seen.add(selection.name.value);
      const fragment = fragments.get(selection.name.value);
      if (fragment) yield* topLevelFields(fragment.selectionSet, fragments, seen);
    }
  }
}

function mutationScope(schema: GraphQLSchema, fieldName: string): ApiKeyScope {
  if (fieldName === '__typename') return 'read';
  const directive = schema.getMutationType()?.getFields()[fieldName]?.astNode?.directives?.find((d) => d.name.value === 'requiresScope');
  const arg = directive?.arguments?.find((a) => a.name.value === 'scope')?.value;
  const scope = arg?.kind === Kind.ENUM ? arg.value.toLowerCase() : 'admin';
  return isApiKeyScope(scope) ? scope : 'admin';
}
