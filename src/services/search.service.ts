import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { l2Normalize } from '../domain/embedding.js';
import { InvalidInputError, NotFoundError } from '../domain/errors.js';
import type { ImageRecord } from '../domain/image.js';
import { filterKey, isEmptyFilter, type ImageFilter } from '../domain/image-filter.js';
import { decodeListCursor, encodeListCursor, requireFirst } from '../domain/pagination.js';
import type { SearchHit, SearchMode, SearchPage } from '../domain/search.js';
import type { BlipEngine } from '../ml/blip-engine.js';
import { HybridCandidates, KeywordCandidates, VectorCandidates, type Candidate, type CandidateSource } from './candidate-sources.js';
import { readImageSource, type ImageSource } from './image-source.js';
import { requireFilter, requireImageId, requireIntInRange, requireNumberInRange, requireText, type ImageFilterInput } from './input-rules.js';
import type { ItmStateCache } from './itm-state-cache.js';
import { keywordTerms } from './keyword-terms.js';
import { RankedList, RankedListCache } from './ranked-list.js';
import type { ImageQueries, ImageVectors, SearchRows } from './ports.js';
import { invariant } from '../lib/invariant.js';

export interface SearchImagesQuery {
  text: string;
  first: number;
  after?: string | null | undefined;
  mode?: SearchMode | null | undefined;
  /** Default: true for SEMANTIC and HYBRID, false for KEYWORD. */
  rerank?: boolean | null | undefined;
  candidates?: number | null | undefined;
  minMatch?: number | null | undefined;
  filter?: ImageFilterInput | null | undefined;
}

export interface SimilarImagesQuery {
  imageId: string;
  first: number;
  after?: string | null | undefined;
  filter?: ImageFilterInput | null | undefined;
}

export interface ImageQuery {
  source: ImageSource;
  first: number;
  after?: string | null | undefined;
  filter?: ImageFilterInput | null | undefined;
}

export interface SearchSettings {
  maxPageSize: number;
  maxTextChars: number;
  maxUploadBytes: number;
  /** SEARCH_CANDIDATES when set; else the model's own default (its manifest), else 128. */
  defaultCandidates: number | undefined;
  maxCandidates: number;
  /** A filter leaving at most this many images ranks them by an exact scan (src/services/candidate-sources.ts). */
  exactMaxRows: number;
}

/** BLIP's own retrieval evaluation re-ranks 128 candidates for 1000 images (docs/models.md). */
export const FALLBACK_SEARCH_CANDIDATES = 128;

/** Most keyword matches a KEYWORD or HYBRID search considers (the database ranks them first). */
const MAX_KEYWORD_MATCHES = 10_000;

/**
 * Retrieval as BLIP evaluates it (docs/blip.md): ITC cosine picks `candidates` images (from the
 * HNSW index, or by an exact scan of a selective filter's rows), ITM re-scores them, score = ITM
 * match logit + cosine. KEYWORD and HYBRID draw candidates from the database's full-text search
 * (HYBRID fuses it with the ITC ranking first). Results are ranked lists that grow a window of
 * `candidates` at a time as pages reach their end (src/services/ranked-list.ts); turning a page
 * within a list costs no inference.
 */
export class SearchService {
  private readonly textEmbeddings = new LRUCache<string, Float32Array>({ max: 1000 });
  private readonly imageEmbeddings = new LRUCache<string, Float32Array>({ max: 100 });
  private readonly lists = new RankedListCache();

  constructor(
    private readonly engine: BlipEngine,
    private readonly repo: SearchRows,
    private readonly queries: ImageQueries,
    private readonly index: ImageVectors,
    private readonly itmStates: ItmStateCache,
    private readonly settings: SearchSettings,
  ) {}

  async searchImages(query: SearchImagesQuery): Promise<SearchPage> {
    const text = requireText(query.text, 'text', this.settings.maxTextChars);
    const first = requireFirst(query.first, this.settings.maxPageSize);
    const mode = query.mode ?? 'SEMANTIC';
    const rerank = query.rerank ?? mode !== 'KEYWORD';
    const candidates = requireIntInRange(
      query.candidates ?? Math.min(this.settings.maxCandidates, Math.max(this.defaultCandidates, first)),
      'candidates',
      1,
      this.settings.maxCandidates,
    );
    const minMatch = query.minMatch == null ? null : requireNumberInRange(query.minMatch, 'minMatch', 0, 1);
    if (minMatch !== null && !rerank) {
      throw new InvalidInputError('minMatch needs rerank: true (it is a cut-off on the ITM match probability)', { argument: 'minMatch' });
    }
    const filter = requireFilter(query.filter);
    // `candidates` shapes a new list but is not part of its identity: a cursor may come back with
    // another page size (and so another default), and continues the list it names.
    const key = JSON.stringify(['text', text, mode, rerank, minMatch, filterKey(filter)]);
    return this.page(key, candidates, query.after, first, filter, async () => {
      const vector = await this.embedText(text);
      const source = await this.textSource(mode, text, vector, filter);
      return new RankedList(key, {
        window: candidates,
        fixedWindows: rerank,
        minMatch,
        source,
        score: (found) => this.score(found, rerank ? text : null),
      });
    });
  }

