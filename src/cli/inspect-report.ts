/**
 * `inspect`: what a snapshot or a daily candle file holds, as a readable table, CSV or JSON.
 *
 * The kind of file is told by its content (a snapshot is MessagePack starting with its header
 * map; a daily file is CSV starting with the `open_time,...` header), so a renamed file is still
 * recognised. Both are fully read and verified first: a damaged file is a CorruptFileError.
 *
 * - Snapshot: the header (market, bar, LENGTH, created), then per symbol its rows, first and last
 *   open time, coverage (rows / candles between the first and the last open time, in %) and the
 *   gaps inside (runs of missing open times of the bar); the newest `rows` candles of each symbol
 *   when asked (by default 10 with `symbol`, none otherwise).
 * - Daily file: market, zone, bar, day and symbol (from its place in the daily layout), rows
 *   against the candles that local day should have, the gaps (each marked when the day's manifest
 *   records it as an exchange gap), the verification status (`verifyDailyFile`), and the newest `rows`
 *   candles (default 10).
 *
 * CSV gives the same content as tables separated by one blank line, each with its header row:
 * summary, gaps, candles. JSON is the report object itself (times as epoch ms).
 *
 * @example
 * ```ts
 * console.log(await inspectFile('BINANCE_CACHE/snapshot-UM-1m-20240124T001000123Z.msgpack', { format: 'table', symbol: 'BTCUSDT', rows: 5 }));
 * const report = JSON.parse(await inspectFile('candles/UM-AmericaNew_York-1m/2024-01/2024-01-24/BTCUSDT.csv', { format: 'json' }));
 * ```
 */
import { open } from 'node:fs/promises';
import { basename, dirname, sep } from 'node:path';
import { Unpackr } from 'msgpackr';
import { CorruptFileError, InvalidArgumentError } from '../errors.js';
import { candlesBetween, gapsOf, intervalMs, type CandleGap } from '../binance/intervals.js';
import { KLINE_COLUMNS, type RawKline } from '../binance/kline.js';
import { INTERVALS, isInterval, isMarketType, type Interval, type MarketType } from '../binance/markets.js';
import { isErrno } from '../util/atomic-write.js';
import { KLINE_CSV_HEADER } from '../binance/kline-csv.js';
import { readDailyFile, readManifest, verifyDailyFile, type DailyFileReport } from '../files/daily-file.js';
import { DAY_PATTERN, expectedOpenTimes } from '../files/daily-layout.js';
import { loadSnapshot } from '../files/snapshot.js';
import { assertSymbol, isSymbol } from '../binance/symbols.js';

/** Output formats of {@link inspectFile}. */
export type InspectFormat = 'table' | 'csv' | 'json';

/** Options of {@link inspectFile}. */
export interface InspectOptions {
  readonly format: InspectFormat;
  /** In a snapshot: only this symbol. */
  readonly symbol?: string;
  /** Newest candles shown per symbol (default 10 for one symbol, 0 for a whole snapshot). */
  readonly rows?: number;
}

/** One symbol of a snapshot. */
export interface InspectedSymbol {
  readonly symbol: string;
  readonly rows: number;
  readonly firstOpenTime: number | null;
  readonly lastOpenTime: number | null;
  /** Candles of the bar from the first to the last open time, both included. */
  readonly span: number;
  /** rows / span in percent (100 when the symbol has no hole; 0 when it has no row). */
  readonly coveragePercent: number;
  readonly gaps: readonly CandleGap[];
  /** The newest candles asked for, oldest first, 12 numbers each. */
  readonly candles: ReadonlyArray<readonly number[]>;
}

/** What {@link inspectSnapshot} finds. */
export interface SnapshotInspection {
  readonly kind: 'snapshot';
  readonly file: string;
  readonly market: MarketType;
  readonly bar: Interval;
  readonly length: number;
  readonly createdAt: string;
  readonly symbolCount: number;
  readonly columns: readonly string[];
  readonly symbols: readonly InspectedSymbol[];
}

