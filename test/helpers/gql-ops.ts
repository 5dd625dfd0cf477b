import { expect } from 'vitest';
import type { TestServer } from './test-server.js';

/** GraphQL operations the API tests share. */
export const IMAGE_FIELDS = 'id caption captionMatch altText altTextMatch description mimeType metadata takenAt cameraMake cameraModel createdAt url thumbnailUrl';

/** The fields of IMAGE_FIELDS, as the API returns them. */
export interface ImageJson {
  id: string;
  caption: string | null;
  captionMatch: number | null;
  altText: string | null;
  altTextMatch: number | null;
  description: string | null;
  mimeType: string;
  metadata: unknown;
  takenAt: string | null;
  cameraMake: string | null;
  cameraModel: string | null;
  createdAt: string;
  url: string;
  thumbnailUrl: string;
}

export async function ingest(server: TestServer, bytes: Buffer, input: { altText?: string; metadata?: unknown } = {}): Promise<ImageJson> {
  const res = await server.gql(`mutation($input: IngestImageInput!) { ingestImage(input: $input) { created image { ${IMAGE_FIELDS} } } }`, {
    input: { base64: bytes.toString('base64'), ...input },
  });
  expect(res.errors).toBeUndefined();
  return res.data.ingestImage.image;
}

export interface Edge {
  cursor: string;
  itcScore: number;
  itmScore: number | null;
  score: number;
  node: { id: string; caption: string | null; altText: string | null; metadata: unknown };
}

export interface SearchResult {
  totalCount: number;
  rankedCount: number;
  reachableCount: number;
  edges: Edge[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; endCursor: string | null };
}

const CONNECTION = `totalCount rankedCount reachableCount edges { cursor itcScore itmScore score node { id caption altText metadata } } pageInfo { hasNextPage hasPreviousPage endCursor }`;

export const SEARCH = `query($text: String!, $first: Int, $after: String, $mode: SearchMode, $rerank: Boolean, $candidates: Int, $minMatch: Float, $filter: ImageFilter) {
  searchImages(text: $text, first: $first, after: $after, mode: $mode, rerank: $rerank, candidates: $candidates, minMatch: $minMatch, filter: $filter) { ${CONNECTION} }
}`;

export const SIMILAR = `query($id: ID!, $first: Int, $after: String, $filter: ImageFilter) {
  similarImages(imageId: $id, first: $first, after: $after, filter: $filter) { ${CONNECTION} }
}`;

export const BY_IMAGE = `query($input: ImageQueryInput!, $first: Int, $after: String, $filter: ImageFilter) {
  searchByImage(input: $input, first: $first, after: $after, filter: $filter) { ${CONNECTION} }
}`;

export const IMAGES = `query($first: Int, $after: String, $filter: ImageFilter) {
  images(first: $first, after: $after, filter: $filter) { totalCount edges { cursor node { id createdAt } } pageInfo { hasNextPage hasPreviousPage endCursor } }
}`;

export async function search(server: TestServer, variables: Record<string, unknown>): Promise<SearchResult> {
  const res = await server.gql(SEARCH, variables);
  expect(res.errors).toBeUndefined();
  return res.data.searchImages;
}

/** Every page of a connection query, following endCursor; `between` runs before each next page. */
export async function allPages<T extends { pageInfo: { hasNextPage: boolean; endCursor: string | null } }>(
  fetchPage: (after: string | null) => Promise<T>,
  between: (pageIndex: number) => Promise<void> = async () => undefined,
  maxPages = 100,
): Promise<T[]> {
  const pages: T[] = [];
  let after: string | null = null;
  for (let i = 0; i < maxPages; i++) {
    const page = await fetchPage(after);
    pages.push(page);
    if (!page.pageInfo.hasNextPage) return pages;
    after = page.pageInfo.endCursor;
    await between(i);
  }
  throw new Error(`still paging after ${maxPages} pages`);
}

export const ids = (edges: Array<{ node: { id: string } }>) => edges.map((e) => e.node.id);
