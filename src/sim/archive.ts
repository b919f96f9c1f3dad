/**
 * The bulk history archives of one simulated market, laid out as data.binance.vision lays them
 * out, served on the market's HTTP server at no weight:
 *
 * ```
 * /data/{spot|futures/um|futures/cm}/daily/klines/SYMBOL/INTERVAL/SYMBOL-INTERVAL-YYYY-MM-DD.zip[.CHECKSUM]
 * /data/{spot|futures/um|futures/cm}/monthly/klines/SYMBOL/INTERVAL/SYMBOL-INTERVAL-YYYY-MM.zip[.CHECKSUM]
 * ```
 *
 * Each zip holds one CSV of the period's closed candles (spot: no header, microsecond times from
 * 2025-01-01; futures: a header row, milliseconds). A file appears `publishDelayMs` after its
 * period ends; until then, or when the symbol had no candle in it, the answer is S3's 404.
 *
 * @example
 * ```ts
 * const archive = new ArchiveRoutes({ market: 'SPOT', world });
 * if (archive.owns(path)) archive.handle(req, res);
 * ```
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { zipSync } from 'fflate';
import { intervalMs } from '../binance/intervals.js';
import { KLINE_COLUMNS, type RawKline } from '../binance/kline.js';
import { MARKETS, isInterval, type Interval, type MarketType } from '../binance/markets.js';
import type { SimStats } from './weights.js';
import type { MarketWorld } from './world.js';

/** Options of the archive routes of one market. */
export interface ArchiveRoutesOptions {
  readonly market: MarketType;
  readonly world: MarketWorld;
  /** How long after a period ends its file appears (default one hour). */
  readonly publishDelayMs?: number;
  readonly stats?: SimStats;
}

/** A built archive: the zip, its checksum line and the rows it holds. */
export interface ArchiveFile {
  readonly name: string;
  readonly zip: Uint8Array;
  readonly checksum: string;
  readonly rows: number;
}

const DAY = 86_400_000;
// From this day spot archives carry microsecond timestamps.
const SPOT_MICROSECONDS_FROM = Date.UTC(2025, 0, 1);
// Built archives kept; each day of 1m candles is about 60 KB zipped.
const CACHE_LIMIT = 256;
const FILE = /^([A-Z0-9_]+)-([0-9a-zA-Z]+)-(\d{4})-(\d{2})(?:-(\d{2}))?\.zip(\.CHECKSUM)?$/;

/**
 * The CSV text of an archive: Binance's 12 columns, spot times in microseconds from 2025-01-01,
 * futures with a header row.
 */
export function archiveCsv(market: MarketType, periodStart: number, rows: readonly RawKline[]): string {
  const isMicro = market === 'SPOT' && periodStart >= SPOT_MICROSECONDS_FROM;
  const lines = rows.map((row) => {
    const fields: Array<string | number> = [...row];
    if (isMicro) {
      fields[0] = `${row[0]}000`;
      fields[6] = `${row[6]}999`;
    }
    return fields.join(',');
  });
  if (market !== 'SPOT') lines.unshift(KLINE_COLUMNS.join(','));
  return `${lines.join('\n')}\n`;
}

/** The archive routes of one market. */
export class ArchiveRoutes {
  readonly market: MarketType;
  readonly #prefix: string;
  readonly #world: MarketWorld;
  readonly #publishDelayMs: number;
  readonly #stats: SimStats | undefined;
  // Built archives by file name: building one means computing a day of candles and zipping them.
  readonly #cache: Map<string, ArchiveFile> = new Map();

  constructor(options: ArchiveRoutesOptions) {
    this.market = options.market;
    this.#prefix = `/data/${MARKETS[options.market].archivePath}/`;
    this.#world = options.world;
    this.#publishDelayMs = options.publishDelayMs ?? 3_600_000;
    this.#stats = options.stats;
  }

