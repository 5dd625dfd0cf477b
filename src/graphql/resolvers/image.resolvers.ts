import { describeImage } from '../../domain/image.js';
import type { Resolvers } from '../__generated__/resolvers-types.js';

export const imageResolvers: Resolvers = {
  Image: {
    // DELETING rows are never returned; anything not yet READY is still PROCESSING.
    status: (image) => (image.status === 'READY' ? 'READY' : 'PROCESSING'),
    description: (image, _args, ctx) => describeImage(image, ctx.services.minAltTextMatch),
    url: (image, _args, ctx) => `${ctx.services.publicUrl}/images/${image.id}`,
    thumbnailUrl: (image, _args, ctx) => `${ctx.services.publicUrl}/images/${image.id}/thumbnail`,
  },
  // Images are the only nodes; their ids are UUIDs, unique across types anyway.
  Node: {
    __resolveType: () => 'Image',
  },
  Query: {
    image: (_root, { id }, ctx) => ctx.services.images.getImage(id),
    node: (_root, { id }, ctx) => ctx.services.images.getImage(id),
    images: (_root, { first, after, filter }, ctx) => ctx.services.images.listImages(first ?? 20, after, filter).then(toConnection),
    askImage: (_root, { imageId, question, model }, ctx) => ctx.services.images.askImage(imageId, question, model),
    serviceInfo: (_root, _args, ctx) => ctx.services.info(),
    imagesBySha256: (_root, { sha256 }, ctx) => ctx.services.images.findBySha256s(sha256),
  },
  Mutation: {
    deleteImage: (_root, { id }, ctx) => ctx.services.images.deleteImage(id),
    // Keys the client left out stay absent (unchanged); explicit nulls clear.
    updateImage: (_root, { id, input }, ctx) => ctx.services.images.updateImage(id, input),
    recaption: (_root, { imageId, options }, ctx) => ctx.services.images.recaption(imageId, stripNulls(options ?? {})),
  },
};

export function toConnection<T>(page: {
  items: Array<{ cursor: string; node: T }>;
  hasNextPage: boolean;
  hasPreviousPage: boolean;
  totalCount: number;
}) {
  return {
    edges: page.items,
    totalCount: page.totalCount,
    pageInfo: {
      hasNextPage: page.hasNextPage,
      hasPreviousPage: page.hasPreviousPage,
      startCursor: page.items[0]?.cursor ?? null,
      endCursor: page.items[page.items.length - 1]?.cursor ?? null,
    },
  };
}

/** GraphQL sends explicit nulls; the services' option types use absent keys. */
function stripNulls<T extends object>(value: T): { [K in keyof T]?: Exclude<T[K], null> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null)) as { [K in keyof T]?: Exclude<T[K], null> };
}
