import type { VectorMatch } from '../index/vector-index.js';
import type { KeywordMatch } from '../repositories/image-query.repository.js';
import type { ImageVectors } from './ports.js';

/** An image a search may return, before ITM re-ranking. */
export interface Candidate {
  label: number;
  /** ITC cosine with the query. */
  itc: number;
  /** The source's own ranking score (cosine, text relevance or fused score), higher is better. */
  score: number;
}

/**
 * Where a ranked list (src/services/ranked-list.ts) draws its candidates from, best first. Each
 * call continues where the last one stopped, so a list can rank more when its pages run out.
 */
export interface CandidateSource {
  /** How many images this source can return in all (as counted when it was made). */
  readonly reachable: number;
  /** True once it has nothing more to give. */
  readonly exhausted: boolean;
  /** The next up to n candidates, best first; never one already given. */
  next(n: number): Candidate[];
}

/**
 * Nearest images by ITC cosine, optionally among `allowed` labels (a filter's rows, already
 * intersected with the index) and never the `exclude`d ones (the query image itself).
 *
 * A filter that leaves at most `exactMaxRows` images is ranked exactly, by a scan of those rows:
 * post-filtering an HNSW top-k would lose most of a selective filter's matches (they are rarely
 * among the unfiltered nearest), and hnswlib's filtered walk then visits most of the graph
 * anyway. Larger filters, and no filter, use the HNSW walk with the filter as a callback; if it
 * ever comes back short (deep pages, an unlucky graph), the rest is finished by a scan, so every
 * reachable image is returned exactly once.
 */
export class VectorCandidates implements CandidateSource {
  readonly reachable: number;
  /** Everything given so far, in order (HYBRID reads ITC ranks from it). */
  readonly ordered: Candidate[] = [];
  private readonly taken = new Set<number>();
  private scan: VectorMatch[] | null = null;
  private scanAt = 0;
  private done = false;

  constructor(
    private readonly index: ImageVectors,
    private readonly query: Float32Array,
    private readonly allowed: ReadonlySet<number> | null,
    private readonly exclude: ReadonlySet<number>,
    exactMaxRows: number,
  ) {
    if (allowed) {
      this.reachable = [...allowed].filter((l) => !exclude.has(l)).length;
      if (this.reachable <= exactMaxRows) this.scan = index.exactSearch(query, [...allowed].filter((l) => !exclude.has(l)));
    } else {
      this.reachable = index.size - [...exclude].filter((l) => index.has(l)).length;
    }
  }

  get exhausted(): boolean {
    return this.done || this.taken.size >= this.reachable;
  }

  next(n: number): Candidate[] {
    if (this.exhausted || n <= 0) return [];
    let got: VectorMatch[];
    if (this.scan) {
      got = this.scan.slice(this.scanAt, this.scanAt + n);
      this.scanAt += got.length;
    } else {
      const plain = this.taken.size === 0 && this.exclude.size === 0 && !this.allowed;
      const allowed = this.allowed;
      const allow = (l: number) => !this.taken.has(l) && !this.exclude.has(l) && (!allowed || allowed.has(l));
      got = plain ? this.index.search(this.query, n) : this.index.search(this.query, n, allow);
      if (got.length < Math.min(n, this.reachable - this.taken.size)) {
        this.scan = this.index.exactSearch(this.query, (allowed ? [...allowed] : this.index.labels()).filter(allow));
        got = this.scan.slice(0, n);
        this.scanAt = got.length;
      }
    }
    if (got.length < n) this.done = true;
    const out = got.map((m) => ({ label: m.label, itc: m.score, score: m.score }));
    for (const c of out) this.taken.add(c.label);
    this.ordered.push(...out);
    return out;
  }
}

/** Full-text matches in the database's relevance order (src/repositories/image-query.repository.ts). */
export class KeywordCandidates implements CandidateSource {
  readonly reachable: number;
  private at = 0;

  constructor(
    private readonly matches: readonly KeywordMatch[],
    private readonly itcOf: (label: number) => number,
  ) {
    this.reachable = matches.length;
  }

  get exhausted(): boolean {
    return this.at >= this.matches.length;
  }

  next(n: number): Candidate[] {
    const slice = this.matches.slice(this.at, this.at + Math.max(0, n));
    this.at += slice.length;
    return slice.map((m) => ({ label: m.label, itc: this.itcOf(m.label), score: m.relevance }));
  }
}

/**
 * Reciprocal rank fusion's constant (Cormack, Clarke and Buettcher, SIGIR 2009): each list adds
 * 1 / (k + rank). 60 is the paper's value and the usual default (Elasticsearch, OpenSearch).
 */
export const RRF_K = 60;

/**
 * HYBRID: the keyword ranking fused with the ITC ranking by reciprocal rank fusion. The ITC side
 * is read as deep as the fused list is taken, so each window fuses the same two rankings a
 * single deeper fusion would; candidates given earlier are never given again.
 */
export class HybridCandidates implements CandidateSource {
  readonly reachable: number;
  private readonly taken = new Set<number>();

  constructor(
    private readonly semantic: VectorCandidates,
    private readonly keyword: readonly KeywordMatch[],
    private readonly itcOf: (label: number) => number,
  ) {
    // Keyword matches are filtered and indexed rows, so they are among the ITC side's images.
    this.reachable = semantic.reachable;
  }

  get exhausted(): boolean {
    return this.taken.size >= this.reachable || (this.semantic.exhausted && this.fused().length === 0);
  }

  next(n: number): Candidate[] {
    const depth = this.taken.size + n;
    while (this.semantic.ordered.length < depth && !this.semantic.exhausted) this.semantic.next(depth - this.semantic.ordered.length);
    const out = this.fused().slice(0, Math.max(0, n));
    for (const c of out) this.taken.add(c.label);
    return out;
  }

  /** Fused candidates not yet given, best first (ties: lower label). */
  private fused(): Candidate[] {
    const byLabel = new Map<number, Candidate>();
    const add = (label: number, rank: number, itc: () => number) => {
      const c = byLabel.get(label) ?? { label, itc: itc(), score: 0 };
      c.score += 1 / (RRF_K + rank + 1);
      byLabel.set(label, c);
    };
    this.semantic.ordered.forEach((c, rank) => add(c.label, rank, () => c.itc));
    this.keyword.forEach((m, rank) => add(m.label, rank, () => this.itcOf(m.label)));
    return [...byLabel.values()].filter((c) => !this.taken.has(c.label)).sort((a, b) => b.score - a.score || a.label - b.label);
  }
}
