/**
 * Daily candle files: one CSV per symbol per local day, plus one manifest.json per day folder that
 * records what each CSV should hold.
 *
 * ```
 * UM-AmericaNew_York-1m/2024-01/2024-01-24/
 *   BTCUSDT.csv     open_time,open,high,...,ignore            <- KLINE_COLUMNS
 *                   1706072400000,39870.10,39880.00,...,0     <- Binance's 12 values, as sent,
 *                   ...                                          oldest first, '\n' line ends
 *   manifest.json   { "version": 1, "symbols": { "BTCUSDT": { rows, expected, gaps, sha256,
 *                                                              source, writtenAt } } }
 * ```
 *
 * A day is complete when its CSV is well formed, its sha256 equals the manifest's, and its rows
 * plus the candles of the recorded gaps (trading suspended: the exchange has no candle there) make
 * up every candle of the day. A CSV with no manifest entry is complete only when it has every row.
 * Both files are written atomically; manifest updates within this process are serialised per
 * folder so concurrent writers of one day never lose each other's entries.
 *
 * @example
 * ```ts
 * await writeDailyFile({ root, market: 'UM', timezone: 'America/New_York', bar: '1m',
 *   day: '2024-01-24', symbol: 'BTCUSDT', rows, gaps: [], source: 'rest' });
 * const report = await verifyDailyFile(path, { market: 'UM', timezone: 'America/New_York',
 *   bar: '1m', day: '2024-01-24', symbol: 'BTCUSDT' });
 * if (report.status !== 'complete') { ... fetch again ... }
 * ```
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { CorruptFileError, InvalidArgumentError } from '../errors.js';
import { closeTimeOf, gapsOf, nextOpenTime, openTimeOf, type CandleGap } from '../binance/intervals.js';
import { describeKlineProblem, type RawKline } from '../binance/kline.js';
import { decodeUtf8, formatKlineCsv, parseKlineCsv } from '../binance/kline-csv.js';
import type { Interval, MarketType } from '../binance/markets.js';
import { assertSymbol } from '../binance/symbols.js';
import { isErrno, writeFileAtomic } from '../util/atomic-write.js';
import { dailyFilePath, expectedOpenTimes, localDayBounds, type DayBounds } from './daily-layout.js';
import { processWide } from '../util/process-wide.js';

/** Name of the per-day-folder manifest. */
export const MANIFEST_NAME = 'manifest.json';

/** Where a day's candles came from. */
export const DAILY_SOURCES = ['archive', 'rest', 'live'] as const;
export type DailySource = (typeof DAILY_SOURCES)[number];

/** What the manifest records about one symbol's file. */
export interface DailyManifestEntry {
  readonly rows: number;
  readonly expected: number;
  readonly gaps: readonly CandleGap[];
  /** sha256 (hex) of the CSV bytes. */
  readonly sha256: string;
  readonly source: DailySource;
  /** ISO-8601 time of the write. */
  readonly writtenAt: string;
}

/** The manifest of one day folder. */
export interface DailyManifest {
  readonly version: 1;
  readonly symbols: Record<string, DailyManifestEntry>;
}

/** Identifies one daily file. */
export interface DailyFileKey {
  readonly market: MarketType;
  readonly timezone: string;
  readonly bar: Interval;
  /** Local day, `YYYY-MM-DD`. */
  readonly day: string;
  readonly symbol: string;
}

/** Result of {@link verifyDailyFile}. */
export interface DailyFileReport {
  /** `incomplete` and `corrupt` both mean: fetch the day again. */
  readonly status: 'complete' | 'missing' | 'incomplete' | 'corrupt';
  /** Rows in the file (0 when missing or unreadable). */
  readonly rows: number;
  /** Candles the day should have (see daily-layout for which candles belong to a day). */
  readonly expected: number;
  /** Runs of expected candles the file does not hold (recorded gaps included). */
  readonly gaps: readonly CandleGap[];
  /** Why the file is not complete. */
  readonly problem?: string;
}

const gapSchema = z.object({
  from: z.number().int().nonnegative(),
  to: z.number().int().nonnegative(),
  candles: z.number().int().positive(),
});

const manifestSchema = z.object({
  version: z.literal(1),
  symbols: z.record(
    z.string(),
    z.object({
      rows: z.number().int().nonnegative(),
      expected: z.number().int().nonnegative(),
      gaps: z.array(gapSchema),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
      source: z.enum(DAILY_SOURCES),
      writtenAt: z.string(),
    }),
  ),
});

