import { useEffect, useState } from 'preact/hooks';
import type { SearchMode } from '../api';
import { defaultRerank, filterCount, navigate, parseMetadataFilter, type ListFilter, type ListRoute } from '../router';
import { typeNames, useLimits } from '../store';

const MODES: Array<{ mode: SearchMode; label: string; hint: string }> = [
  { mode: 'SEMANTIC', label: 'Meaning', hint: 'What the picture shows (ITC, re-ranked by ITM)' },
  { mode: 'KEYWORD', label: 'Words', hint: 'The words of the caption or alt text' },
  { mode: 'HYBRID', label: 'Both', hint: 'Words and meaning together' },
];

/** The bar under the search box: search options (text searches) and filters (every list). */
export function ListOptions({ route }: { route: ListRoute }) {
  const [filtersOpen, setFiltersOpen] = useState(false);
  const active = filterCount(route.filter);
  return (
    <div class="search-options" role="group" aria-label={route.name === 'search' ? 'Search options' : 'List options'}>
      {route.name === 'search' && <SearchOptions route={route} />}
      <button
        type="button"
        class={`btn btn-ghost btn-small filters-toggle${active ? ' has-active' : ''}`}
        aria-expanded={filtersOpen}
        aria-controls="filters-panel"
        onClick={() => setFiltersOpen((o) => !o)}
      >
        <svg viewBox="0 0 20 20" class="icon" aria-hidden="true">
          <path d="M3 5h14M6 10h8M8.5 15h3" stroke="currentColor" stroke-width="2" stroke-linecap="round" />
        </svg>
        Filters{active ? ` (${active})` : ''}
      </button>
      {filtersOpen && <FiltersPanel route={route} onClose={() => setFiltersOpen(false)} />}
    </div>
  );
}

function SearchOptions({ route }: { route: Extract<ListRoute, { name: 'search' }> }) {
  const { rerank, minMatch, weak, mode } = route;
  const [draft, setDraft] = useState(minMatch);
  useEffect(() => setDraft(minMatch), [minMatch]);
  const go = (patch: Partial<Extract<ListRoute, { name: 'search' }>>) => navigate({ ...route, ...patch }, true);
  const cutOff = rerank && !weak;
  return (
    <>
      <div class="segmented" role="radiogroup" aria-label="Search by">
        {MODES.map((m) => (
          <label key={m.mode} class={`segment${mode === m.mode ? ' is-on' : ''}`} title={m.hint}>
            <input type="radio" name="search-mode" value={m.mode} checked={mode === m.mode} onChange={() => go({ mode: m.mode, rerank: defaultRerank(m.mode) })} />
            <span>{m.label}</span>
          </label>
        ))}
      </div>
      <label class="switch">
        <input type="checkbox" role="switch" checked={rerank} onChange={(e) => go({ rerank: (e.target as HTMLInputElement).checked })} />
        <span class="switch-track" aria-hidden="true">
          <span class="switch-thumb" />
        </span>
        <span>
          Re-rank with ITM <span class="muted hide-narrow">(slower, more precise)</span>
        </span>
      </label>
      <div class={`slider${cutOff ? '' : ' is-disabled'}`}>
        <label for="min-match">Minimum match</label>
        <input
          id="min-match"
          type="range"
          min={0.05}
          max={0.95}
          step={0.05}
          value={draft}
          disabled={!cutOff}
          aria-valuetext={`${Math.round(draft * 100)} percent`}
          onInput={(e) => setDraft(Number((e.target as HTMLInputElement).value))}
          onChange={(e) => go({ minMatch: Number((e.target as HTMLInputElement).value) })}
        />
        <output for="min-match" class="slider-value">
          {cutOff ? `≥ ${Math.round(draft * 100)}%` : 'Any'}
        </output>
      </div>
      <label class={`switch${rerank ? '' : ' is-disabled'}`}>
        <input type="checkbox" role="switch" checked={weak && rerank} disabled={!rerank} onChange={(e) => go({ weak: (e.target as HTMLInputElement).checked })} />
        <span class="switch-track" aria-hidden="true">
          <span class="switch-thumb" />
        </span>
        <span>Show weaker matches</span>
      </label>
    </>
  );
}

