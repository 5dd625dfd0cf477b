export interface VectorMatch {
  label: number;
  /** Cosine similarity in [-1, 1]. */
  score: number;
}

/** A nearest-neighbour index over L2-normalised vectors keyed by integer labels. */
export interface VectorIndex {
  readonly dim: number;
  /** Live (not deleted) entries. */
  readonly size: number;
  /** Adds or replaces the vector of a label (re-adding a removed label revives it). */
  add(label: number, vector: Float32Array): void;
  /** No-op when absent. */
  remove(label: number): void;
  has(label: number): boolean;
  /** Live labels. */
  labels(): number[];
  /** Up to k nearest live entries, best first; with `allow`, only labels it accepts. */
  search(query: Float32Array, k: number, allow?: (label: number) => boolean): VectorMatch[];
}