/**
 * Describes the first row that cannot be a final candle of the given local day: malformed, not
 * aligned to the bar, close time not `open + bar - 1`, outside the day, or not after the row
 * before it. Returns undefined when all rows are fine.
 *
 * @example
 * ```ts
 * describeDayRowsProblem(rows, localDayBounds('2024-01-24', 'America/New_York'), '1m');
 * ```
 */
export function describeDayRowsProblem(rows: readonly RawKline[], bounds: DayBounds, bar: Interval): string | undefined {
  let previous = -Infinity;
  for (let index = 0; index < rows.length; index += 1) {
    const row = rows[index]!;
    const shape = describeKlineProblem(row);
    if (shape !== undefined) return `row ${index}: ${shape}`;
    const [openTime, , , , , , closeTime] = row;
    const at = `row ${index} (open time ${openTime} = ${new Date(openTime).toISOString()})`;
    if (openTimeOf(bar, openTime) !== openTime) return `${at} is not aligned to ${bar}`;
    if (closeTime !== closeTimeOf(bar, openTime)) return `${at} has close time ${closeTime}, expected ${closeTimeOf(bar, openTime)}`;
    if (openTime < bounds.start || openTime >= bounds.end) {
      return `${at} is outside the local day [${new Date(bounds.start).toISOString()}, ${new Date(bounds.end).toISOString()})`;
    }
    if (openTime <= previous) return `${at} does not come after the row before (${previous})`;
    previous = openTime;
  }
  return undefined;
}

/** sha256 of `bytes`, hex. */
function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Reads a day folder's manifest. Returns undefined when there is none; throws CorruptFileError
 * when it is not a valid manifest.
 *
 * @example
 * ```ts
 * const manifest = await readManifest(dirname(path));
 * manifest?.symbols.BTCUSDT?.gaps;
 * ```
 */
export async function readManifest(folder: string): Promise<DailyManifest | undefined> {
  const file = join(folder, MANIFEST_NAME);
  const bytes = await readIfExists(file);
  if (bytes === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(decodeUtf8(bytes, file));
  } catch (error) {
    throw new CorruptFileError(file, 'is not valid JSON', { cause: error });
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CorruptFileError(file, `is not a daily manifest: ${issue?.path.join('.') || '(root)'} ${issue?.message ?? ''}`);
  }
  return parsed.data;
}

async function readManifestOrEmpty(folder: string): Promise<DailyManifest | undefined> {
  try {
    return await readManifest(folder);
  } catch (error) {
    // A broken manifest only costs its entries: files it described are checked as if unrecorded.
    if (error instanceof CorruptFileError) return undefined;
    throw error;
  }
}

// Per manifest path, the tail of the chain of pending updates: each update reads the manifest
// after the previous one has written it, so concurrent writers of one day lose no entry.
const manifestQueues = processWide('manifest-queues', () => new Map<string, Promise<void>>());

async function updateManifest(folder: string, symbol: string, entry: DailyManifestEntry): Promise<void> {
  const file = resolve(folder, MANIFEST_NAME);
  const previous = manifestQueues.get(file) ?? Promise.resolve();
  const run = previous.then(async () => {
    const current = await readManifestOrEmpty(folder);
    const next: DailyManifest = { version: 1, symbols: { ...current?.symbols, [symbol]: entry } };
    await writeFileAtomic(file, `${JSON.stringify(next, null, 1)}\n`);
  });
  const tail = run.catch(() => undefined);
  manifestQueues.set(file, tail);
  try {
    await run;
  } finally {
    if (manifestQueues.get(file) === tail) manifestQueues.delete(file);
  }
}

/** Options of {@link writeDailyFile}. */
export interface WriteDailyFileOptions extends DailyFileKey {
  /** Root folder of the daily files (CANDLE_DIR). */
  readonly root: string;
  /** The day's final candles, oldest first. */
  readonly rows: readonly RawKline[];
  /** Runs of candles the exchange does not have (trading suspended). */
  readonly gaps: readonly CandleGap[];
  readonly source: DailySource;
  /** Rows must have closed before this time (default Date.now()): forming candles are refused. */
  readonly now?: number;
  readonly signal?: AbortSignal;
}

/**
 * Writes one symbol's day: the CSV, then its manifest entry, both atomically. Refuses (with
 * InvalidArgumentError) rows that are malformed, not yet closed, outside the day or out of order,
 * and gaps that are not runs of the day's candles absent from `rows`. Returns the path and the
 * manifest entry written. A day may be written partially; it then verifies as incomplete.
 *
 * @example
 * ```ts
 * const { path } = await writeDailyFile({ root: '/data', market: 'UM', timezone: 'America/New_York',
 *   bar: '1m', day: '2024-01-24', symbol: 'BTCUSDT', rows, gaps: [], source: 'archive' });
 * ```
 */
