import GraphQLUpload from 'graphql-upload/GraphQLUpload.mjs';
import { DateTimeResolver, JSONResolver } from 'graphql-scalars';
import type { Resolvers } from '../__generated__/resolvers-types.js';
import { imageResolvers } from './image.resolvers.js';
import { ingestResolvers } from './ingest.resolvers.js';
import { jobResolvers } from './job.resolvers.js';
import { searchResolvers } from './search.resolvers.js';

export const resolvers: Resolvers = {
  Upload: GraphQLUpload,
  JSON: JSONResolver,
  DateTime: DateTimeResolver,
  Image: imageResolvers.Image,
  Node: imageResolvers.Node,
  Job: jobResolvers.Job,
  Query: { ...imageResolvers.Query, ...searchResolvers.Query, ...jobResolvers.Query },
  Mutation: { ...imageResolvers.Mutation, ...ingestResolvers.Mutation },
  Subscription: jobResolvers.Subscription,
};
