import type { ModelInfo } from '../services/answerer-registry.js';
import type { Principal } from '../domain/api-key.js';
import type { ImageService } from '../services/image.service.js';
import type { IngestService } from '../services/ingest.service.js';
import type { JobQueueService } from '../services/job-queue.service.js';
import type { listJobs } from '../services/job-list.js';
import type { SearchService } from '../services/search.service.js';

/** What serviceInfo reports: the model, the index, and the limits a client should respect. */
export interface ServiceInfoValue {
  modelId: string;
  embedDim: number;
  indexedImages: number;
  maxTextChars: number;
  maxUploadBytes: number;
  maxImagePixels: number;
  maxPageSize: number;
  defaultCandidates: number;
  maxCandidates: number;
  acceptedMimeTypes: string[];
  models: ModelInfo[];
}

export interface GraphQLServices {
  ingest: IngestService;
  search: SearchService;
  jobs: JobQueueService;
  /** `jobs` with the configured page limit bound (src/services/job-list.ts). */
  listJobs: (args: Omit<Parameters<typeof listJobs>[1], never>) => ReturnType<typeof listJobs>;
  images: ImageService;
  info: () => ServiceInfoValue;
  minAltTextMatch: number;
  /** PUBLIC_URL without its trailing slash, or '' for relative image URLs. */
  publicUrl: string;
}

/** Per-request context: services, and who asks (src/http/authenticate.ts); resolvers never reach past them. */
export interface GraphQLContext {
  services: GraphQLServices;
  principal: Principal;
}