export async function writeDailyFile(options: WriteDailyFileOptions): Promise<{ path: string; entry: DailyManifestEntry }> {
  const { root, market, timezone, bar, day, symbol, rows, gaps, source } = options;
  const path = dailyFilePath(root, market, timezone, bar, day, symbol);
  const where = `${symbol} ${bar} ${day} (${timezone})`;
  const problem = describeDayRowsProblem(rows, localDayBounds(day, timezone), bar);
  if (problem !== undefined) throw new InvalidArgumentError(`cannot write ${where}: ${problem}`);
  const now = options.now ?? Date.now();
  const last = rows[rows.length - 1];
  if (last && last[6] >= now) {
    throw new InvalidArgumentError(
      `cannot write ${where}: the last row (open time ${last[0]}) closes at ${last[6]}, not before now (${now}); only closed candles are written`,
    );
  }
  const expected = expectedOpenTimes(day, timezone, bar);
  const gapProblem = describeGapsProblem(gaps, rows, expected, bar);
  if (gapProblem !== undefined) throw new InvalidArgumentError(`cannot write ${where}: ${gapProblem}`);
  if (!DAILY_SOURCES.includes(source)) {
    throw new InvalidArgumentError(`cannot write ${where}: source ${JSON.stringify(source)} is not one of ${DAILY_SOURCES.join(', ')}`);
  }

  const bytes = Buffer.from(formatKlineCsv(rows), 'utf8');
  const entry: DailyManifestEntry = {
    rows: rows.length,
    expected: expected.length,
    gaps: gaps.map(({ from, to, candles }) => ({ from, to, candles })),
    sha256: sha256Hex(bytes),
    source,
    writtenAt: new Date(now).toISOString(),
  };
  await writeFileAtomic(path, bytes, options.signal ? { signal: options.signal } : {});
  await updateManifest(dirname(path), symbol, entry);
  return { path, entry };
}

function describeGapsProblem(
  gaps: readonly CandleGap[],
  rows: readonly RawKline[],
  expected: readonly number[],
  bar: Interval,
): string | undefined {
  const present = new Set(rows.map((row) => row[0]));
  const claimable = new Set(expected.filter((time) => !present.has(time)));
  for (const [index, gap] of gaps.entries()) {
    const label = `gap ${index} ${JSON.stringify(gap)}`;
    if (gap.to < gap.from) return `${label} ends before it starts`;
    let count = 0;
    // Bounded by the day's candle count: each step must claim a distinct expected open time.
    for (let time = gap.from; time <= gap.to; time = nextOpenTime(bar, time)) {
      if (!claimable.delete(time)) {
        return `${label} covers ${time}, which is not a ${bar} open time of the day missing from the rows (or is in another gap)`;
      }
      count += 1;
    }
    if (count !== gap.candles) return `${label} spans ${count} candles, not ${gap.candles}`;
  }
  return undefined;
}

/**
 * Checks one daily file against its day and its manifest entry. Never throws for bad content:
 * a missing file is `missing`; a bad header or row, rows that do not belong to the day, a hash or
 * row count differing from the manifest, or a truncated last line are `corrupt`; a well-formed file
 * that lacks candles not recorded as gaps is `incomplete`.
 *
 * @example
 * ```ts
 * const report = await verifyDailyFile(path, { market: 'UM', timezone: 'America/New_York',
 *   bar: '1m', day: '2024-03-10', symbol: 'BTCUSDT' });
 * report.expected; // 1380
 * ```
 */