/** What {@link inspectDailyFile} finds. */
export interface DailyFileInspection {
  readonly kind: 'daily';
  readonly file: string;
  /** Null fields: the file is not where the daily layout puts it, so they are not known. */
  readonly market: MarketType | null;
  readonly timezone: string | null;
  readonly bar: Interval | null;
  readonly day: string | null;
  readonly symbol: string | null;
  readonly rows: number;
  /** Candles the local day should have (null when the day is not known). */
  readonly expected: number | null;
  readonly firstOpenTime: number | null;
  readonly lastOpenTime: number | null;
  /**
   * Runs of the day's candles the file does not hold; `recorded` when the day's manifest records
   * the run as an exchange gap (no trading), else the file is missing candles the exchange has.
   */
  readonly gaps: ReadonlyArray<CandleGap & { readonly recorded: boolean }>;
  readonly verification: { readonly status: DailyFileReport['status'] | 'unknown'; readonly problem: string | null };
  readonly columns: readonly string[];
  /** The newest rows asked for, as in the file (times numbers, prices strings). */
  readonly candles: readonly RawKline[];
}

// A snapshot header is a few hundred bytes; loadSnapshot refuses anything near this size.
const HEADER_BYTES = 64 * 1024;
const DEFAULT_ROWS = 10;

/**
 * Describes a snapshot or a daily candle file in `format`. Throws CorruptFileError for a file
 * that is neither, or is damaged; InvalidArgumentError for a missing file, a bad `symbol` or
 * `rows`, or a `symbol` the snapshot does not hold.
 *
 * @example
 * ```ts
 * process.stdout.write(await inspectFile(path, { format: 'csv' }));
 * ```
 */
export async function inspectFile(path: string, options: InspectOptions): Promise<string> {
  const format: unknown = options.format;
  if (format !== 'table' && format !== 'csv' && format !== 'json') {
    throw new InvalidArgumentError(`format ${JSON.stringify(format)} is invalid; expected table, csv or json`);
  }
  const report = (await sniff(path)) === 'snapshot' ? await inspectSnapshot(path, options) : await inspectDailyFile(path, options);
  if (format === 'json') return `${JSON.stringify(report, null, 2)}\n`;
  if (report.kind === 'snapshot') return format === 'csv' ? snapshotCsv(report) : snapshotTable(report);
  return format === 'csv' ? dailyCsv(report) : dailyTable(report);
}

/**
 * Reads and verifies a snapshot of any market, bar and LENGTH (taken from its own header).
 *
 * @example
 * ```ts
 * const { symbols } = await inspectSnapshot(file, { symbol: 'BTCUSDT', rows: 3 });
 * symbols[0]?.gaps; // [] when the ring has no hole
 * ```
 */
export async function inspectSnapshot(path: string, options: Omit<InspectOptions, 'format'> = {}): Promise<SnapshotInspection> {
  const only = options.symbol === undefined ? undefined : assertSymbol(options.symbol, 'symbol');
  const rows = rowsOption(options.rows, only === undefined ? 0 : DEFAULT_ROWS);
  const header = await readSnapshotHeader(path);
  const loaded = await loadSnapshot(path, header);
  const names = loaded.map.symbols().sort();
  if (only !== undefined && !loaded.map.has(only)) {
    const listed = names.length > 10 ? `${names.slice(0, 10).join(', ')}, ...` : names.join(', ');
    throw new InvalidArgumentError(
      `symbol ${only} is not in ${path}; it holds ${names.length} symbols${listed === '' ? '' : ` (${listed})`}`,
    );
  }
  const symbols: InspectedSymbol[] = [];
  for (const symbol of only === undefined ? names : [only]) {
    const ring = loaded.map.get(symbol);
    if (ring === undefined) continue;
    const view = ring.view();
    const first = ring.oldestOpenTime;
    const last = ring.newestOpenTime;
    const span = first === undefined || last === undefined ? 0 : candlesBetween(header.bar, first, last) + 1;
    const candles: number[][] = [];
    for (let r = Math.max(0, view.length - rows); r < view.length; r += 1) candles.push(Array.from(view.at(r)));
    symbols.push({
      symbol,
      rows: ring.count,
      firstOpenTime: first ?? null,
      lastOpenTime: last ?? null,
      span,
      coveragePercent: percent(ring.count, span),
      gaps: ring.gaps(header.bar),
      candles,
    });
  }
  return {
    kind: 'snapshot',
    file: path,
    market: header.market,
    bar: header.bar,
    length: loaded.header.length,
    createdAt: loaded.header.createdAt,
    symbolCount: loaded.header.symbols,
    columns: KLINE_COLUMNS,
    symbols,
  };
}

