import { DomainError } from '../../domain/errors.js';
import type { Resolvers } from '../__generated__/resolvers-types.js';
import { toImageSource } from './image-source-input.js';

export const ingestResolvers: Resolvers = {
  Mutation: {
    ingestImage: (_root, { input, wait }, ctx) =>
      ctx.services.ingest.ingestImage({ source: toImageSource(input), altText: input.altText, metadata: input.metadata }, { wait: wait ?? true }),
    // Each input on its own: one refused file must not fail a folder's batch. Domain errors become
    // the item's error (code and message as ingestImage would answer); anything else is a bug and
    // fails the request, masked by src/graphql/format-error.ts.
    ingestImages: async (_root, { inputs, wait }, ctx) => ({
      results: await Promise.all(
        inputs.map(async (input) => {
          try {
            const result = await ctx.services.ingest.ingestImage(
              { source: toImageSource(input), altText: input.altText, metadata: input.metadata },
              { wait: wait ?? true },
            );
            return { ...result, job: result.job ?? null, error: null };
          } catch (error) {
            if (!(error instanceof DomainError)) throw error;
            return { image: null, created: false, job: null, error: { code: error.code, message: error.message } };
          }
        }),
      ),
    }),
  },
};