  /** True when `path` is under this market's archive tree. */
  owns(path: string): boolean {
    return path.startsWith(this.#prefix);
  }

  /** Answers one archive request. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://sim').pathname;
    const faults = this.#world.faults;
    const file = this.#resolve(path);
    const isChecksum = path.endsWith('.CHECKSUM');
    if (file === undefined || (isChecksum && faults.archiveChecksumMissing)) {
      this.#stats?.addRequest(path, 404);
      const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>${path.slice(1)}</Key></Error>`;
      res.writeHead(404, { 'content-type': 'application/xml' });
      res.end(body);
      return;
    }
    this.#stats?.addRequest(path, 200);
    if (isChecksum) {
      res.writeHead(200, { 'content-type': 'binary/octet-stream' });
      res.end(file.checksum);
      return;
    }
    let bytes = Buffer.from(file.zip);
    if (faults.archiveTruncated) bytes = bytes.subarray(0, Math.floor(bytes.length / 2));
    else if (faults.archiveCorrupt) {
      bytes = Buffer.from(bytes);
      // Flip bytes inside the compressed data: the zip still looks like a zip, the checksum fails.
      for (let i = 40; i < Math.min(bytes.length - 30, 80); i += 1) bytes[i] = (bytes[i] ?? 0) ^ 0xff;
    }
    res.writeHead(200, { 'content-type': 'application/zip', 'content-length': bytes.length });
    res.end(bytes);
  }

  /**
   * The archive for a daily (`day` = 'YYYY-MM-DD') or monthly ('YYYY-MM') period as published
   * now, or undefined when it is not (yet) published. Honours `archiveMissingRows`.
   */
  file(symbol: string, interval: Interval, period: string): ArchiveFile | undefined {
    const match = /^(\d{4})-(\d{2})(?:-(\d{2}))?$/.exec(period);
    if (match === null) return undefined;
    const label = interval === '1M' ? '1mo' : interval;
    return this.#resolve(
      `${this.#prefix}${match[3] === undefined ? 'monthly' : 'daily'}/klines/${symbol}/${label}/${symbol}-${label}-${period}.zip`,
    );
  }

  #resolve(path: string): ArchiveFile | undefined {
    const parts = path.slice(this.#prefix.length).split('/');
    if (parts.length !== 5 || parts[1] !== 'klines') return undefined;
    const [kind, , symbol, label, name] = parts as [string, string, string, string, string];
    const match = FILE.exec(name);
    if (match === null || match[1] !== symbol || match[2] !== label) return undefined;
    const interval = label === '1mo' ? '1M' : label;
    if (!isInterval(interval) || !MARKETS[this.market].intervals.includes(interval)) return undefined;
    const isDaily = kind === 'daily';
    if ((isDaily && match[5] === undefined) || (!isDaily && (kind !== 'monthly' || match[5] !== undefined))) return undefined;
    // Daily files exist for intervals up to 1d only.
    if (isDaily && (interval === '1M' || intervalMs(interval) > DAY)) return undefined;
    // A month of 1s candles (2.6 million rows) is more than a simulator should build on request.
    if (!isDaily && interval === '1s') return undefined;
    const year = Number(match[3]);
    const month = Number(match[4]) - 1;
    const start = Date.UTC(year, month, isDaily ? Number(match[5]) : 1);
    const end = isDaily ? start + DAY : Date.UTC(year, month + 1, 1);
    const now = this.#world.now();
    if (now < end + this.#publishDelayMs) return undefined;
    const missingRows = this.#world.faults.archiveMissingRows;
    const zipName = name.replace(/\.CHECKSUM$/, '');
    const key = `${zipName}|${missingRows}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    const rows = this.#world.klines(this.market, symbol, interval, { from: start, to: end - 1, limit: Number.MAX_SAFE_INTEGER, now });
    if (rows.length === 0) return undefined;
    const kept = missingRows > 0 ? rows.slice(0, Math.max(0, rows.length - missingRows)) : rows;
    const csvName = zipName.replace(/\.zip$/, '.csv');
    const csv = new TextEncoder().encode(archiveCsv(this.market, start, kept));
    // A fixed modification time keeps the bytes, and so the checksum, the same on every build.
    const zip = zipSync({ [csvName]: [csv, { mtime: new Date(end) }] }, { level: 6 });
    const checksum = `${createHash('sha256').update(zip).digest('hex')}  ${zipName}`;
    const file: ArchiveFile = { name: zipName, zip, checksum, rows: kept.length };
    if (this.#cache.size >= CACHE_LIMIT) {
      const oldest = this.#cache.keys().next();
      if (oldest.done !== true) this.#cache.delete(oldest.value);
    }
    this.#cache.set(key, file);
    return file;
  }
}
