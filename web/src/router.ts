import { useEffect, useState } from 'preact/hooks';

/** Hash routes, so that the service can serve one static index.html and Back works. */
export type Route =
  | { name: 'library' }
  | { name: 'search'; q: string; rerank: boolean; minMatch: number }
  | { name: 'similar'; id: string }
  | { name: 'image'; id: string };

export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#/, '') || '/';
  const [pathPart = '/', queryPart = ''] = raw.split('?');
  const params = new URLSearchParams(queryPart);
  const parts = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'search') {
    const q = params.get('q')?.trim() ?? '';
    if (!q) return { name: 'library' };
    const min = Number(params.get('min') ?? '0');
    return { name: 'search', q, rerank: params.get('rerank') !== '0', minMatch: Number.isFinite(min) ? Math.min(1, Math.max(0, min)) : 0 };
  }
  if (parts[0] === 'similar' && parts[1]) return { name: 'similar', id: parts[1] };
  if (parts[0] === 'image' && parts[1]) return { name: 'image', id: parts[1] };
  return { name: 'library' };
}

export function href(route: Route): string {
  switch (route.name) {
    case 'library':
      return '#/';
    case 'search': {
      const p = new URLSearchParams({ q: route.q });
      if (!route.rerank) p.set('rerank', '0');
      if (route.rerank && route.minMatch > 0) p.set('min', String(route.minMatch));
      return `#/search?${p.toString()}`;
    }
    case 'similar':
      return `#/similar/${encodeURIComponent(route.id)}`;
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
  }
}

let lastList: Route | null = null;

/** The last list (library, search, similar) shown: where the image view goes back to. */
export function lastListRoute(): Route | null {
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
