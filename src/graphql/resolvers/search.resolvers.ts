import type { SearchHit } from '../../domain/search.js';
import type { Resolvers } from '../__generated__/resolvers-types.js';
import { toConnection } from './image.resolvers.js';

export const searchResolvers: Resolvers = {
  Query: {
    searchImages: (_root, args, ctx) => ctx.services.search.searchImages({ ...args, first: args.first ?? 10 }).then(toEdges),
    similarImages: (_root, args, ctx) => ctx.services.search.similarImages({ ...args, first: args.first ?? 10 }).then(toEdges),
  },
};

function toEdges(page: Parameters<typeof toConnection<SearchHit>>[0]) {
  const connection = toConnection(page);
  return {
    ...connection,
    edges: page.items.map(({ cursor, node }) => ({ cursor, node: node.image, itcScore: node.itcScore, itmScore: node.itmScore, score: node.score })),
  };
}