/** Type, added and taken days, metadata: applied to the list on "Apply" (and kept in the address). */
function FiltersPanel({ route, onClose }: { route: ListRoute; onClose: () => void }) {
  const limits = useLimits();
  const [draft, setDraft] = useState<ListFilter>(route.filter);
  const [metaError, setMetaError] = useState<string | null>(null);
  // The draft follows the applied filter when the address changes (Back, Clear filters).
  const applied = JSON.stringify(route.filter);
  useEffect(() => setDraft(JSON.parse(applied) as ListFilter), [applied]);
  const types = limits.acceptedMimeTypes.map((t) => t.replace(/^image\//, ''));
  const set = (patch: Partial<ListFilter>) => setDraft((d) => ({ ...d, ...patch }));
  const apply = (filter: ListFilter) => {
    const error = filter.metadata ? parseMetadataFilter(filter.metadata).error : undefined;
    setMetaError(error ?? null);
    if (error) return;
    const clean = Object.fromEntries(Object.entries(filter).filter(([, v]) => v !== undefined && v !== '' && !(Array.isArray(v) && v.length === 0))) as ListFilter;
    navigate({ ...route, filter: clean });
  };
  return (
    <form
      id="filters-panel"
      class="filters"
      aria-label="Filters"
      onSubmit={(e) => {
        e.preventDefault();
        apply(draft);
      }}
      onKeyDown={(e) => e.key === 'Escape' && onClose()}
    >
      <fieldset class="filter-group">
        <legend>Type</legend>
        <div class="filter-types">
          {types.map((t) => (
            <label key={t} class="check">
              <input
                type="checkbox"
                checked={draft.types?.includes(t) ?? false}
                onChange={(e) => {
                  const on = (e.target as HTMLInputElement).checked;
                  const next = new Set(draft.types ?? []);
                  if (on) next.add(t);
                  else next.delete(t);
                  set({ types: [...next] });
                }}
              />
              {typeNames([`image/${t}`])}
            </label>
          ))}
        </div>
      </fieldset>
      <fieldset class="filter-group">
        <legend>Added</legend>
        <DayRange from={draft.addedFrom} to={draft.addedTo} label="Added" onChange={(from, to) => set({ addedFrom: from, addedTo: to })} />
      </fieldset>
      <fieldset class="filter-group">
        <legend>Taken (camera date)</legend>
        <DayRange from={draft.takenFrom} to={draft.takenTo} label="Taken" onChange={(from, to) => set({ takenFrom: from, takenTo: to })} />
      </fieldset>
      <div class="filter-group filter-meta">
        <label for="filter-metadata">Metadata contains</label>
        <input
          id="filter-metadata"
          type="text"
          value={draft.metadata ?? ''}
          placeholder='{"album": "trip"}'
          spellcheck={false}
          aria-invalid={metaError ? true : undefined}
          aria-describedby={metaError ? 'filter-metadata-error' : undefined}
          onInput={(e) => set({ metadata: (e.target as HTMLInputElement).value })}
        />
        {metaError && (
          <p id="filter-metadata-error" class="field-error" role="alert">
            {metaError}
          </p>
        )}
      </div>
      <div class="filter-actions">
        <button type="submit" class="btn btn-primary btn-small">
          Apply filters
        </button>
        <button
          type="button"
          class="btn btn-ghost btn-small"
          onClick={() => {
            setDraft({});
            apply({});
          }}
        >
          Clear
        </button>
      </div>
    </form>
  );
}

function DayRange({ from, to, label, onChange }: { from?: string; to?: string; label: string; onChange: (from?: string, to?: string) => void }) {
  return (
    <div class="day-range">
      <label>
        <span class="visually-hidden">{label} </span>from
        <input type="date" value={from ?? ''} max={to} onInput={(e) => onChange((e.target as HTMLInputElement).value || undefined, to)} />
      </label>
      <label>
        <span class="visually-hidden">{label} </span>to
        <input type="date" value={to ?? ''} min={from} onInput={(e) => onChange(from, (e.target as HTMLInputElement).value || undefined)} />
      </label>
    </div>
  );
}

