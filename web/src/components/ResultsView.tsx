import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, type Connection, type ImageNode, type ResultEdge } from '../api';
import { sentence, signed } from '../format';
import { href, navigate, type Route } from '../router';
import { isRemoved, useCollectionVersion } from '../store';
import { EmptyState, ErrorNotice, MatchMeter, SkeletonGrid, Spinner } from './ui';

const PAGE = 12;

type ListRoute = Extract<Route, { name: 'library' | 'search' | 'similar' }>;

function fetchPage(route: ListRoute, after: string | null, signal: AbortSignal): Promise<Connection> {
  switch (route.name) {
    case 'search':
      return api.search({ text: route.q, first: PAGE, after, rerank: route.rerank, minMatch: route.rerank && route.minMatch > 0 ? route.minMatch : null }, signal);
    case 'similar':
      return api.similar({ id: route.id, first: PAGE, after }, signal);
    case 'library':
      return api.images({ first: PAGE * 2, after }, signal);
  }
}

interface State {
  edges: ResultEdge[];
  totalCount: number;
  endCursor: string | null;
  hasNextPage: boolean;
}

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
    fetchPage(route, null, ctrl.signal).then(
      (c) => {
        if (ctrl.signal.aborted) return;
        setState({ edges: c.edges, totalCount: c.totalCount, endCursor: c.pageInfo.endCursor, hasNextPage: c.pageInfo.hasNextPage });
        setLoading(false);
      },
      (e: unknown) => {
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
        setState((s) => ({
          edges: [...(s?.edges ?? []), ...c.edges],
          totalCount: c.totalCount,
          endCursor: c.pageInfo.endCursor,
          hasNextPage: c.pageInfo.hasNextPage,
        }));
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

  return (
    <section class="results" aria-labelledby="results-title" aria-busy={loading}>
      {heading}
      {loading && !state && <SkeletonGrid count={route.name === 'library' ? 12 : 8} />}
      {error != null && <ErrorNotice error={error} title={errorTitle(route)} onRetry={() => setAttempt((a) => a + 1)} />}
      {!error && state && edges.length === 0 && !loading && <NoResults route={route} onUpload={onUpload} />}
      {state && edges.length > 0 && (
        <div class={`grid${loading ? ' is-refreshing' : ''}`} data-testid="results">
          {edges.map((edge, i) => (
            <ResultCard key={edge.node.id} edge={edge} rank={i + 1} route={route} />
          ))}
        </div>
      )}
      {state && !error && (state.hasNextPage || moreError != null) && (
        <div class="more">
          {moreError != null && <ErrorNotice error={moreError} title="Could not load more" />}
          <button type="button" class="btn btn-secondary" onClick={loadMore} disabled={loadingMore}>
            {loadingMore ? (
              <>
                <Spinner label="Loading more" /> Loading…
              </>
            ) : (
              `Show more (${edges.length} of ${state.totalCount})`
            )}
          </button>
        </div>
      )}
    </section>
  );
}

function errorTitle(route: ListRoute): string {
  if (route.name === 'search') return 'Search failed';
  if (route.name === 'similar') return 'Could not find similar images';
  return 'Could not load your images';
}

function ResultsHeading({ route, total, loading }: { route: ListRoute; total: number | undefined; loading: boolean }) {
  let title: string;
  let sub: string;
  if (route.name === 'search') {
    title = `Results for “${route.q}”`;
    sub = route.rerank ? 'Ranked by image–text matching (ITM)' : 'Ranked by embedding similarity (ITC) only';
    if (route.rerank && route.minMatch > 0) sub += ` · match ≥ ${Math.round(route.minMatch * 100)}%`;
  } else if (route.name === 'similar') {
    title = 'More like this';
    sub = 'Nearest images by visual embedding';
  } else {
    title = 'Your images';
    sub = 'Newest first';
  }
  return (
    <div class="results-head">
      <div>
        <h1 id="results-title">{title}</h1>
        {sub && <p class="muted">{sub}</p>}
      </div>
      <div class="results-meta">
        {route.name === 'similar' && <SimilarSource id={route.id} />}
        {loading ? (
          <span class="muted inline-status">
            <Spinner label={route.name === 'search' ? 'Searching' : 'Loading'} /> {route.name === 'search' ? 'Searching…' : 'Loading…'}
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

function NoResults({ route, onUpload }: { route: ListRoute; onUpload: () => void }) {
  if (route.name === 'library') {
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
    return (
      <EmptyState title="No matching images">
        <p>
          Nothing matched “{route.q}”
          {route.rerank && route.minMatch > 0 ? ` with a match of at least ${Math.round(route.minMatch * 100)}%. Lower the minimum match to see weaker matches.` : '.'}
        </p>
        {route.rerank && route.minMatch > 0 && (
          <button type="button" class="btn btn-secondary" onClick={() => navigate({ ...route, minMatch: 0 })}>
            Show all matches
          </button>
        )}
      </EmptyState>
    );
  }
  return <EmptyState title="No similar images yet">Upload more images to compare this one with.</EmptyState>;
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
          <a class="btn btn-ghost btn-small" href={href({ name: 'similar', id: node.id })}>
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