/**
 * Reads a daily candle file, places it in the daily layout
 * (`{MARKET}-{zone without '/'}-{BAR}/{YYYY-MM}/{YYYY-MM-DD}/{SYMBOL}.csv`) and verifies it.
 * A file outside the layout is still read; its bar is inferred from close minus open time, and
 * what depends on the day is reported as unknown.
 *
 * @example
 * ```ts
 * const { verification, gaps } = await inspectDailyFile('candles/UM-AmericaNew_York-1m/2024-01/2024-01-24/BTCUSDT.csv');
 * ```
 */
export async function inspectDailyFile(
  path: string,
  options: Omit<InspectOptions, 'format' | 'symbol'> = {},
): Promise<DailyFileInspection> {
  const shown = rowsOption(options.rows, DEFAULT_ROWS);
  const rows = await readDailyFile(path);
  if (rows === undefined) throw missingFile(path);
  const place = placeInLayout(path);
  const first = rows[0]?.[0] ?? null;
  const last = rows[rows.length - 1]?.[0] ?? null;
  const candles = rows.slice(Math.max(0, rows.length - shown));
  const common = {
    kind: 'daily',
    file: path,
    rows: rows.length,
    firstOpenTime: first,
    lastOpenTime: last,
    columns: KLINE_COLUMNS,
    candles,
  } as const;
  if (place === undefined) {
    const bar = inferBar(rows);
    return {
      ...common,
      market: null,
      timezone: null,
      bar: bar ?? null,
      day: null,
      symbol: null,
      expected: null,
      gaps: bar === undefined ? [] : missingBetween(rows, bar).map((gap) => ({ ...gap, recorded: false })),
      verification: {
        status: 'unknown',
        problem: `${path} is not in the daily layout ({MARKET}-{zone}-{BAR}/{YYYY-MM}/{YYYY-MM-DD}/{SYMBOL}.csv): it cannot be checked against its day`,
      },
    };
  }
  const report = await verifyDailyFile(path, place);
  let recorded: readonly CandleGap[] = [];
  let manifestProblem: string | undefined;
  try {
    recorded = (await readManifest(dirname(path)))?.symbols[place.symbol]?.gaps ?? [];
  } catch (error) {
    if (!(error instanceof CorruptFileError)) throw error;
    manifestProblem = error.message;
  }
  // Computed from the rows, not taken from the report: a corrupt report lists the whole day.
  const present = new Set(rows.map((row) => row[0]));
  const missing = gapsOf(
    expectedOpenTimes(place.day, place.timezone, place.bar).filter((t) => !present.has(t)),
    place.bar,
  );
  const problem = [report.problem, manifestProblem].filter((p) => p !== undefined).join('; ');
  return {
    ...common,
    market: place.market,
    timezone: place.timezone,
    bar: place.bar,
    day: place.day,
    symbol: place.symbol,
    expected: report.expected,
    gaps: missing.map((gap) => ({ ...gap, recorded: recorded.some((r) => r.from <= gap.from && gap.to <= r.to) })),
    verification: { status: report.status, problem: problem === '' ? null : problem },
  };
}

