/**
 * Measuring helpers shared by the benchmarks: percentiles of recorded samples, the event-loop
 * delay, memory after a full garbage collection, tables on the console and JSON results under
 * `bench/results/`.
 *
 * @example
 * ```ts
 * const samples = new Samples(10_000);
 * samples.add(0.4);
 * const loop = startLoopDelay();
 * // ... work ...
 * console.log(samples.summary(), loop.stop());
 * await writeResults('example', { samples: samples.summary() });
 * ```
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** p50, p99 and max of a set of samples, with their count. */
export interface SampleSummary {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/**
 * Samples kept in a preallocated buffer (no allocation per sample); samples beyond the capacity
 * are dropped and counted.
 *
 * @example
 * ```ts
 * const s = new Samples(3); s.add(1); s.add(3); s.add(2);
 * s.summary().p50; // 2
 * ```
 */
export class Samples {
  readonly #values: Float64Array;
  #count = 0;
  // Samples that did not fit: reported so that a too-small buffer cannot hide itself.
  dropped = 0;

  constructor(capacity: number) {
    this.#values = new Float64Array(capacity);
  }

  add(value: number): void {
    if (this.#count < this.#values.length) this.#values[this.#count++] = value;
    else this.dropped += 1;
  }

  get count(): number {
    return this.#count;
  }

  clear(): void {
    this.#count = 0;
    this.dropped = 0;
  }

  summary(): SampleSummary {
    const sorted = this.#values.slice(0, this.#count).sort();
    let sum = 0;
    for (const value of sorted) sum += value;
    return {
      count: this.#count,
      p50: quantile(sorted, 0.5),
      p99: quantile(sorted, 0.99),
      max: sorted[sorted.length - 1] ?? Number.NaN,
      mean: sorted.length === 0 ? Number.NaN : sum / sorted.length,
    };
  }
}

/**
 * The `q` quantile (0..1) of ascending samples, nearest rank; NaN when empty.
 *
 * @example
 * ```ts
 * quantile(Float64Array.of(1, 2, 3, 4), 0.5); // 2
 * ```
 */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

/** Event-loop delay over a measured span, in ms. */
export interface LoopDelay {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/**
 * Starts monitoring the event-loop delay (perf_hooks, 1 ms resolution); `stop()` ends it and
 * returns the figures in ms.
 *
 * @example
 * ```ts
 * const loop = startLoopDelay();
 * await work();
 * loop.stop().p99;
 * ```
 */
export function startLoopDelay(): { stop(): LoopDelay } {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  return {
    stop() {
      histogram.disable();
      // The timer fires every `resolution` ms: its own period is not delay.
      const ms = (ns: number) => Math.max(0, ns / 1e6 - 1);
      return { p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)), max: ms(histogram.max), mean: ms(histogram.mean) };
    },
  };
}

// A full collection before memory readings; V8 allows exposing gc() at run time.
setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;

/** Memory in bytes after a full garbage collection. */
export interface MemoryReading {
  readonly heapUsed: number;
  readonly arrayBuffers: number;
  readonly rss: number;
}

/**
 * Collects garbage, then reads `process.memoryUsage()`.
 *
 * @example
 * ```ts
 * const before = memoryNow();
 * const grew = memoryNow().arrayBuffers - before.arrayBuffers;
 * ```
 */
export function memoryNow(): MemoryReading {
  collect();
  collect();
  const usage = process.memoryUsage();
  return { heapUsed: usage.heapUsed, arrayBuffers: usage.arrayBuffers, rss: usage.rss };
}

/**
 * Prints rows as an aligned table (first row: headers).
 *
 * @example
 * ```ts
 * printTable([['symbols', 'p99 ms'], [1000, 2.5]]);
 * ```
 */
export function printTable(rows: ReadonlyArray<ReadonlyArray<string | number>>): void {
  const cells = rows.map((row) => row.map((cell) => (typeof cell === 'number' ? formatNumber(cell) : cell)));
  const widths: number[] = [];
  for (const row of cells) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  for (const row of cells)
    console.log(row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  '));
}

/**
 * A number with about three significant digits, integers as they are.
 *
 * @example
 * ```ts
 * formatNumber(0.012345); // '0.0123'
 * ```
 */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return String(value);
  const digits =
    Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : Math.abs(value) >= 1 ? 2 : 3 - Math.floor(Math.log10(Math.abs(value) || 1));
  return value.toFixed(Math.min(6, Math.max(0, digits)));
}

const RESULTS_DIR = fileURLToPath(new URL('../results/', import.meta.url));

/**
 * Writes `bench/results/<name>.json` with the date, Node version and CPU count beside `data`.
 *
 * @example
 * ```ts
 * await writeResults('backfill', { rows });
 * ```
 */
export async function writeResults(name: string, data: unknown): Promise<string> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const file = `${RESULTS_DIR}${name}.json`;
  const { availableParallelism } = await import('node:os');
  const record = {
    name,
    date: new Date().toISOString(),
    node: process.version,
    cpus: availableParallelism(),
    argv: process.argv.slice(2),
    data,
  };
  await writeFile(file, `${JSON.stringify(record, null, 2)}\n`);
  return file;
}

/** Sleeps `ms`; benchmarks only (no signal: the benchmark owns its whole run). */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `check` every 100 ms until it holds or `ms` passes; resolves with whether it held.
 *
 * @example
 * ```ts
 * await waitUntil(() => server.isReady, 60_000);
 * ```
 */
export async function waitUntil(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await pause(100);
  }
  return true;
}
