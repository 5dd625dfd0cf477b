import type { ComponentChildren } from 'preact';
import { describeError, isRetryable } from '../api';

export function Spinner({ label = 'Loading' }: { label?: string }) {
  return <span class="spinner" role="status" aria-label={label} />;
}

export function ErrorNotice({ error, onRetry, title = 'That did not work' }: { error: unknown; onRetry?: () => void; title?: string }) {
  return (
    <div class="notice notice-error" role="alert">
      <svg class="notice-icon" viewBox="0 0 24 24" aria-hidden="true">
        <circle cx="12" cy="12" r="10" fill="none" stroke="currentColor" stroke-width="2" />
        <path d="M12 7v6M12 16.5v.5" stroke="currentColor" stroke-width="2" stroke-linecap="round" />
      </svg>
      <div>
        <strong>{title}</strong>
        <p>{describeError(error)}</p>
      </div>
      {onRetry && isRetryable(error) && (
        <button type="button" class="btn btn-secondary btn-small" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

/** A form's error under its fields, read out when it appears; nothing when there is none. */
export function FieldError({ error }: { error: unknown }) {
  if (error == null) return null;
  return (
    <p class="field-error" role="alert">
      {describeError(error)}
    </p>
  );
}

export function EmptyState({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="empty">
      <svg viewBox="0 0 64 64" aria-hidden="true" class="empty-art">
        <rect x="6" y="10" width="52" height="44" rx="8" fill="none" stroke="currentColor" stroke-width="3" />
        <circle cx="24" cy="28" r="7" fill="currentColor" opacity=".35" />
        <path d="M12 48l14-14 10 10 6-6 10 10" fill="none" stroke="currentColor" stroke-width="3" stroke-linejoin="round" />
      </svg>
      <h2>{title}</h2>
      {children}
    </div>
  );
}

/** A labelled 0..1 meter, e.g. the ITM match probability. */
export function MatchMeter({ value, label }: { value: number; label: string }) {
  const tone = value >= 0.7 ? 'good' : value >= 0.4 ? 'fair' : 'poor';
  return (
    <span class={`meter meter-${tone}`} title={`${label}: ${(value * 100).toFixed(1)}%`}>
      <span class="meter-label">{label}</span>
      <span class="meter-track" aria-hidden="true">
        <span class="meter-fill" style={{ width: `${Math.max(2, value * 100)}%` }} />
      </span>
      <span class="meter-value">{Math.round(value * 100)}%</span>
    </span>
  );
}

export function SkeletonGrid({ count = 8 }: { count?: number }) {
  return (
    <div class="grid" aria-hidden="true">
      {Array.from({ length: count }, (_, i) => (
        <div class="card skeleton" key={i}>
          <div class="thumb" />
          <div class="card-body">
            <div class="skeleton-line" />
            <div class="skeleton-line short" />
          </div>
        </div>
      ))}
    </div>
  );
}