async function sniff(path: string): Promise<'snapshot' | 'daily'> {
  const head = await readHead(path, KLINE_CSV_HEADER.length);
  if (head.toString('latin1') === KLINE_CSV_HEADER) return 'daily';
  const marker = head[0];
  // A snapshot starts with a MessagePack map: fixmap (0x80-0x8f), map16 (0xde) or map32 (0xdf).
  if (marker !== undefined && ((marker >= 0x80 && marker <= 0x8f) || marker === 0xde || marker === 0xdf)) return 'snapshot';
  if (path.endsWith('.csv')) return 'daily';
  throw new CorruptFileError(
    path,
    `is neither a snapshot (MessagePack starting with its header) nor a daily candle file (CSV starting with "${KLINE_CSV_HEADER.slice(0, 20)}...")`,
  );
}

async function readHead(path: string, bytes: number): Promise<Buffer> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if (isErrno(error, 'ENOENT')) throw missingFile(path);
    if (isErrno(error, 'EISDIR')) throw new InvalidArgumentError(`${path} is a folder; expected a snapshot or a daily candle file`);
    throw error;
  }
  try {
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
    return buffer.subarray(0, bytesRead);
  } catch (error) {
    if (isErrno(error, 'EISDIR')) throw new InvalidArgumentError(`${path} is a folder; expected a snapshot or a daily candle file`);
    throw error;
  } finally {
    await handle.close();
  }
}

function missingFile(path: string): InvalidArgumentError {
  return new InvalidArgumentError(`${path} does not exist; expected the path of a snapshot or a daily candle file`);
}

/** Market, bar and LENGTH from the first object of a snapshot, to load it with its own settings. */
async function readSnapshotHeader(path: string): Promise<{ market: MarketType; bar: Interval; length: number }> {
  const head = await readHead(path, HEADER_BYTES);
  let first: unknown;
  try {
    new Unpackr({ useRecords: false, mapsAsObjects: true }).unpackMultiple(head, (value: unknown) => {
      first = value;
      return false;
    });
  } catch (error) {
    throw new CorruptFileError(path, 'does not start with a readable snapshot header', { cause: error });
  }
  const header = (typeof first === 'object' && first !== null ? first : {}) as { market?: unknown; bar?: unknown; length?: unknown };
  if (!isMarketType(header.market))
    throw new CorruptFileError(path, `header market is ${JSON.stringify(header.market)}, expected SPOT, UM or CM`);
  if (!isInterval(header.bar))
    throw new CorruptFileError(path, `header bar is ${JSON.stringify(header.bar)}, expected a Binance kline interval`);
  // An invalid length is reported by loadSnapshot with the other header checks.
  const length = typeof header.length === 'number' && Number.isSafeInteger(header.length) && header.length > 0 ? header.length : 1;
  return { market: header.market, bar: header.bar, length };
}

/** The daily-file key of a path in the daily layout, or undefined when it is not in it. */
function placeInLayout(path: string): { market: MarketType; timezone: string; bar: Interval; day: string; symbol: string } | undefined {
  const parts = path.split(sep).filter((p) => p !== '');
  const [top, month, day, name] = parts.slice(-4);
  if (top === undefined || month === undefined || day === undefined || name === undefined) return undefined;
  const folder = /^(SPOT|UM|CM)-(.+)-(\w{2,3})$/.exec(top);
  const symbol = name.endsWith('.csv') ? name.slice(0, -4) : '';
  if (folder === null || !DAY_PATTERN.test(day) || day.slice(0, 7) !== month || basename(path) !== name) return undefined;
  const [, market, zone, bar] = folder;
  const timezone = timeZoneOfFolder(zone as string);
  if (!isMarketType(market) || !isInterval(bar) || timezone === undefined || !isSymbol(symbol)) return undefined;
  return { market, timezone, bar, day, symbol };
}

/** The IANA zone whose name without '/' is `folderZone` ('AmericaNew_York' -> 'America/New_York'). */
function timeZoneOfFolder(folderZone: string): string | undefined {
  const candidates = [folderZone, ...Intl.supportedValuesOf('timeZone')];
  return candidates.find((zone) => {
    if (zone.replaceAll('/', '') !== folderZone) return false;
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: zone });
      return true;
    } catch {
      return false;
    }
  });
}

