import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, type Connection, type ImageNode, type ResultEdge } from '../api';
import { sentence, signed } from '../format';
import { filterCount, href, navigate, toServerFilter, type ListRoute } from '../router';
import { getQueryImage, isRemoved, useCollectionVersion } from '../store';
import { EmptyState, ErrorNotice, MatchMeter, SkeletonGrid, Spinner } from './ui';

const PAGE = 12;

/** The cut-off a search route applies: none without re-ranking or with "show weaker matches". */
const cutOff = (route: Extract<ListRoute, { name: 'search' }>) => (route.rerank && !route.weak ? route.minMatch : null);

function fetchPage(route: ListRoute, after: string | null, signal: AbortSignal): Promise<Connection> {
  const filter = toServerFilter(route.filter);
  switch (route.name) {
    case 'search':
      return api.search({ text: route.q, first: PAGE, after, mode: route.mode, rerank: route.rerank, minMatch: cutOff(route), filter }, signal);
    case 'image-search': {
      const image = getQueryImage();
      if (!image) return Promise.resolve({ edges: [], pageInfo: { hasNextPage: false, endCursor: null }, totalCount: 0 });
      return api.byImage({ base64: image.base64, first: PAGE, after, filter }, signal);
    }
    case 'similar':
      return api.similar({ id: route.id, first: PAGE, after, filter }, signal);
    case 'library':
      return api.images({ first: PAGE * 2, after, filter }, signal);
  }
}

interface State {
  edges: ResultEdge[];
  totalCount: number;
  endCursor: string | null;
  hasNextPage: boolean;
  rankedCount?: number;
  reachableCount?: number;
  /** Embedding (ITC) order shown while the re-ranked list is computed. */
  preliminary?: boolean;
}

const toState = (c: Connection, edges: ResultEdge[]): State => ({
  edges,
  totalCount: c.totalCount,
  endCursor: c.pageInfo.endCursor,
  hasNextPage: c.pageInfo.hasNextPage,
  rankedCount: c.rankedCount,
  reachableCount: c.reachableCount,
});

