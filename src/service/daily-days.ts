/**
 * The complete daily files of a server's BAR, read for the HTTP API's Binance paths and kept in
 * memory, so that a range older than the ring is answered from disk at no weight, and a second
 * request for it without reading the disk again.
 *
 * Only complete days count (see verifyDailyFile: rows as the exchange sent them, sha256 and row
 * count as the manifest records, every missing candle a recorded exchange gap): a day with no file,
 * an incomplete or a corrupt one is `null`, and the request that needs it goes to the exchange. A
 * complete day never changes, so it stays cached (least recently used dropped first, at most
 * `maxRows` rows in all: one request needs at most its `limit` plus two partial days); a day found
 * missing is looked at again after `recheckMs`, as the daily scheduler may write it meanwhile.
 *
 * @example
 * ```ts
 * const days = new DailyDays({ rule: server.rule });
 * await days.load('BTCUSDT', '2024-01-24');
 * days.source('BTCUSDT').get('2024-01-24'); // the rows, or null when not complete on disk
 * ```
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readDailyFile, verifyDailyFile } from '../files/daily-file.js';
import { DAY_PATTERN, dailyFilePath, dailyFolderName } from '../files/daily-layout.js';
import { silentLogger, type Logger } from '../log.js';
import type { CandleRule } from '../rule.js';
import type { DayRows, DaySource } from './kline-selection.js';

/** Options of {@link DailyDays}. */
export interface DailyDaysOptions {
  /** CANDLE_DIR, MARKET, TIMEZONE and BAR say where the files are. */
  readonly rule: Pick<CandleRule, 'CANDLE_DIR' | 'MARKET' | 'TIMEZONE' | 'BAR'>;
  readonly logger?: Logger;
  /** Rows kept in memory, all days together (default 50 000: a day of 1m rows as parsed takes about 0.7 MB). */
  readonly maxRows?: number;
  /** How long a day found missing or incomplete is believed so, ms (default 10 000). */
  readonly recheckMs?: number;
}

// Days remembered at most, missing ones included (they hold no rows but take an entry each).
const MAX_ENTRIES = 4096;

// One day of one symbol as last found on disk.
interface CachedDay {
  readonly rows: DayRows;
  readonly checkedAt: number;
}

/** Complete daily files, read on demand and cached. */
export class DailyDays {
  readonly #rule: DailyDaysOptions['rule'];
  readonly #logger: Logger;
  readonly #maxRows: number;
  readonly #recheckMs: number;
  // Keyed `symbol|day`; Map order makes it an LRU.
  readonly #days = new Map<string, CachedDay>();
  // Rows held by all cached days, against maxRows.
  #rows = 0;
  // Reads in progress, so that concurrent requests for one day read it once.
  readonly #reading = new Map<string, Promise<void>>();

  constructor(options: DailyDaysOptions) {
    this.#rule = options.rule;
    this.#logger = (options.logger ?? silentLogger()).child({ component: 'daily-days' });
    this.#maxRows = options.maxRows ?? 50_000;
    this.#recheckMs = options.recheckMs ?? 10_000;
  }

  /** The days of `symbol` as {@link selectKlines} reads them: what has been loaded, synchronously. */
  source(symbol: string): DaySource {
    return { timezone: this.#rule.TIMEZONE, get: (day) => this.#get(`${symbol}|${day}`) };
  }

  /** Reads `symbol`'s file of `day` (a local day, YYYY-MM-DD) into the cache. Never throws. */
  load(symbol: string, day: string): Promise<void> {
    const key = `${symbol}|${day}`;
    let reading = this.#reading.get(key);
    if (reading === undefined) {
      reading = this.#read(symbol, day, key).finally(() => this.#reading.delete(key));
      this.#reading.set(key, reading);
    }
    return reading;
  }

  /**
   * The first and last local day with a file of `symbol` on disk (complete or not), and how many
   * there are; undefined when none. For messages saying what the server holds: it lists folders.
   */
  async filesOnDisk(symbol: string): Promise<{ readonly first: string; readonly last: string; readonly count: number } | undefined> {
    const { CANDLE_DIR, MARKET, TIMEZONE, BAR } = this.#rule;
    const root = join(CANDLE_DIR, dailyFolderName(MARKET, TIMEZONE, BAR));
    const days: string[] = [];
    for (const month of await listNames(root)) {
      for (const day of await listNames(join(root, month))) {
        if (DAY_PATTERN.test(day) && (await listNames(join(root, month, day))).includes(`${symbol}.csv`)) days.push(day);
      }
    }
    days.sort();
    const first = days[0];
    const last = days[days.length - 1];
    return first === undefined || last === undefined ? undefined : { first, last, count: days.length };
  }

  #get(key: string): DayRows | undefined {
    const cached = this.#days.get(key);
    if (cached === undefined) return undefined;
    if (cached.rows === null && Date.now() - cached.checkedAt > this.#recheckMs) return undefined;
    this.#days.delete(key);
    this.#days.set(key, cached);
    return cached.rows;
  }

  async #read(symbol: string, day: string, key: string): Promise<void> {
    const { CANDLE_DIR, MARKET, TIMEZONE, BAR } = this.#rule;
    const path = dailyFilePath(CANDLE_DIR, MARKET, TIMEZONE, BAR, day, symbol);
    let rows: DayRows = null;
    try {
      const report = await verifyDailyFile(path, { market: MARKET, timezone: TIMEZONE, bar: BAR, day, symbol });
      if (report.status === 'complete') rows = (await readDailyFile(path, { timezone: TIMEZONE, bar: BAR, day })) ?? null;
    } catch (error) {
      this.#logger.warn({ err: error, path }, 'daily file unreadable; requests that need it go to the exchange');
    }
    this.#rows -= this.#days.get(key)?.rows?.length ?? 0;
    this.#days.delete(key);
    this.#days.set(key, { rows, checkedAt: Date.now() });
    this.#rows += rows?.length ?? 0;
    for (const [oldest, day] of this.#days) {
      if ((this.#rows <= this.#maxRows && this.#days.size <= MAX_ENTRIES) || oldest === key) break;
      this.#days.delete(oldest);
      this.#rows -= day.rows?.length ?? 0;
    }
  }
}

/** The names in a folder; none when it does not exist or cannot be read. */
async function listNames(folder: string): Promise<string[]> {
  try {
    return await readdir(folder);
  } catch {
    return [];
  }
}
