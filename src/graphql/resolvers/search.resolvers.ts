import type { SearchPage } from '../../domain/search.js';
import type { Resolvers } from '../__generated__/resolvers-types.js';
import { toConnection } from './image.resolvers.js';
import { toImageSource } from './image-source-input.js';

export const searchResolvers: Resolvers = {
  Query: {
    searchImages: (_root, args, ctx) => ctx.services.search.searchImages({ ...args, first: args.first ?? 10 }).then(toEdges),
    similarImages: (_root, args, ctx) => ctx.services.search.similarImages({ ...args, first: args.first ?? 10 }).then(toEdges),
    searchByImage: (_root, { input, first, after, filter }, ctx) =>
      ctx.services.search.searchByImage({ source: toImageSource(input), first: first ?? 10, after, filter }).then(toEdges),
  },
};

function toEdges(page: SearchPage) {
  const connection = toConnection(page);
  return {
    ...connection,
    rankedCount: page.rankedCount,
    reachableCount: page.reachableCount,
    edges: page.items.map(({ cursor, node }) => ({ cursor, node: node.image, itcScore: node.itcScore, itmScore: node.itmScore, score: node.score })),
  };
}
