import type { Principal } from '../domain/api-key.js';
import type { ImageService } from '../services/image.service.js';
import type { IngestService } from '../services/ingest.service.js';
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
}

export interface GraphQLServices {
  ingest: IngestService;
  search: SearchService;
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
