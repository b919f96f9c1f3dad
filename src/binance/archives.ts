/**
 * Binance's daily kline archives (the data.binance.vision layout): URLs, checksum verification
 * and reading the CSV inside the zip. (Assembling a local day from them is the daily files' work.)
 * Downloads cost no API weight, so they are the bulk source for whole past days.
 *
 * ```
 * {base}/data/{spot|futures/um|futures/cm}/daily/klines/{SYMBOL}/{INTERVAL}/{SYMBOL}-{INTERVAL}-{YYYY-MM-DD}.zip
 *                                                                        ... .zip.CHECKSUM   "<sha256 hex>  <zip name>"
 * zip -> {SYMBOL}-{INTERVAL}-{YYYY-MM-DD}.csv   12 columns as REST; futures files may start with a
 *                                               header row; spot times are microseconds since 2025
 * ```
 *
 * @example
 * ```ts
 * const name = archiveFileName('BTCUSDT', '1m', '2024-01-24');
 * verifyArchive(zipBytes, checksumText, name);
 * const rows = readArchiveRows(zipBytes, name);
 * ```
 */
import { createHash } from 'node:crypto';
import { unzipSync } from 'fflate';
import { CorruptFileError, InvalidArgumentError } from '../errors.js';
import type { RawKline } from './kline.js';
import { decodeUtf8, parseKlineCsvRow } from './kline-csv.js';
import { MARKETS, type Interval, type MarketType } from './markets.js';
import { assertSymbol } from './symbols.js';

const UTC_DATE_PATTERN = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Intervals that have daily archive files (longer bars only have monthly files). */
export const ARCHIVE_DAILY_INTERVALS: readonly Interval[] = [
  '1s',
  '1m',
  '3m',
  '5m',
  '15m',
  '30m',
  '1h',
  '2h',
  '4h',
  '6h',
  '8h',
  '12h',
  '1d',
];

// Timestamps above this are microseconds (spot archives since 2025-01-01); milliseconds stay
// below it until the year 5138.
const MICROSECOND_THRESHOLD = 1e14;

/** A parsed `.CHECKSUM` file. */
export interface ArchiveChecksum {
  /** Lower-case hex. */
  readonly sha256: string;
  readonly fileName: string;
}

/** Throws InvalidArgumentError unless `utcDate` is a calendar date written YYYY-MM-DD. */
function assertUtcDate(utcDate: string): void {
  const match = UTC_DATE_PATTERN.exec(utcDate);
  if (match) {
    const [y, m, d] = [Number(match[1]), Number(match[2]), Number(match[3])];
    const date = new Date(Date.UTC(y, m - 1, d));
    if (date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d) return;
  }
  throw new InvalidArgumentError(`UTC date ${JSON.stringify(utcDate)} is not a calendar date written YYYY-MM-DD`);
}

function assertArchiveArgs(market: MarketType, symbol: string, interval: Interval, utcDate: string): void {
  assertSymbol(symbol, 'symbol');
  assertUtcDate(utcDate);
  if (!MARKETS[market]) throw new InvalidArgumentError(`market ${JSON.stringify(market)} is not SPOT, UM or CM`);
  if (!ARCHIVE_DAILY_INTERVALS.includes(interval) || !MARKETS[market].intervals.includes(interval)) {
    throw new InvalidArgumentError(
      `interval ${JSON.stringify(interval)} has no daily archive on ${market}; expected one of ${ARCHIVE_DAILY_INTERVALS.filter((i) => MARKETS[market].intervals.includes(i)).join(', ')}`,
    );
  }
}

/**
 * Name of a daily archive zip.
 *
 * @example
 * ```ts
 * archiveFileName('BTCUSDT', '1m', '2024-01-24'); // 'BTCUSDT-1m-2024-01-24.zip'
 * ```
 */
export function archiveFileName(symbol: string, interval: Interval, utcDate: string): string {
  return `${symbol}-${interval}-${utcDate}.zip`;
}

/**
 * URL of the daily archive of one symbol, interval and UTC day. `base` is e.g.
 * `https://data.binance.vision` (DEFAULT_ARCHIVE_BASE_URL) or a test server.
 *
 * @example
 * ```ts
 * archiveUrl('https://data.binance.vision', 'UM', 'BTCUSDT', '1m', '2024-01-24');
 * // 'https://data.binance.vision/data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-24.zip'
 * ```
 */
export function archiveUrl(base: string, market: MarketType, symbol: string, interval: Interval, utcDate: string): string {
  assertArchiveArgs(market, symbol, interval, utcDate);
  const root = base.replace(/\/+$/, '');
  return `${root}/data/${MARKETS[market].archivePath}/daily/klines/${symbol}/${interval}/${archiveFileName(symbol, interval, utcDate)}`;
}

