import extractFiles from 'extract-files/extractFiles.mjs';
import isExtractableFile, { type ExtractableFile } from 'extract-files/isExtractableFile.mjs';
import { askForKey, authHeaders } from './api-key.js';

/** The public GraphQL API, nothing else: queries as JSON POSTs, uploads per the GraphQL multipart request spec. */
const ENDPOINT = '/graphql';

export interface ImageNode {
  id: string;
  metadata: Record<string, unknown> | null;
  takenAt: string | null;
  cameraMake: string | null;
  cameraModel: string | null;
  caption: string | null;
  captionMatch: number | null;
  altText: string | null;
  altTextMatch: number | null;
  description: string | null;
  width: number;
  height: number;
  mimeType: string;
  byteSize: number;
  url: string;
  thumbnailUrl: string;
  createdAt: string;
}

export interface PageInfo {
  hasNextPage: boolean;
  endCursor: string | null;
}

export interface ResultEdge {
  cursor: string;
  node: ImageNode;
  itcScore?: number;
  itmScore?: number | null;
  score?: number;
}

export interface Connection {
  edges: ResultEdge[];
  pageInfo: PageInfo;
  totalCount: number;
  /** Search connections: images ranked so far, and how many the search can reach. */
  rankedCount?: number;
  reachableCount?: number;
}

export type SearchMode = 'SEMANTIC' | 'KEYWORD' | 'HYBRID';

/** The server's ImageFilter; dates as ISO strings. */
export interface ImageFilter {
  metadata?: Record<string, unknown>;
  createdAfter?: string;
  createdBefore?: string;
  takenAfter?: string;
  takenBefore?: string;
  mimeTypes?: string[];
}

export interface ServiceInfo {
  modelId: string;
  indexedImages: number;
  maxTextChars: number;
  maxUploadBytes: number;
  maxImagePixels: number;
  maxPageSize: number;
  acceptedMimeTypes: string[];
  models: ModelOption[];
}

/** A loaded model (serviceInfo.models): the page offers those with the `vqa` task as answerers. */
export interface ModelOption {
  name: string;
  family: string;
  tasks: string[];
  defaultAnswerer: boolean;
}

/** An error a person can read: `message` is for people, `code` is the server's extensions.code. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status = 0,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const IMAGE_FIELDS = `
  id caption captionMatch altText altTextMatch description width height mimeType byteSize url thumbnailUrl createdAt
  metadata takenAt cameraMake cameraModel
`;

const SEARCH_CONNECTION = `
  totalCount rankedCount reachableCount
  pageInfo { hasNextPage endCursor }
  edges { cursor itcScore itmScore score node { ${IMAGE_FIELDS} } }
`;

export const QUERIES = {
  search: `query Search($text: String!, $first: Int, $after: String, $mode: SearchMode, $rerank: Boolean, $minMatch: Float, $filter: ImageFilter) {
    searchImages(text: $text, first: $first, after: $after, mode: $mode, rerank: $rerank, minMatch: $minMatch, filter: $filter) { ${SEARCH_CONNECTION} }
  }`,
  similar: `query Similar($id: ID!, $first: Int, $after: String, $filter: ImageFilter) {
    similarImages(imageId: $id, first: $first, after: $after, filter: $filter) { ${SEARCH_CONNECTION} }
  }`,
  byImage: `query ByImage($input: ImageQueryInput!, $first: Int, $after: String, $filter: ImageFilter) {
    searchByImage(input: $input, first: $first, after: $after, filter: $filter) { ${SEARCH_CONNECTION} }
  }`,
  images: `query Images($first: Int, $after: String, $filter: ImageFilter) {
    images(first: $first, after: $after, filter: $filter) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { ${IMAGE_FIELDS} } }
    }
  }`,
  image: `query Image($id: ID!) { image(id: $id) { ${IMAGE_FIELDS} } }`,
  ask: `query Ask($id: ID!, $question: String!, $model: String) { askImage(imageId: $id, question: $question, model: $model) { answer question model { name family } } }`,
  info: `query Info { serviceInfo { modelId indexedImages maxTextChars maxUploadBytes maxImagePixels maxPageSize acceptedMimeTypes models { name family tasks defaultAnswerer } } }`,
  remove: `mutation Delete($id: ID!) { deleteImage(id: $id) { id deleted } }`,
  recaption: `mutation Recaption($id: ID!, $options: CaptionOptions) { recaption(imageId: $id, options: $options) { ${IMAGE_FIELDS} } }`,
  update: `mutation Update($id: ID!, $input: UpdateImageInput!) { updateImage(id: $id, input: $input) { ${IMAGE_FIELDS} } }`,
  ingest: `mutation Ingest($input: IngestImageInput!) {
    ingestImage(input: $input) { created image { ${IMAGE_FIELDS} } }
  }`,
} as const;

interface GraphQLBody<T> {
  data?: T | null;
  errors?: Array<{ message: string; extensions?: { code?: string } }>;
}

/** What each server code means to a person (the server's own message is for developers). */
const FRIENDLY: Record<string, string> = {
  UNSUPPORTED_IMAGE: 'This file is not an image blip-search can read. Use PNG, JPEG, WebP, GIF, TIFF, AVIF or HEIF.',
  PAYLOAD_TOO_LARGE: 'This image is larger than the server accepts.',
  NOT_FOUND: 'This image is not here any more. It may have been deleted.',
  ORIGINAL_MISSING: 'The stored file of this image is missing on the server. Ask whoever runs it to restore the file, or delete the image.',
  SERVICE_UNAVAILABLE: 'The model is busy or still starting. Please try again in a moment.',
  INTERNAL_SERVER_ERROR: 'Something went wrong on the server. Please try again.',
  GRAPHQL_VALIDATION_FAILED: 'The server did not accept this request. Reloading the page may help.',
  GRAPHQL_PARSE_FAILED: 'The server did not accept this request. Reloading the page may help.',
  NETWORK: 'Cannot reach the server. Check that blip-search is running, then try again.',
  ABORTED: 'Cancelled.',
  UNAUTHENTICATED: 'This server needs an API key. Reload the page to enter one.',
  FORBIDDEN: 'Your API key does not allow this. Ask for a key with a larger scope.',
};

