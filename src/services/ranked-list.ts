import { randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { SearchHit } from '../domain/search.js';
import type { Candidate, CandidateSource } from './candidate-sources.js';

export interface RankedListOptions {
  /** Candidates ranked together (one ITM re-ranking round: the query's `candidates`). */
  window: number;
  /**
   * Re-ranked lists rank exactly `window` candidates per round, so a list has the same shape
   * however its pages are cut (a list ranked again after a restart resumes where the cursor
   * was). Lists in the source's own order may rank as many as a page needs at once.
   */
  fixedWindows: boolean;
  /** ITM cut-off; null keeps every candidate. */
  minMatch: number | null;
  source: CandidateSource;
  /** Turns candidates into scored hits (reads their rows, re-ranks); may drop some (deleted meanwhile). */
  score: (candidates: Candidate[]) => Promise<SearchHit[]>;
}

/**
 * One search's results as pages walk them: a list that grows window by window. The first window
 * is the query's top `candidates` ranked as BLIP ranks them; when pages reach its end, the next
 * `candidates` are drawn from the source and ranked, and appended. Earlier hits never move, so
 * cursors (an offset in this list) stay valid however far a client pages, and a list is a
 * snapshot: images added while someone pages do not shift what they see.
 */
export class RankedList {
  readonly id = randomBytes(9).toString('base64url');
  readonly hits: SearchHit[] = [];
  /** Candidates scored so far (hits and those cut off by minMatch or gone). */
  ranked = 0;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    /** The query this list answers (cursors must come back with the same query). */
    readonly key: string,
    private readonly options: RankedListOptions,
  ) {}

  get reachable(): number {
    return this.options.source.reachable;
  }

  get complete(): boolean {
    return this.options.source.exhausted;
  }

  /**
   * Results in all: exact once complete; before that, without a cut-off, every image not yet
   * ranked will be a hit; with minMatch, the hits found so far (rankedCount tells how far it got).
   */
  get totalCount(): number {
    if (this.complete || this.options.minMatch !== null) return this.hits.length;
    return this.hits.length + Math.max(0, this.reachable - this.ranked);
  }

  /**
   * Ranks more windows until `count` hits exist, the source is exhausted, or `budget` more
   * candidates were ranked in this call (a cut-off may need many windows to fill a page: the
   * budget bounds one request's work; the next page carries on). Calls are serialised.
   */
  ensure(count: number, budget: number): Promise<void> {
    const run = this.chain.then(async () => {
      let spent = 0;
      while (this.hits.length < count && !this.complete && spent < budget) {
        const size = this.options.fixedWindows ? this.options.window : Math.max(this.options.window, count - this.hits.length);
        const candidates = this.options.source.next(size);
        if (candidates.length === 0) break;
        spent += candidates.length;
        const scored = await this.options.score(candidates);
        this.ranked += candidates.length;
        const minMatch = this.options.minMatch;
        this.hits.push(
          ...scored.filter((h) => minMatch === null || (h.itmScore ?? 0) >= minMatch).sort((a, b) => b.score - a.score || a.image.label - b.image.label),
        );
      }
    });
    // A failed window (engine unavailable) fails this request; the next one may try again.
    this.chain = run.catch(() => undefined);
    return run;
  }
}

/**
 * Ranked lists by id (cursors name them) and the newest list of each query (a first page). The
 * query key includes the collection's version, so a first page after any change ranks afresh
 * while pages of an older list keep walking that list.
 */
export class RankedListCache {
  private readonly byId = new LRUCache<string, RankedList>({ max: 200, ttl: 60 * 60 * 1000, updateAgeOnGet: true });
  private readonly latest = new LRUCache<string, string>({ max: 200 });

  get(id: string): RankedList | undefined {
    return this.byId.get(id);
  }

  latestFor(versionedKey: string): RankedList | undefined {
    const id = this.latest.get(versionedKey);
    return id === undefined ? undefined : this.byId.get(id);
  }

  add(versionedKey: string, list: RankedList): RankedList {
    this.byId.set(list.id, list);
    this.latest.set(versionedKey, list.id);
    return list;
  }
}
