/**
 * Progress of long work for the CLI: a one-line bar redrawn in place on a terminal, and a plain
 * line every few seconds elsewhere (log files, CI), so operators always see that work moves.
 *
 * @example
 * ```ts
 * const progress = new Progress({ label: 'download', total: 40, stream: process.stderr });
 * progress.tick('BTCUSDT 2024-01-24');
 * progress.done();
 * ```
 */
import type { Writable } from 'node:stream';

export interface ProgressOptions {
  readonly label: string;
  readonly total: number;
  readonly stream: Writable & { isTTY?: boolean; columns?: number };
  /** Minimum milliseconds between two plain (non-terminal) lines. */
  readonly plainEveryMs?: number;
  readonly now?: () => number;
}

const BAR_WIDTH = 24;

/** A progress line for a known amount of work. */
export class Progress {
  readonly #options: ProgressOptions;
  readonly #startedAt: number;
  #done = 0;
  #failed = 0;
  // When the last plain line was written, so non-terminal output stays a few lines a minute.
  #lastPlainAt = Number.NEGATIVE_INFINITY;
  #isFinished = false;

  constructor(options: ProgressOptions) {
    this.#options = options;
    this.#startedAt = this.#now();
  }

  /** Counts one unit of work as finished; `failed` counts it as failed. */
  tick(detail = '', failed = false): void {
    if (this.#isFinished) return;
    this.#done += 1;
    if (failed) this.#failed += 1;
    this.#render(detail, false);
  }

  /** Writes the final line. Idempotent. */
  done(): void {
    if (this.#isFinished) return;
    this.#render('', true);
    this.#isFinished = true;
  }

  #now(): number {
    return (this.#options.now ?? Date.now)();
  }

  #render(detail: string, isFinal: boolean): void {
    const { label, total, stream } = this.#options;
    const now = this.#now();
    const fraction = total === 0 ? 1 : Math.min(1, this.#done / total);
    const elapsedS = (now - this.#startedAt) / 1000;
    const rate = elapsedS > 0 ? this.#done / elapsedS : 0;
    const etaS = rate > 0 ? Math.round((total - this.#done) / rate) : undefined;
    const counts = `${this.#done}/${total}${this.#failed ? ` (${this.#failed} failed)` : ''}`;
    const eta = isFinal ? `in ${elapsedS.toFixed(1)} s` : etaS === undefined ? '' : `eta ${etaS} s`;
    if (stream.isTTY) {
      const filled = Math.round(fraction * BAR_WIDTH);
      const bar = `${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}`;
      const line = `${label} [${bar}] ${Math.floor(fraction * 100)}% ${counts} ${eta} ${detail}`;
      const width = stream.columns ?? 100;
      stream.write(`\r${line.slice(0, width - 1).padEnd(width - 1)}${isFinal ? '\n' : ''}`);
      return;
    }
    if (isFinal || now - this.#lastPlainAt >= (this.#options.plainEveryMs ?? 5000)) {
      this.#lastPlainAt = now;
      stream.write(`${label} ${Math.floor(fraction * 100)}% ${counts} ${eta}${detail ? ` ${detail}` : ''}\n`);
    }
  }
}
