import cliProgress from 'cli-progress';

export type Outcome = 'added' | 'stored' | 'duplicate' | 'rejected';

/**
 * Progress of a folder import: a cli-progress bar with rate and ETA on a terminal, one plain line
 * per file otherwise (logs, CI, tests), each with the same counts, rate and ETA.
 */
export class IngestProgress {
  private readonly bar: cliProgress.SingleBar | null;
  private readonly started = Date.now();
  private done = 0;
  readonly counts: Record<Outcome, number> = { added: 0, stored: 0, duplicate: 0, rejected: 0 };

  constructor(
    private readonly total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.bar = stream.isTTY
      ? new cliProgress.SingleBar(
          {
            stream,
            format: '{bar} {value}/{total} | {speed} files/s | ETA {eta_formatted} | added {added}, stored {stored}, duplicates {duplicate}, rejected {rejected}',
            hideCursor: true,
            etaBuffer: 50,
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
    this.bar?.start(total, 0, { speed: '0.0', ...this.counts });
  }

  record(file: string, outcome: Outcome, detail?: string): void {
    this.done++;
    this.counts[outcome]++;
    const seconds = (Date.now() - this.started) / 1000;
    const rate = seconds > 0 ? this.done / seconds : 0;
    if (this.bar) {
      this.bar.update(this.done, { speed: rate.toFixed(1), ...this.counts });
      return;
    }
    const eta = rate > 0 ? Math.round((this.total - this.done) / rate) : 0;
    this.stream.write(`[${this.done}/${this.total}] ${rate.toFixed(1)} files/s ETA ${eta}s ${outcome} ${file}${detail ? ` (${detail})` : ''}\n`);
  }

  /** A line that is not about one file (phases, warnings). */
  note(text: string): void {
    if (this.bar) this.bar.stop();
    this.stream.write(`${text}\n`);
    if (this.bar) this.bar.start(this.total, this.done, { speed: '0.0', ...this.counts });
  }

  stop(): void {
    this.bar?.stop();
  }
}