/**
 * A message for people: a plain sentence for each server code; for input problems
 * (BAD_USER_INPUT) the server's own words, which name the field and the limit.
 */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return FRIENDLY[error.code] ?? error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Whether trying the same request again may succeed (the server or the network, not the input). */
export function isRetryable(error: unknown): boolean {
  if (!(error instanceof ApiError)) return true;
  return ['NETWORK', 'SERVICE_UNAVAILABLE', 'INTERNAL_SERVER_ERROR', 'ABORTED', 'HTTP'].includes(error.code) || error.status >= 500;
}

function toApiError<T>(body: GraphQLBody<T> | undefined, status: number): ApiError {
  const first = body?.errors?.[0];
  if (first) return new ApiError(first.message, first.extensions?.code ?? 'UNKNOWN', status);
  if (status === 413) return new ApiError('The file is larger than the server accepts.', 'PAYLOAD_TOO_LARGE', status);
  return new ApiError(`The server answered with HTTP ${status}.`, status >= 500 ? 'INTERNAL_SERVER_ERROR' : 'HTTP', status);
}

function unwrap<T>(body: GraphQLBody<T> | undefined, status: number): T {
  if (body?.data && !body.errors?.length) return body.data;
  throw toApiError(body, status);
}

type ConnectivityListener = (reachable: boolean) => void;
const connectivity = new Set<ConnectivityListener>();
/** Told after every request whether the server answered at all (the footer's status dot). */
export function onConnectivity(listener: ConnectivityListener): () => void {
  connectivity.add(listener);
  return () => connectivity.delete(listener);
}
const reachable = (ok: boolean) => connectivity.forEach((l) => l(ok));

/** One GraphQL operation over fetch; asks for an API key and repeats once when the server wants one. */
export async function gql<T>(query: string, variables: Record<string, unknown> = {}, signal?: AbortSignal): Promise<T> {
  try {
    return await gqlOnce<T>(query, variables, signal);
  } catch (error) {
    if (error instanceof ApiError && (error.code === 'UNAUTHENTICATED' || error.code === 'FORBIDDEN') && askForKey(error.code)) {
      return gqlOnce<T>(query, variables, signal);
    }
    throw error;
  }
}

async function gqlOnce<T>(query: string, variables: Record<string, unknown>, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(ENDPOINT, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', ...authHeaders() },
      body: JSON.stringify({ query, variables }),
      signal,
    });
  } catch (error) {
    if (signal?.aborted) throw error;
    reachable(false);
    throw new ApiError('Network error', 'NETWORK');
  }
  reachable(true);
  let body: GraphQLBody<T> | undefined;
  try {
    body = (await res.json()) as GraphQLBody<T>;
  } catch {
    body = undefined;
  }
  return unwrap(body, res.status);
}

export interface IngestResult {
  created: boolean;
  image: ImageNode;
}

