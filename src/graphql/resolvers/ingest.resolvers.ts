import type { Resolvers } from '../__generated__/resolvers-types.js';
import { toImageSource } from './image-source-input.js';

export const ingestResolvers: Resolvers = {
  Mutation: {
    ingestImage: (_root, { input }, ctx) =>
      ctx.services.ingest.ingestImage({ source: toImageSource(input), altText: input.altText, metadata: input.metadata }),
  },
};