/** The bar of rows whose close time is open time + bar - 1 ms (all but 1M), from the first row. */
function inferBar(rows: readonly RawKline[]): Interval | undefined {
  const row = rows[0];
  if (row === undefined) return undefined;
  return INTERVALS.find((bar) => bar !== '1M' && intervalMs(bar) === row[6] - row[0] + 1);
}

/** Runs of open times missing between the first and the last row. */
function missingBetween(rows: readonly RawKline[], bar: Interval): CandleGap[] {
  const first = rows[0]?.[0];
  const last = rows[rows.length - 1]?.[0];
  if (first === undefined || last === undefined) return [];
  const present = new Set(rows.map((row) => row[0]));
  const missing: number[] = [];
  const step = intervalMs(bar);
  // Bounded by the rows' own span; a file of one day holds at most 86 400 one-second candles.
  for (let t = first; t <= last && missing.length <= 1_000_000; t += step) if (!present.has(t)) missing.push(t);
  return gapsOf(missing, bar);
}

function rowsOption(rows: number | undefined, fallback: number): number {
  if (rows === undefined) return fallback;
  if (!Number.isSafeInteger(rows) || rows < 0)
    throw new InvalidArgumentError(`rows ${String(rows)} is invalid; expected a whole number of candles, 0 or more`);
  return rows;
}

function percent(part: number, whole: number): number {
  return whole === 0 ? 0 : Math.round((part / whole) * 10_000) / 100;
}

function iso(time: number | null): string {
  return time === null ? '-' : new Date(time).toISOString().replace('.000Z', 'Z');
}

function missingCandles(gaps: readonly CandleGap[]): number {
  return gaps.reduce((sum, gap) => sum + gap.candles, 0);
}

function gapText(gaps: readonly CandleGap[]): string {
  return gaps.length === 0 ? 'none' : `${gaps.length} (${missingCandles(gaps)} candles)`;
}