export async function verifyDailyFile(path: string, key: DailyFileKey): Promise<DailyFileReport> {
  const { timezone, bar, day, symbol } = key;
  assertSymbol(symbol, 'symbol');
  const expectedTimes = expectedOpenTimes(day, timezone, bar);
  const expected = expectedTimes.length;
  const allMissing = gapsOf(expectedTimes, bar);

  const bytes = await readIfExists(path);
  if (bytes === undefined) return { status: 'missing', rows: 0, expected, gaps: allMissing };
  const corrupt = (problem: string, rows = 0): DailyFileReport => ({ status: 'corrupt', rows, expected, gaps: allMissing, problem });

  let rows: RawKline[];
  try {
    rows = parseKlineCsv(decodeUtf8(bytes, path), path);
  } catch (error) {
    if (error instanceof CorruptFileError) return corrupt(error.message);
    throw error;
  }
  const rowProblem = describeDayRowsProblem(rows, localDayBounds(day, timezone), bar);
  if (rowProblem !== undefined) return corrupt(`${path}: ${rowProblem}`, rows.length);

  const present = new Set(rows.map((row) => row[0]));
  const gaps = gapsOf(
    expectedTimes.filter((time) => !present.has(time)),
    bar,
  );
  const entry = (await readManifestOrEmpty(dirname(path)))?.symbols[symbol];
  if (entry === undefined) {
    if (rows.length === expected) return { status: 'complete', rows: rows.length, expected, gaps };
    return {
      status: 'incomplete',
      rows: rows.length,
      expected,
      gaps,
      problem: `${path}: ${rows.length} of ${expected} rows and no manifest entry recording gaps`,
    };
  }
  const hash = sha256Hex(bytes);
  if (hash !== entry.sha256) return corrupt(`${path}: sha256 ${hash} differs from the manifest's ${entry.sha256}`, rows.length);
  if (entry.rows !== rows.length) return corrupt(`${path}: ${rows.length} rows, the manifest records ${entry.rows}`, rows.length);
  if (!sameGaps(gaps, entry.gaps)) {
    const recorded = entry.gaps.reduce((sum, gap) => sum + gap.candles, 0);
    return {
      status: 'incomplete',
      rows: rows.length,
      expected,
      gaps,
      problem: `${path}: ${rows.length} rows + ${recorded} recorded gap candles, expected ${expected} candles`,
    };
  }
  return { status: 'complete', rows: rows.length, expected, gaps };
}

function sameGaps(a: readonly CandleGap[], b: readonly CandleGap[]): boolean {
  return a.length === b.length && a.every((gap, i) => gap.from === b[i]!.from && gap.to === b[i]!.to && gap.candles === b[i]!.candles);
}

async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return undefined;
    throw error;
  }
}

/**
 * Reads one daily file's rows, for later readers (ring warm start, inspection). Returns undefined
 * when the file does not exist; throws CorruptFileError on bad content, and also when `key` is
 * given and a row does not belong to that day. Does not check completeness: use
 * {@link verifyDailyFile} for that.
 *
 * @example
 * ```ts
 * const rows = await readDailyFile(dailyFilePath(root, 'UM', tz, '1m', '2024-01-24', 'BTCUSDT'));
 * ```
 */
export async function readDailyFile(path: string, key?: Pick<DailyFileKey, 'timezone' | 'bar' | 'day'>): Promise<RawKline[] | undefined> {
  const bytes = await readIfExists(path);
  if (bytes === undefined) return undefined;
  const rows = parseKlineCsv(decodeUtf8(bytes, path), path);
  if (key) {
    const problem = describeDayRowsProblem(rows, localDayBounds(key.day, key.timezone), key.bar);
    if (problem !== undefined) throw new CorruptFileError(path, problem);
  }
  return rows;
}

/** A local day built from UTC archives. */
export interface AssembledDay {
  /** Rows that open inside the local day, oldest first. */
  readonly rows: RawKline[];
  /** Open times of the day's candles no archive held, oldest first: to be fetched over REST. */
  readonly missing: number[];
}

/**
 * Builds a local day from the rows of the UTC daily archives that cover it (keyed by UTC date,
 * see `utcDaysCovering`). Rows outside the day are ignored; a candle found in two files is kept
 * once. A UTC day absent from the map simply leaves its candles in `missing`. Throws
 * CorruptFileError when a row inside the day is not aligned to the bar or has a wrong close time.
 *
 * @example
 * ```ts
 * const day = assembleLocalDay('2024-01-24', 'America/New_York', '1m', new Map([
 *   ['2024-01-24', await rowsOf('2024-01-24')], ['2024-01-25', await rowsOf('2024-01-25')],
 * ]));
 * day.missing; // [] when both archives were whole
 * ```
 */
export function assembleLocalDay(
  day: string,
  timezone: string,
  bar: Interval,
  utcDayRows: ReadonlyMap<string, readonly RawKline[]>,
): AssembledDay {
  const bounds = localDayBounds(day, timezone);
  const byOpenTime = new Map<number, RawKline>();
  for (const rows of utcDayRows.values()) {
    for (const row of rows) {
      if (row[0] >= bounds.start && row[0] < bounds.end) byOpenTime.set(row[0], row);
    }
  }
  const rows = [...byOpenTime.values()].sort((a, b) => a[0] - b[0]);
  const problem = describeDayRowsProblem(rows, bounds, bar);
  if (problem !== undefined) throw new CorruptFileError(`archives of ${day} (${timezone}, ${bar})`, problem);
  const missing = expectedOpenTimes(day, timezone, bar).filter((time) => !byOpenTime.has(time));
  return { rows, missing };
}
