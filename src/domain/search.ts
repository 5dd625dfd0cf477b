import type { ImageRecord } from './image.js';

export interface SearchHit {
  image: ImageRecord;
  /** ITC cosine in [-1, 1]. */
  itcScore: number;
  /** ITM match probability; null when not re-ranked. */
  itmScore: number | null;
  /** Ranking key: ITM match logit + ITC cosine (BLIP evaluation), or the cosine without re-ranking. */
  score: number;
}

export interface AnswerResult {
  answer: string;
  question: string;
  image: ImageRecord;
}