  /** Candidates re-ranked when a query names none. */
  get defaultCandidates(): number {
    return this.settings.defaultCandidates ?? this.engine.defaultSearchCandidates ?? FALLBACK_SEARCH_CANDIDATES;
  }

  /** Images nearest to a stored image by ITC image embedding (the image itself excluded). */
  async similarImages(query: SimilarImagesQuery): Promise<SearchPage> {
    const id = requireImageId(query.imageId, 'imageId');
    const first = requireFirst(query.first, this.settings.maxPageSize);
    const filter = requireFilter(query.filter);
    const image = await this.repo.findById(id);
    if (!image) throw new NotFoundError('Image', id);
    const key = JSON.stringify(['similar', image.id, filterKey(filter)]);
    return this.page(key, 0, query.after, first, filter, async () => {
      const vector = await this.repo.getEmbedding(image.label, this.engine.modelId);
      const source: CandidateSource = vector
        ? await this.vectorSource(vector, filter, new Set([image.label]))
        : { reachable: 0, exhausted: true, next: () => [] };
      return new RankedList(key, { window: this.defaultCandidates, fixedWindows: false, minMatch: null, source, score: (found) => this.score(found, null) });
    });
  }

  /**
   * Images nearest to an uploaded one by ITC image embedding. The query image is decoded and
   * embedded at interactive priority and kept only as a vector in memory (by its sha256, so
   * that paging with the same image does not embed it again); nothing is stored.
   */
  async searchByImage(query: ImageQuery): Promise<SearchPage> {
    const first = requireFirst(query.first, this.settings.maxPageSize);
    const filter = requireFilter(query.filter);
    const bytes = await readImageSource(query.source, this.settings.maxUploadBytes);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const key = JSON.stringify(['image', sha256, filterKey(filter)]);
    return this.page(key, 0, query.after, first, filter, async () => {
      const cacheKey = `${this.engine.modelId}\u0000${sha256}`;
      let vector = this.imageEmbeddings.get(cacheKey);
      if (!vector) {
        const loaded = await this.engine.loadImage(bytes);
        vector = (await this.engine.embedImage(loaded, { priority: 'interactive' })).feature;
        this.imageEmbeddings.set(cacheKey, vector);
      }
      const source = await this.vectorSource(vector, filter, new Set());
      return new RankedList(key, { window: this.defaultCandidates, fixedWindows: false, minMatch: null, source, score: (found) => this.score(found, null) });
    });
  }

  /**
   * A page of the list for `key`: a first page uses the newest list for the current collection
   * (ranking one if there is none); a cursor names its list. A list that is gone (evicted, or
   * the server restarted) is ranked again and resumed after the cursor's image.
   */
  private async page(
    key: string,
    shape: number,
    after: string | null | undefined,
    first: number,
    filter: ImageFilter,
    build: () => Promise<RankedList>,
  ): Promise<SearchPage> {
    const versioned = `${this.index.version}/${this.repo.version}/${shape}/${key}`;
    const current = async () => this.lists.latestFor(versioned) ?? this.lists.add(versioned, await build());
    const budget = Math.max(this.settings.maxCandidates, first);
    let list: RankedList;
    let start = 0;
    if (after == null) {
      list = await current();
    } else {
      const position = decodeListCursor(after);
      const named = this.lists.get(position.listId);
      if (named && named.key !== key) {
        throw new InvalidInputError('This cursor belongs to another search: page with the arguments that gave it', { argument: 'after' });
      }
      list = named ?? (await current());
      start = position.offset + 1;
      if (!named) {
        await list.ensure(start + first, budget);
        const at = list.hits.findIndex((h) => h.image.id === position.imageId);
        if (at >= 0) start = at + 1;
      }
    }
    await list.ensure(start + first, budget);
    const slice = list.hits.slice(start, start + first).map((hit, i) => ({ hit, offset: start + i }));
    const fresh = await this.freshRows(slice.map((s) => s.hit.image.label), filter);
    return {
      items: slice.flatMap(({ hit, offset }) => {
        const image = fresh.get(hit.image.label);
        return image ? [{ cursor: encodeListCursor({ listId: list.id, offset, imageId: image.id }), node: { ...hit, image } }] : [];
      }),
      hasNextPage: list.hits.length > start + first || !list.complete,
      hasPreviousPage: start > 0,
      totalCount: list.totalCount,
      rankedCount: list.ranked,
      reachableCount: list.reachable,
    };
  }

