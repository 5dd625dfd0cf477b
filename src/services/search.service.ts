import { LRUCache } from 'lru-cache';
import { InvalidInputError, NotFoundError } from '../domain/errors.js';
import { pageOf, resolvePage, type Page } from '../domain/pagination.js';
import type { ImageRecord } from '../domain/image.js';
import type { SearchHit } from '../domain/search.js';
import type { BlipEngine } from '../ml/blip-engine.js';
import type { PrismaImageRepository } from '../repositories/image.repository.js';
import { engineCall } from './engine-errors.js';
import type { ImageIndexService } from './image-index.service.js';
import { requireImageId, requireIntInRange, requireNumberInRange, requireText } from './input-rules.js';
import type { ItmStateCache } from './itm-state-cache.js';

export interface SearchImagesQuery {
  text: string;
  first: number;
  after?: string | null | undefined;
  rerank?: boolean | null | undefined;
  candidates?: number | null | undefined;
  minMatch?: number | null | undefined;
}

export interface SimilarImagesQuery {
  imageId: string;
  first: number;
  after?: string | null | undefined;
}

export interface SearchSettings {
  maxPageSize: number;
  maxTextChars: number;
  /** SEARCH_CANDIDATES when set; else the model's own default (its manifest), else 128. */
  defaultCandidates: number | undefined;
  maxCandidates: number;
}

/** BLIP's own retrieval evaluation re-ranks 128 candidates for 1000 images (docs/models.md). */
export const FALLBACK_SEARCH_CANDIDATES = 128;

/**
 * Retrieval as BLIP evaluates it (docs/blip.md): ITC cosine picks `candidates` images from the HNSW
 * index, ITM re-scores them, score = ITM match logit + cosine. Pages are slices of that ranked list;
 * the list is cached per query and index version, so turning a page costs no inference.
 */
export class SearchService {
  private readonly textEmbeddings = new LRUCache<string, Float32Array>({ max: 1000 });
  private readonly rankedLists = new LRUCache<string, SearchHit[]>({ max: 200 });

  constructor(
    private readonly engine: BlipEngine,
    private readonly repo: PrismaImageRepository,
    private readonly index: ImageIndexService,
    private readonly itmStates: ItmStateCache,
    private readonly settings: SearchSettings,
  ) {}

  async searchImages(query: SearchImagesQuery): Promise<Page<SearchHit>> {
    const text = requireText(query.text, 'text', this.settings.maxTextChars);
    const { offset, limit } = resolvePage(query, this.settings.maxPageSize);
    const rerank = query.rerank ?? true;
    const candidates = requireIntInRange(
      query.candidates ?? Math.min(this.settings.maxCandidates, Math.max(this.defaultCandidates, limit)),
      'candidates',
      1,
      this.settings.maxCandidates,
    );
    const minMatch = query.minMatch == null ? null : requireNumberInRange(query.minMatch, 'minMatch', 0, 1);
    if (minMatch !== null && !rerank) {
      throw new InvalidInputError('minMatch needs rerank: true (it is a cut-off on the ITM match probability)', { argument: 'minMatch' });
    }
    const key = JSON.stringify([this.index.version, text, rerank, candidates, minMatch]);
    let ranked = this.rankedLists.get(key);
    if (!ranked) {
      ranked = await this.rank(text, rerank, candidates, minMatch);
      this.rankedLists.set(key, ranked);
    }
    return this.withFreshRows(pageOf(ranked, offset, limit));
  }

  /** Candidates re-ranked when a query names none. */
  get defaultCandidates(): number {
    return this.settings.defaultCandidates ?? this.engine.defaultSearchCandidates ?? FALLBACK_SEARCH_CANDIDATES;
  }

  /** Cached lists may hold stale rows (recaptioned, deleted since): re-read the page's rows. */
  private async withFreshRows(page: Page<SearchHit>): Promise<Page<SearchHit>> {
    const rows = await this.repo.findReadyByLabels(page.items.map((item) => item.node.image.label));
    return {
      ...page,
      items: page.items.flatMap((item) => {
        const image = rows.get(item.node.image.label);
        return image ? [{ cursor: item.cursor, node: { ...item.node, image } }] : [];
      }),
    };
  }

  async similarImages(query: SimilarImagesQuery): Promise<Page<SearchHit>> {
    const id = requireImageId(query.imageId, 'imageId');
    const { offset, limit } = resolvePage(query, this.settings.maxPageSize);
    const image = await this.repo.findById(id);
    if (!image) throw new NotFoundError('Image', id);
    const vector = await this.repo.getEmbedding(image.label, this.engine.modelId);
    if (!vector) return pageOf([], 0, limit);
    const k = Math.min(this.settings.maxCandidates, offset + limit + 1);
    const matches = this.index.search(vector, k).filter((m) => m.label !== image.label);
    const rows = await this.repo.findReadyByLabels(matches.map((m) => m.label));
    const hits = matches.flatMap((m) => {
      const node = rows.get(m.label);
      return node ? [{ image: node, itcScore: m.score, itmScore: null, score: m.score }] : [];
    });
    return pageOf(hits, offset, limit);
  }

  private async rank(text: string, rerank: boolean, candidates: number, minMatch: number | null): Promise<SearchHit[]> {
    const query = await this.embedText(text);
    const matches = this.index.search(query, candidates);
    // The DB decides what exists: index entries without a READY row are never returned.
    const rows = await this.repo.findReadyByLabels(matches.map((m) => m.label));
    const found = matches.flatMap((m) => {
      const image = rows.get(m.label);
      return image ? [{ image, itc: m.score }] : [];
    });
    if (!rerank) return found.map(({ image, itc }) => ({ image, itcScore: itc, itmScore: null, score: itc }));
    const hits = await this.rerank(text, found);
    return hits
      .filter((h) => minMatch === null || (h.itmScore ?? 0) >= minMatch)
      .sort((a, b) => b.score - a.score || a.image.label - b.image.label);
  }

  /**
   * ITM scores of every candidate in one engine call (the inference worker batches them), score =
   * ITM match logit + ITC cosine. A candidate deleted while we rank loses its files: it is
   * dropped rather than failing the search.
   */
  private async rerank(text: string, found: Array<{ image: ImageRecord; itc: number }>): Promise<SearchHit[]> {
    const loaded = await Promise.allSettled(found.map(({ image }) => this.itmStates.get(image)));
    const kept = found.filter((_, i) => loaded[i]!.status === 'fulfilled');
    const states = loaded.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (states.length === 0) return [];
    const itm = await engineCall(() => this.engine.itmScores(text, states));
    return kept.map(({ image, itc }, i) => ({ image, itcScore: itc, itmScore: itm.probabilities[i]!, score: itm.logits[i]![1] + itc }));
  }

  private async embedText(text: string): Promise<Float32Array> {
    const key = `${this.engine.modelId}\u0000${text}`;
    const cached = this.textEmbeddings.get(key);
    if (cached) return cached;
    const vector = await engineCall(() => this.engine.embedText(text));
    this.textEmbeddings.set(key, vector);
    return vector;
  }
}