export interface UploadHandle {
  promise: Promise<IngestResult>;
  abort(): void;
}

/**
 * ingestImage with a file, as a GraphQL multipart request: extract-files finds the files in the
 * operation and FormData encodes the body; XMLHttpRequest reports upload progress, which fetch
 * cannot. `Apollo-Require-Preflight` satisfies the server's CSRF prevention.
 */
export function uploadImage(file: File, onProgress: (fraction: number) => void, extra: { altText?: string } = {}): UploadHandle {
  const operation = { query: QUERIES.ingest, variables: { input: { file, ...extra } } };
  const { clone, files } = extractFiles<ExtractableFile>(operation, isExtractableFile);
  const form = new FormData();
  form.append('operations', JSON.stringify(clone));
  const map: Record<string, string[]> = {};
  let i = 0;
  files.forEach((paths) => {
    map[String(i++)] = paths;
  });
  form.append('map', JSON.stringify(map));
  i = 0;
  files.forEach((_paths, f) => {
    form.append(String(i++), f, f instanceof File ? f.name : undefined);
  });

  const xhr = new XMLHttpRequest();
  const promise = new Promise<IngestResult>((resolve, reject) => {
    xhr.open('POST', ENDPOINT);
    xhr.setRequestHeader('Apollo-Require-Preflight', 'true');
    xhr.setRequestHeader('Accept', 'application/json');
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.responseType = 'text';
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total);
    };
    xhr.upload.onload = () => onProgress(1);
    xhr.onload = () => {
      let body: GraphQLBody<{ ingestImage: IngestResult }> | undefined;
      try {
        body = JSON.parse(xhr.responseText) as GraphQLBody<{ ingestImage: IngestResult }>;
      } catch {
        body = undefined;
      }
      try {
        resolve(unwrap(body, xhr.status).ingestImage);
      } catch (error) {
        // The upload is not repeated by itself (the file may be large); with a key, "retry" works.
        if (error instanceof ApiError && (error.code === 'UNAUTHENTICATED' || error.code === 'FORBIDDEN')) askForKey(error.code);
        reject(error);
      }
    };
    xhr.onerror = () => {
      reachable(false);
      reject(new ApiError('Network error', 'NETWORK'));
    };
    xhr.onabort = () => reject(new ApiError('Upload cancelled', 'ABORTED'));
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}

type Filtered = { filter?: ImageFilter | null };

export const api = {
  search: (
    v: { text: string; first: number; after?: string | null; mode: SearchMode; rerank: boolean; minMatch: number | null } & Filtered,
    signal?: AbortSignal,
  ) => gql<{ searchImages: Connection }>(QUERIES.search, v, signal).then((d) => d.searchImages),
  similar: (v: { id: string; first: number; after?: string | null } & Filtered, signal?: AbortSignal) =>
    gql<{ similarImages: Connection }>(QUERIES.similar, v, signal).then((d) => d.similarImages),
  /** The query image travels as base64 in a JSON request: no multipart, and it is not stored. */
  byImage: (v: { base64: string; first: number; after?: string | null } & Filtered, signal?: AbortSignal) =>
    gql<{ searchByImage: Connection }>(QUERIES.byImage, { input: { base64: v.base64 }, first: v.first, after: v.after, filter: v.filter }, signal).then(
      (d) => d.searchByImage,
    ),
  images: (v: { first: number; after?: string | null } & Filtered, signal?: AbortSignal) =>
    gql<{ images: Connection }>(QUERIES.images, v, signal).then((d) => d.images),
  image: (id: string, signal?: AbortSignal) => gql<{ image: ImageNode | null }>(QUERIES.image, { id }, signal).then((d) => d.image),
  ask: (id: string, question: string, model?: string) =>
    gql<{ askImage: { answer: string; question: string; model: { name: string; family: string } } }>(QUERIES.ask, { id, question, model: model ?? null }).then(
      (d) => d.askImage,
    ),
  info: () => gql<{ serviceInfo: ServiceInfo }>(QUERIES.info).then((d) => d.serviceInfo),
  update: (id: string, input: { altText?: string | null; metadata?: Record<string, unknown> | null }) =>
    gql<{ updateImage: ImageNode }>(QUERIES.update, { id, input }).then((d) => d.updateImage),
  remove: (id: string) => gql<{ deleteImage: { id: string; deleted: boolean } }>(QUERIES.remove, { id }).then((d) => d.deleteImage),
  recaption: (id: string, options: { numBeams: number }) =>
    gql<{ recaption: ImageNode }>(QUERIES.recaption, { id, options }).then((d) => d.recaption),
};
