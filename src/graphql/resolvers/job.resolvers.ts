import type { JobRecord } from '../../domain/job.js';
import type { Resolvers } from '../__generated__/resolvers-types.js';
import { toConnection } from './image.resolvers.js';

export const jobResolvers: Resolvers = {
  Job: {
    image: (job, _args, ctx) => (job.imageId ? ctx.services.images.getImage(job.imageId) : null),
  },
  Query: {
    job: (_root, { id }, ctx) => ctx.services.jobs.getJob(id),
    jobs: (_root, { first, after, states, kind }, ctx) => ctx.services.listJobs({ first: first ?? 20, after, states, kind }).then(toConnection),
  },
  Subscription: {
    jobUpdates: {
      subscribe: (_root, { id }, ctx) => ctx.services.jobs.subscribe(id),
      resolve: (job: JobRecord) => job,
    },
  },
};