/** Lines of an aligned text table: numbers (and every column when `isNumeric`) right-aligned, text left-aligned. */
function textTable(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>, isNumeric = false): string[] {
  const cells = rows.map((row) => row.map(String));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]?.length ?? 0)));
  const line = (values: readonly string[], raw: ReadonlyArray<string | number>): string =>
    values
      .map((value, i) => (isNumeric || typeof raw[i] === 'number' ? value.padStart(widths[i] ?? 0) : value.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [
    line(headers, []),
    line(
      widths.map((w) => '-'.repeat(w)),
      [],
    ),
    ...cells.map((row, r) => line(row, rows[r] ?? [])),
  ];
}

function candleTable(rows: ReadonlyArray<ReadonlyArray<string | number>>): string[] {
  // Open and close time read better as dates; the other columns are shown as stored.
  const shown = rows.map((row) => row.map((value, col) => (col === 0 || col === 6 ? iso(Number(value)) : value)));
  return textTable(KLINE_COLUMNS, shown, true);
}

function gapLines(gaps: readonly CandleGap[], indent: string): string[] {
  return gaps.map((gap) => `${indent}${iso(gap.from)} .. ${iso(gap.to)}  (${gap.candles} candles missing)`);
}

function snapshotTable(report: SnapshotInspection): string {
  const lines = [
    `snapshot  ${report.file}`,
    `market ${report.market}  bar ${report.bar}  LENGTH ${report.length}  created ${report.createdAt}  symbols ${report.symbolCount}`,
    '',
    ...textTable(
      ['symbol', 'rows', 'first open', 'last open', 'coverage', 'gaps'],
      report.symbols.map((s) => [
        s.symbol,
        s.rows,
        iso(s.firstOpenTime),
        iso(s.lastOpenTime),
        `${s.coveragePercent.toFixed(2)}%`,
        gapText(s.gaps),
      ]),
    ),
  ];
  for (const s of report.symbols) {
    if (s.gaps.length === 0 && s.candles.length === 0) continue;
    lines.push('', `${s.symbol}:`);
    if (s.gaps.length > 0) lines.push('  gaps:', ...gapLines(s.gaps, '    '));
    if (s.candles.length > 0) lines.push(`  newest ${s.candles.length} candles:`, ...candleTable(s.candles).map((l) => `  ${l}`));
  }
  return `${lines.join('\n')}\n`;
}

function dailyTable(report: DailyFileInspection): string {
  const expected =
    report.expected === null ? 'expected unknown' : `of ${report.expected} expected (${percent(report.rows, report.expected).toFixed(2)}%)`;
  const lines = [
    `daily file  ${report.file}`,
    `market ${report.market ?? '?'}  timezone ${report.timezone ?? '?'}  bar ${report.bar ?? '?'}  day ${report.day ?? '?'}  symbol ${report.symbol ?? '?'}`,
    `rows ${report.rows} ${expected}  first ${iso(report.firstOpenTime)}  last ${iso(report.lastOpenTime)}`,
    `gaps ${gapText(report.gaps)}`,
    ...gapLines(report.gaps, '  ').map((line, i) => (report.gaps[i]?.recorded ? `${line}  recorded in the manifest: no trading` : line)),
    `verification ${report.verification.status}${report.verification.problem === null ? '' : `: ${report.verification.problem}`}`,
  ];
  if (report.candles.length > 0) lines.push('', `newest ${report.candles.length} candles:`, ...candleTable(report.candles));
  return `${lines.join('\n')}\n`;
}

function csvField(value: string | number | null): string {
  const text = value === null ? '' : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function csvTable(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number | null>>): string {
  return [headers, ...rows].map((row) => row.map(csvField).join(',')).join('\n');
}

function snapshotCsv(report: SnapshotInspection): string {
  const head = { file: report.file, market: report.market, bar: report.bar, length: report.length, created_at: report.createdAt };
  const summary = csvTable(
    [...Object.keys(head), 'symbol', 'rows', 'first_open_time', 'last_open_time', 'span', 'coverage_percent', 'gaps', 'missing_candles'],
    report.symbols.map((s) => [
      ...Object.values(head),
      s.symbol,
      s.rows,
      s.firstOpenTime,
      s.lastOpenTime,
      s.span,
      s.coveragePercent,
      s.gaps.length,
      missingCandles(s.gaps),
    ]),
  );
  const gaps = csvTable(
    ['symbol', 'from', 'to', 'candles'],
    report.symbols.flatMap((s) => s.gaps.map((g) => [s.symbol, g.from, g.to, g.candles])),
  );
  const candles = csvTable(
    ['symbol', ...KLINE_COLUMNS],
    report.symbols.flatMap((s) => s.candles.map((row) => [s.symbol, ...row])),
  );
  return `${summary}\n\n${gaps}\n\n${candles}\n`;
}

function dailyCsv(report: DailyFileInspection): string {
  const summary = csvTable(
    [
      'file',
      'market',
      'timezone',
      'bar',
      'day',
      'symbol',
      'rows',
      'expected',
      'first_open_time',
      'last_open_time',
      'gaps',
      'missing_candles',
      'verification',
      'problem',
    ],
    [
      [
        report.file,
        report.market,
        report.timezone,
        report.bar,
        report.day,
        report.symbol,
        report.rows,
        report.expected,
        report.firstOpenTime,
        report.lastOpenTime,
        report.gaps.length,
        missingCandles(report.gaps),
        report.verification.status,
        report.verification.problem,
      ],
    ],
  );
  const gaps = csvTable(
    ['from', 'to', 'candles', 'recorded'],
    report.gaps.map((g) => [g.from, g.to, g.candles, String(g.recorded)]),
  );
  const candles = csvTable(KLINE_COLUMNS, report.candles);
  return `${summary}\n\n${gaps}\n\n${candles}\n`;
}