/** The grid: the library (newest first), search results or images similar to one image. */
export function ResultsView({ route, onUpload }: { route: ListRoute; onUpload: () => void }) {
  const version = useCollectionVersion();
  const key = JSON.stringify(route);
  const [state, setState] = useState<State | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [loadingMore, setLoadingMore] = useState(false);
  const [moreError, setMoreError] = useState<unknown>(null);
  const [attempt, setAttempt] = useState(0);
  const abortRef = useRef<AbortController | null>(null);

  // A different list starts at its top (its heading says what it is).
  useEffect(() => window.scrollTo({ top: 0 }), [key]);

  useEffect(() => {
    const ctrl = new AbortController();
    abortRef.current?.abort();
    abortRef.current = ctrl;
    setLoading(true);
    setError(null);
    setMoreError(null);
    let settled = false;
    // Re-ranking costs a model run per candidate (seconds with full-size BLIP on a CPU), the
    // embedding order milliseconds: show that first, then the re-ranked list when it is ready.
    if (route.name === 'search' && route.rerank && route.mode !== 'KEYWORD') {
      api.search({ text: route.q, first: PAGE, after: null, mode: route.mode, rerank: false, minMatch: null, filter: toServerFilter(route.filter) }, ctrl.signal).then(
        (c) => {
          if (!ctrl.signal.aborted && !settled) setState({ ...toState(c, c.edges), preliminary: true });
        },
        () => undefined, // the re-ranked request reports errors
      );
    }
    fetchPage(route, null, ctrl.signal).then(
      (c) => {
        settled = true;
        if (ctrl.signal.aborted) return;
        setState(toState(c, c.edges));
        setLoading(false);
      },
      (e: unknown) => {
        settled = true;
        if (ctrl.signal.aborted) return;
        setError(e);
        setState(null);
        setLoading(false);
      },
    );
    return () => ctrl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, version, attempt]);

  const loadMore = useCallback(() => {
    if (!state?.endCursor || loadingMore) return;
    const ctrl = new AbortController();
    abortRef.current = ctrl;
    setLoadingMore(true);
    setMoreError(null);
    fetchPage(route, state.endCursor, ctrl.signal).then(
      (c) => {
        if (ctrl.signal.aborted) return;
        setState((s) => toState(c, [...(s?.edges ?? []), ...c.edges]));
        setLoadingMore(false);
      },
      (e: unknown) => {
        if (ctrl.signal.aborted) return;
        setMoreError(e);
        setLoadingMore(false);
      },
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, state, loadingMore]);

  const edges = (state?.edges ?? []).filter((e) => !isRemoved(e.node.id));
  const heading = <ResultsHeading route={route} total={state?.totalCount} loading={loading} />;
  // With the default cut-off, say how many ranked images it hid, and offer them.
  const hidden = route.name === 'search' && cutOff(route) !== null && state?.rankedCount != null ? state.rankedCount - state.totalCount : 0;
  const complete = state != null && (state.reachableCount == null || state.rankedCount === state.reachableCount || cutOffOf(route) === null);

  return (
    <section class="results" aria-labelledby="results-title" aria-busy={loading}>
      {heading}
      {loading && !state && <SkeletonGrid count={route.name === 'library' ? 12 : 8} />}
      {error != null && <ErrorNotice error={error} title={errorTitle(route)} onRetry={() => setAttempt((a) => a + 1)} />}
      {!error && state && edges.length === 0 && !loading && <NoResults route={route} onUpload={onUpload} hidden={hidden} />}
      {state?.preliminary && loading && (
        <p class="muted reranking" role="status" data-testid="reranking">
          <Spinner label="Re-ranking" /> In embedding order for now; re-ranking by image–text matching…
        </p>
      )}
      {state && edges.length > 0 && (
        <div class={`grid${loading && !state.preliminary ? ' is-refreshing' : ''}`} data-testid="results">
          {edges.map((edge, i) => (
            <ResultCard key={edge.node.id} edge={edge} rank={i + 1} route={route} />
          ))}
        </div>
      )}
      {state && !error && !state.preliminary && (state.hasNextPage || moreError != null) && (
        <div class="more">
          {moreError != null && <ErrorNotice error={moreError} title="Could not load more" onRetry={loadMore} />}
          <button type="button" class="btn btn-secondary" onClick={loadMore} disabled={loadingMore}>
            {loadingMore ? (
              <>
                <Spinner label="Loading more" /> Loading…
              </>
            ) : complete ? (
              `Show more (${edges.length} of ${state.totalCount})`
            ) : (
              `Show more (${edges.length} so far)`
            )}
          </button>
        </div>
      )}
      {state && !error && edges.length > 0 && hidden > 0 && route.name === 'search' && (
        <p class="weak-note" data-testid="weak-note">
          {hidden} weaker {hidden === 1 ? 'match is' : 'matches are'} hidden (match below {Math.round(route.minMatch * 100)}%).{' '}
          <button type="button" class="btn btn-ghost btn-small link-button" onClick={() => navigate({ ...route, weak: true }, true)}>
            Show weaker matches
          </button>
        </p>
      )}
    </section>
  );
}

function cutOffOf(route: ListRoute): number | null {
  return route.name === 'search' ? cutOff(route) : null;
}

function errorTitle(route: ListRoute): string {
  if (route.name === 'search' || route.name === 'image-search') return 'Search failed';
  if (route.name === 'similar') return 'Could not find similar images';
  return 'Could not load your images';
}

function ResultsHeading({ route, total, loading }: { route: ListRoute; total: number | undefined; loading: boolean }) {
  let title: string;
  let sub: string;
  if (route.name === 'search') {
    title = `Results for “${route.q}”`;
    sub =
      route.mode === 'KEYWORD'
        ? 'Images whose caption or alt text has these words'
        : route.mode === 'HYBRID'
          ? 'Words and meaning together'
          : 'Ranked by what the pictures show';
    sub += route.rerank ? ', re-ranked by image–text matching (ITM)' : route.mode === 'SEMANTIC' ? ' (embedding similarity, ITC)' : '';
    const min = cutOff(route);
    if (min !== null) sub += ` · match ≥ ${Math.round(min * 100)}%`;
  } else if (route.name === 'image-search') {
    title = 'Images like yours';
    sub = 'Nearest images by visual embedding; your image is not stored';
  } else if (route.name === 'similar') {
    title = 'More like this';
    sub = 'Nearest images by visual embedding';
  } else {
    title = 'Your images';
    sub = 'Newest first';
  }
  const filters = filterCount(route.filter);
  if (filters) sub += ` · ${filters} ${filters === 1 ? 'filter' : 'filters'}`;
  const busy = route.name === 'search' || route.name === 'image-search';
  return (
    <div class="results-head">
      <div>
        <h1 id="results-title">{title}</h1>
        {sub && <p class="muted">{sub}</p>}
      </div>
      <div class="results-meta">
        {route.name === 'similar' && <SimilarSource id={route.id} />}
        {route.name === 'image-search' && <QuerySource />}
        {loading ? (
          <span class="muted inline-status">
            <Spinner label={busy ? 'Searching' : 'Loading'} /> {busy ? 'Searching…' : 'Loading…'}
          </span>
        ) : total != null ? (
          <span class="count" data-testid="total-count">
            {total} {total === 1 ? 'image' : 'images'}
          </span>
        ) : null}
      </div>
    </div>
  );
}

function QuerySource() {
  const image = getQueryImage();
  if (!image) return null;
  return (
    <span class="source-chip" data-testid="query-image">
      <img src={image.previewUrl} alt="" width={28} height={28} />
      <span title={image.name}>Your image</span>
    </span>
  );
}

function SimilarSource({ id }: { id: string }) {
  const [image, setImage] = useState<ImageNode | null>(null);
  useEffect(() => {
    const ctrl = new AbortController();
    api.image(id, ctrl.signal).then(
      (img) => !ctrl.signal.aborted && setImage(img),
      () => undefined, // the chip is optional; the grid reports errors
    );
    return () => ctrl.abort();
  }, [id]);
  if (!image) return null;
  return (
    <a class="source-chip" href={href({ name: 'image', id })} title={sentence(image.description ?? image.caption)}>
      <img src={image.thumbnailUrl} alt="" width={28} height={28} />
      <span>Compared with this image</span>
    </a>
  );
}

function NoResults({ route, onUpload, hidden }: { route: ListRoute; onUpload: () => void; hidden: number }) {
  const filtered = filterCount(route.filter) > 0;
  const clearFilters = filtered && (
    <button type="button" class="btn btn-secondary" onClick={() => navigate({ ...route, filter: {} })}>
      Clear filters
    </button>
  );
  if (route.name === 'library') {
    if (filtered) {
      return (
        <EmptyState title="No images match these filters">
          <p>Change or clear the filters to see more of your images.</p>
          {clearFilters}
        </EmptyState>
      );
    }
    return (
      <EmptyState title="No images yet">
        <p>Add a few pictures: each one is captioned and indexed so you can search it by describing it.</p>
        <button type="button" class="btn btn-primary" onClick={onUpload}>
          Upload images
        </button>
      </EmptyState>
    );
  }
  if (route.name === 'search') {
    const min = cutOff(route);
    return (
      <EmptyState title="No matching images">
        <p>
          Nothing matched “{route.q}”
          {route.mode === 'KEYWORD' ? ' in captions or alt texts' : ''}
          {min !== null ? ` with a match of at least ${Math.round(min * 100)}%` : ''}
          {filtered ? ' with these filters' : ''}.
          {hidden > 0 ? ` ${hidden} weaker ${hidden === 1 ? 'match was' : 'matches were'} hidden.` : ''}
        </p>
        {min !== null && (
          <button type="button" class="btn btn-secondary" onClick={() => navigate({ ...route, weak: true }, true)}>
            Show weaker matches
          </button>
        )}
        {clearFilters}
      </EmptyState>
    );
  }
  if (route.name === 'image-search') {
    if (!getQueryImage()) {
      return (
        <EmptyState title="Choose an image to search with">
          <p>The image you searched with is not kept (it is never uploaded to your library). Drop an image on the search box, or use its camera button.</p>
        </EmptyState>
      );
    }
    return <EmptyState title="No similar images">{filtered ? <>{clearFilters}</> : 'Upload more images to compare yours with.'}</EmptyState>;
  }
  return <EmptyState title="No similar images yet">{filtered ? <>{clearFilters}</> : 'Upload more images to compare this one with.'}</EmptyState>;
}

function ResultCard({ edge, rank, route }: { edge: ResultEdge; rank: number; route: ListRoute }) {
  const { node } = edge;
  const text = sentence(node.description ?? node.caption) || 'No caption yet';
  return (
    <article class="card" data-testid="result" data-image-id={node.id}>
      <a class="card-link" href={href({ name: 'image', id: node.id })} aria-label={`Open image: ${text}`}>
        <div class="thumb">
          <img src={node.thumbnailUrl} alt={text} loading="lazy" decoding="async" />
          {route.name !== 'library' && <span class="rank">#{rank}</span>}
        </div>
      </a>
      <div class="card-body">
        <p class="caption" data-testid="caption" title={text}>
          {text}
        </p>
        {edge.itcScore != null && (
          <div class="scores">
            {edge.itmScore != null && <MatchMeter value={edge.itmScore} label="Match" />}
            <span class="chip" title="Cosine similarity of the image and text (or image) embeddings, from -1 to 1">
              ITC <b>{signed(edge.itcScore)}</b>
            </span>
          </div>
        )}
        <div class="card-actions">
          <a class="btn btn-ghost btn-small" href={href({ name: 'similar', id: node.id, filter: {} })}>
            <svg viewBox="0 0 20 20" aria-hidden="true" class="icon">
              <rect x="2" y="2" width="7" height="7" rx="1.5" />
              <rect x="11" y="2" width="7" height="7" rx="1.5" />
              <rect x="2" y="11" width="7" height="7" rx="1.5" />
              <rect x="11" y="11" width="7" height="7" rx="1.5" />
            </svg>
            More like this<span class="visually-hidden">: {text}</span>
          </a>
        </div>
      </div>
    </article>
  );
}
