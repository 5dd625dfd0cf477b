import { BeamSearch } from './beam-search.js';
import type { GenerationConfig } from './generation-config.js';
import { GreedySearch } from './greedy-search.js';
import type { Search } from './run-searches.js';

/** The search `config` asks for, from `prefix`: beam search with more than one beam, else greedy. */
export function searchFor(prefix: readonly number[], config: GenerationConfig): Search {
  return config.numBeams > 1 ? new BeamSearch(prefix, config) : new GreedySearch(prefix, config);
}
