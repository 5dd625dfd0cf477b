import type { ImageService } from '../services/image.service.js';
import type { IngestService } from '../services/ingest.service.js';
import type { SearchService } from '../services/search.service.js';

export interface GraphQLServices {
  ingest: IngestService;
  search: SearchService;
  images: ImageService;
  info: () => { modelId: string; embedDim: number; indexedImages: number };
  minAltTextMatch: number;
}

/** Per-request context: services only; resolvers never reach past them. */
export interface GraphQLContext {
  services: GraphQLServices;
}
