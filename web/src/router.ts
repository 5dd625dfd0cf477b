import { useEffect, useState } from 'preact/hooks';
import type { ImageFilter, SearchMode } from './api';

/**
 * Filters as the page keeps them (and the address shows them): content subtypes, day ranges
 * (inclusive, YYYY-MM-DD, UTC days: EXIF times without a zone are stored as wall-clock UTC) and
 * the metadata subset as JSON text.
 */
export interface ListFilter {
  types?: string[];
  addedFrom?: string;
  addedTo?: string;
  takenFrom?: string;
  takenTo?: string;
  metadata?: string;
}

/** The ITM match probability below which results are hidden unless "show weaker matches" is on. */
export const DEFAULT_MIN_MATCH = 0.5;

/** Hash routes, so that the service can serve one static index.html and Back works. */
export type Route =
  | { name: 'library'; filter: ListFilter }
  | { name: 'search'; q: string; mode: SearchMode; rerank: boolean; minMatch: number; weak: boolean; filter: ListFilter }
  | { name: 'image-search'; filter: ListFilter }
  | { name: 'similar'; id: string; filter: ListFilter }
  | { name: 'image'; id: string };

export type ListRoute = Exclude<Route, { name: 'image' }>;

const MODES: Record<string, SearchMode> = { meaning: 'SEMANTIC', words: 'KEYWORD', both: 'HYBRID' };
const MODE_PARAM: Record<SearchMode, string> = { SEMANTIC: 'meaning', KEYWORD: 'words', HYBRID: 'both' };
const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** Re-ranking is on by default, except for keyword search (ranked by the words). */
export const defaultRerank = (mode: SearchMode): boolean => mode !== 'KEYWORD';

function readFilter(params: URLSearchParams): ListFilter {
  const f: ListFilter = {};
  const types = params.get('type')?.split(',').map((t) => t.trim().toLowerCase()).filter((t) => /^[a-z0-9.+-]+$/.test(t));
  if (types?.length) f.types = types;
  const range = (name: string): [string | undefined, string | undefined] => {
    const [from, to] = (params.get(name) ?? '').split('..');
    return [from && DAY.test(from) ? from : undefined, to && DAY.test(to) ? to : undefined];
  };
  [f.addedFrom, f.addedTo] = range('added');
  [f.takenFrom, f.takenTo] = range('taken');
  const meta = params.get('meta');
  if (meta) f.metadata = meta;
  for (const k of Object.keys(f) as Array<keyof ListFilter>) if (f[k] === undefined) delete f[k];
  return f;
}

function writeFilter(p: URLSearchParams, f: ListFilter): void {
  if (f.types?.length) p.set('type', f.types.join(','));
  if (f.addedFrom || f.addedTo) p.set('added', `${f.addedFrom ?? ''}..${f.addedTo ?? ''}`);
  if (f.takenFrom || f.takenTo) p.set('taken', `${f.takenFrom ?? ''}..${f.takenTo ?? ''}`);
  if (f.metadata) p.set('meta', f.metadata);
}

export function filterCount(f: ListFilter): number {
  return [f.types?.length, f.addedFrom || f.addedTo, f.takenFrom || f.takenTo, f.metadata].filter(Boolean).length;
}

/** The metadata text as a JSON object, or an error message for people. */
export function parseMetadataFilter(text: string): { value?: Record<string, unknown>; error?: string } {
  if (!text.trim()) return {};
  try {
    const value = JSON.parse(text) as unknown;
    if (!value || typeof value !== 'object' || Array.isArray(value)) return { error: 'Metadata must be a JSON object, e.g. {"album": "trip"}' };
    return { value: value as Record<string, unknown> };
  } catch {
    return { error: 'Metadata is not valid JSON, e.g. {"album": "trip"}' };
  }
}

const nextDay = (day: string) => new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString();

/** The server's ImageFilter: inclusive day ranges become [from 00:00, the day after to 00:00) in UTC. */
export function toServerFilter(f: ListFilter): ImageFilter | null {
  const out: ImageFilter = {};
  if (f.types?.length) out.mimeTypes = f.types.map((t) => `image/${t}`);
  if (f.addedFrom) out.createdAfter = `${f.addedFrom}T00:00:00Z`;
  if (f.addedTo) out.createdBefore = nextDay(f.addedTo);
  if (f.takenFrom) out.takenAfter = `${f.takenFrom}T00:00:00Z`;
  if (f.takenTo) out.takenBefore = nextDay(f.takenTo);
  const meta = f.metadata ? parseMetadataFilter(f.metadata).value : undefined;
  if (meta) out.metadata = meta;
  return Object.keys(out).length ? out : null;
}

export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#/, '') || '/';
  const [pathPart = '/', queryPart = ''] = raw.split('?');
  const params = new URLSearchParams(queryPart);
  const parts = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
  const filter = readFilter(params);
  if (parts[0] === 'search') {
    const q = params.get('q')?.trim() ?? '';
    if (!q) return { name: 'library', filter };
    const mode = MODES[params.get('by') ?? ''] ?? 'SEMANTIC';
    const rerankParam = params.get('rerank');
    const rerank = rerankParam === null ? defaultRerank(mode) : rerankParam !== '0';
    const min = Number(params.get('min') ?? DEFAULT_MIN_MATCH);
    return {
      name: 'search',
      q,
      mode,
      rerank,
      minMatch: Number.isFinite(min) ? Math.min(1, Math.max(0, min)) : DEFAULT_MIN_MATCH,
      weak: params.get('weak') === '1',
      filter,
    };
  }
  if (parts[0] === 'search-image') return { name: 'image-search', filter };
  if (parts[0] === 'similar' && parts[1]) return { name: 'similar', id: parts[1], filter };
  if (parts[0] === 'image' && parts[1]) return { name: 'image', id: parts[1] };
  return { name: 'library', filter };
}

export function href(route: Route): string {
  const p = new URLSearchParams();
  const withQuery = (path: string) => (p.toString() ? `${path}?${p.toString()}` : path);
  switch (route.name) {
    case 'library':
      writeFilter(p, route.filter);
      return withQuery('#/');
    case 'search':
      p.set('q', route.q);
      if (route.mode !== 'SEMANTIC') p.set('by', MODE_PARAM[route.mode]);
      if (route.rerank !== defaultRerank(route.mode)) p.set('rerank', route.rerank ? '1' : '0');
      // Kept while re-ranking is off, so that turning it back on restores them.
      if (route.minMatch !== DEFAULT_MIN_MATCH) p.set('min', String(route.minMatch));
      if (route.weak) p.set('weak', '1');
      writeFilter(p, route.filter);
      return withQuery('#/search');
    case 'image-search':
      writeFilter(p, route.filter);
      return withQuery('#/search-image');
    case 'similar':
      writeFilter(p, route.filter);
      return withQuery(`#/similar/${encodeURIComponent(route.id)}`);
    case 'image':
      return `#/image/${encodeURIComponent(route.id)}`;
  }
}

export function navigate(route: Route, replace = false): void {
  const target = href(route);
  if (replace) {
    history.replaceState(null, '', target);
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  } else if (location.hash !== target) {
    location.hash = target; // fires hashchange
  } else {
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  }
}

let lastList: ListRoute | null = null;

/** The last list (library, search, similar) shown: where the image view goes back to. */
export function lastListRoute(): ListRoute | null {
  return lastList;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  if (route.name !== 'image') lastList = route;
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