  /**
   * Lists keep the rows they were ranked with; a page re-reads its rows (recaptioned, edited,
   * deleted since) and drops those that no longer pass the filter.
   */
  private async freshRows(labels: number[], filter: ImageFilter): Promise<Map<number, ImageRecord>> {
    const passing = isEmptyFilter(filter) ? labels : await this.queries.matchingLabels(filter, labels);
    return this.repo.findReadyByLabels(passing);
  }

  private async textSource(mode: SearchMode, text: string, vector: Float32Array, filter: ImageFilter): Promise<CandidateSource> {
    if (mode === 'SEMANTIC') return this.vectorSource(vector, filter, new Set());
    const itcOf = (label: number) => this.index.similarity(vector, label) ?? 0;
    // KEYWORD: every word must be there; HYBRID: any word, the fusion weighs the rest.
    const match = mode === 'KEYWORD' ? 'all' : 'any';
    const matches = (await this.queries.keywordMatches(keywordTerms(text), match, filter, MAX_KEYWORD_MATCHES)).filter((m) => this.index.has(m.label));
    if (mode === 'KEYWORD') return new KeywordCandidates(matches, itcOf);
    return new HybridCandidates(await this.vectorSource(vector, filter, new Set()), matches, itcOf);
  }

  /** ITC candidates among the filter's rows (all indexed images without a filter). */
  private async vectorSource(vector: Float32Array, filter: ImageFilter, exclude: ReadonlySet<number>): Promise<VectorCandidates> {
    const allowed = isEmptyFilter(filter) ? null : new Set((await this.queries.matchingLabels(filter)).filter((l) => this.index.has(l)));
    return new VectorCandidates(this.index, l2Normalize(vector), allowed, exclude, this.settings.exactMaxRows);
  }

  /** Reads the candidates' rows (the DB decides what exists) and scores them: ITM when `rerankText` is given. */
  private async score(candidates: Candidate[], rerankText: string | null): Promise<SearchHit[]> {
    const rows = await this.repo.findReadyByLabels(candidates.map((c) => c.label));
    const found = candidates.flatMap((c) => {
      const image = rows.get(c.label);
      return image ? [{ image, itc: c.itc, score: c.score }] : [];
    });
    if (rerankText === null) return found.map(({ image, itc, score }) => ({ image, itcScore: itc, itmScore: null, score }));
    return this.rerank(rerankText, found);
  }

  /**
   * ITM re-ranking of one window of candidates, in one engine call (the inference worker batches
   * them): score = ITM match logit + ITC cosine, with the match probability; the caller sorts
   * and cuts off. A candidate deleted while we rank loses its files: it is dropped rather than
   * failing the search.
   */
  private async rerank(text: string, found: Array<{ image: ImageRecord; itc: number }>): Promise<SearchHit[]> {
    const loaded = await Promise.allSettled(found.map(({ image }) => this.itmStates.get(image)));
    const kept = found.flatMap((hit, i) => {
      const result = loaded[i];
      return result?.status === 'fulfilled' ? [{ ...hit, states: result.value }] : [];
    });
    if (kept.length === 0) return [];
    const itm = await this.engine.itmScores(text, kept.map((k) => k.states));
    return kept.map(({ image, itc }, i) => {
      const probability = itm.probabilities[i];
      const logits = itm.logits[i];
      invariant(probability !== undefined && logits !== undefined, 'itmScores answers one score per ITM state (src/ml/blip-engine.ts)');
      return { image, itcScore: itc, itmScore: probability, score: logits[1] + itc };
    });
  }

  private async embedText(text: string): Promise<Float32Array> {
    const key = `${this.engine.modelId}\u0000${text}`;
    const cached = this.textEmbeddings.get(key);
    if (cached) return cached;
    const vector = await this.engine.embedText(text);
    this.textEmbeddings.set(key, vector);
    return vector;
  }
}
