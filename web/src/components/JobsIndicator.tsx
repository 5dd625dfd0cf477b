import { useRunningJobs } from '../jobs';

/** A small status in the top bar while the server works in the background; nothing when idle. */
export function JobsIndicator() {
  const jobs = useRunningJobs();
  if (jobs.length === 0) return null;
  const reembed = jobs.find((j) => j.kind === 'REEMBED');
  const ingests = jobs.filter((j) => j.kind === 'INGEST');
  const parts: string[] = [];
  if (ingests.length) parts.push(`Processing ${ingests.length} image${ingests.length === 1 ? '' : 's'}`);
  if (reembed) parts.push(`Re-embedding ${reembed.done}/${reembed.total}`);
  const progress = jobs.reduce((s, j) => s + j.progress, 0) / jobs.length;
  return (
    <div class="jobs-indicator" role="status" aria-live="polite" title={parts.join(' · ')}>
      <span class="jobs-spinner" aria-hidden="true" />
      <span class="jobs-text">{parts.join(' · ')}</span>
      <progress max={1} value={progress} aria-label="Background work progress" />
    </div>
  );
}
