import type { ImageRecord } from './image.js';
import type { Page } from './pagination.js';

/** SEMANTIC: ITC (then ITM); KEYWORD: full-text words in caption and alt text; HYBRID: both, fused. */
export type SearchMode = 'SEMANTIC' | 'KEYWORD' | 'HYBRID';

export interface SearchHit {
  image: ImageRecord;
  /** ITC cosine in [-1, 1]. */
  itcScore: number;
  /** ITM match probability; null when not re-ranked. */
  itmScore: number | null;
  /**
   * Ranking key: ITM match logit + ITC cosine (BLIP evaluation) when re-ranked; else the source's
   * own order: the cosine (SEMANTIC, similar, by image), the database's text relevance
   * (KEYWORD), or the reciprocal-rank-fusion score (HYBRID).
   */
  score: number;
}

/** A page of a ranked list, with how far the ranking has got. */
export interface SearchPage extends Page<SearchHit> {
  /** Images ranked so far (candidates scored, hits or not). */
  rankedCount: number;
  /** Images this search can reach: those passing the filter (and, for KEYWORD, matching the words). */
  reachableCount: number;
}

export interface AnswerResult {
  answer: string;
  question: string;
  image: ImageRecord;
  /** The model that answered (src/services/answerer-registry.ts). */
  model: { name: string; modelId: string; family: string; tasks: string[]; defaultAnswerer: boolean };
}