/**
 * URL of the `.CHECKSUM` companion of a daily archive.
 *
 * @example
 * ```ts
 * checksumUrl('https://data.binance.vision', 'SPOT', 'BTCUSDT', '1m', '2024-01-24');
 * // '.../data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-24.zip.CHECKSUM'
 * ```
 */
export function checksumUrl(base: string, market: MarketType, symbol: string, interval: Interval, utcDate: string): string {
  return `${archiveUrl(base, market, symbol, interval, utcDate)}.CHECKSUM`;
}

/**
 * Parses a `.CHECKSUM` file: `<sha256 hex>  <file name>` (no trailing newline, though one is
 * tolerated). Throws CorruptFileError when it does not have that shape.
 *
 * @example
 * ```ts
 * parseChecksumFile('ab12...ef  BTCUSDT-1m-2024-01-24.zip');
 * // { sha256: 'ab12...ef', fileName: 'BTCUSDT-1m-2024-01-24.zip' }
 * ```
 */
export function parseChecksumFile(text: string): ArchiveChecksum {
  const match = /^([0-9a-fA-F]{64}) [ *]?(\S.*?)\s*$/.exec(text.trim());
  if (!match) {
    throw new CorruptFileError('CHECKSUM', `expected "<sha256 hex>  <file name>", got ${JSON.stringify(text.slice(0, 160))}`);
  }
  return { sha256: match[1]!.toLowerCase(), fileName: match[2]! };
}

/**
 * Checks an archive against its `.CHECKSUM` text: the file name must be `expectedName` and the
 * sha256 of `zipBytes` must match. Throws CorruptFileError otherwise.
 *
 * @example
 * ```ts
 * verifyArchive(zipBytes, checksumText, 'BTCUSDT-1m-2024-01-24.zip');
 * ```
 */
export function verifyArchive(zipBytes: Uint8Array, checksumText: string, expectedName: string): void {
  const checksum = parseChecksumFile(checksumText);
  if (checksum.fileName !== expectedName) {
    throw new CorruptFileError(
      expectedName,
      `the checksum file names ${JSON.stringify(checksum.fileName)}, expected ${JSON.stringify(expectedName)}`,
    );
  }
  const actual = createHash('sha256').update(zipBytes).digest('hex');
  if (actual !== checksum.sha256) {
    throw new CorruptFileError(
      expectedName,
      `sha256 is ${actual}, the checksum file says ${checksum.sha256} (${zipBytes.byteLength} bytes received)`,
    );
  }
}

/**
 * Reads the kline rows of a daily archive zip named `name`: unzips it, skips a header row if the
 * first field is not numeric, turns microsecond open and close times into milliseconds, and keeps
 * every price and volume string exactly. Throws CorruptFileError (naming the line) on a bad zip, a
 * bad row or rows out of order.
 *
 * @example
 * ```ts
 * const rows = readArchiveRows(zipBytes, 'BTCUSDT-1m-2024-01-24.zip');
 * rows[0][0]; // 1706054400000
 * ```
 */
export function readArchiveRows(zipBytes: Uint8Array, name: string): RawKline[] {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(zipBytes);
  } catch (error) {
    throw new CorruptFileError(name, `is not a readable zip: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const csvName = name.replace(/\.zip$/, '.csv');
  const csvNames = Object.keys(files).filter((file) => file.endsWith('.csv'));
  const member = files[csvName] ?? (csvNames.length === 1 ? files[csvNames[0]!] : undefined);
  if (!member) {
    throw new CorruptFileError(name, `holds ${JSON.stringify(Object.keys(files))}, expected ${JSON.stringify(csvName)}`);
  }
  const where = `${name} (${csvName})`;
  const lines = decodeUtf8(member, where).split(/\r?\n/);
  const rows: RawKline[] = [];
  let previous = -Infinity;
  for (let index = 0; index < lines.length; index += 1) {
    const line = lines[index]!;
    if (line === '') {
      if (index === lines.length - 1) break;
      throw new CorruptFileError(where, `line ${index + 1} is empty`);
    }
    // Newer futures files start with a header row (open_time,open,...); spot files do not.
    if (index === 0 && !/^\d+$/.test(line.split(',', 1)[0]!)) continue;
    const row = parseKlineCsvRow(line, where, index + 1, normaliseTime);
    if (row[0] <= previous) {
      throw new CorruptFileError(where, `line ${index + 1}: open time ${row[0]} does not come after ${previous}`);
    }
    previous = row[0];
    rows.push(row);
  }
  return rows;
}

function normaliseTime(time: number): number {
  return time > MICROSECOND_THRESHOLD ? Math.floor(time / 1000) : time;
}
