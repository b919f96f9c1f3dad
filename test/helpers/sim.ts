/**
 * Test helpers around the simulated Binance: start one per test file and close it afterwards,
 * read JSON with the weight header, load the recorded rows of ../shared/data, aggregate klines
 * exactly (decimal strings summed as BigInt) to compare intervals.
 *
 * @example
 * ```ts
 * const sim = await startSim({ markets: ['UM'] });
 * const { status, body, weight } = await getJson(`${sim.urls('UM').rest}/fapi/v1/time`);
 * await sim.close();
 * ```
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { SimulatedBinance, type SimulatedBinanceOptions } from '../../src/sim/index.js';
import { closeTimeOf } from '../../src/binance/intervals.js';
import type { RawKline } from '../../src/binance/kline.js';
import type { Interval, MarketType } from '../../src/binance/markets.js';
import type { CandleRuleInput } from '../../src/rule.js';
import type { OhlcvRow } from '../../src/sim/market-data.js';

/** Starts a simulator on loopback (port 0 per market). Close it in `afterAll`/`afterEach`. */
export function startSim(options: SimulatedBinanceOptions = {}): Promise<SimulatedBinance> {
  return SimulatedBinance.start(options);
}

/** A reply read whole: status, parsed JSON body (or the text when not JSON), headers. */
export interface SimReply {
  readonly status: number;
  readonly body: unknown;
  readonly text: string;
  readonly headers: Record<string, string | string[] | undefined>;
  /** `X-MBX-USED-WEIGHT-1M` as a number (NaN when absent). */
  readonly weight: number;
}

/** GETs `url` and reads the whole reply. */
export async function getJson(url: string): Promise<SimReply> {
  const res = await request(url);
  const text = await res.body.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: the text is the body (404 pages, malformed-body faults).
  }
  return { status: res.statusCode, body, text, headers: res.headers, weight: Number(res.headers['x-mbx-used-weight-1m']) };
}

/** GETs `url` as bytes. */
export async function getBytes(url: string): Promise<{ status: number; bytes: Uint8Array }> {
  const res = await request(url);
  return { status: res.statusCode, bytes: new Uint8Array(await res.body.arrayBuffer()) };
}

/** The recorded 1m rows of ../shared/data (13,681 rows, November 2017). */
export function loadRealRows(): OhlcvRow[] {
  const file = fileURLToPath(new URL('../../../shared/data/real-1m-ohlcv-2017-11.json', import.meta.url));
  return JSON.parse(readFileSync(file, 'utf8')) as OhlcvRow[];
}

/**
 * The rule a test's CandleServer uses against `sim`: the simulator's URLs, data folders under
 * `dir`, no daily files, short intervals, two symbols of 60 one-second candles. Override any field.
 *
 * @example
 * ```ts
 * new CandleServer({ instType: 'SPOT', rule: simRule(sim, 'SPOT', dir, { LENGTH: 300, BAR: '1m' }) });
 * ```
 */
export function simRule(sim: SimulatedBinance, market: MarketType, dir: string, overrides: CandleRuleInput = {}): CandleRuleInput {
  return {
    SYMBOLS: ['BTCUSDT', 'ETHUSDT'],
    LENGTH: 60,
    BAR: '1s',
    LOCAL_CANDLE_DAYS: 0,
    DOWNLOAD_TIME: null,
    UPDATE_INTERVAL_SECONDS: 0.5,
    CACHE_DIR: join(dir, 'cache'),
    CANDLE_DIR: join(dir, 'candles'),
    REST_BASE_URL: sim.urls(market).rest,
    WS_BASE_URL: sim.urls(market).ws,
    ARCHIVE_BASE_URL: sim.urls(market).archive,
    ...overrides,
  };
}

/** A decimal string as a count of its last digit ('12.50' -> 1250n), for exact comparisons. */
export function decimalUnits(text: string): bigint {
  return BigInt(text.replace('.', ''));
}

/** The exact sum of decimal strings, printed with their decimals; throws when these differ. */
function sumDecimals(texts: readonly string[]): string {
  const decimals = (texts[0] ?? '').split('.')[1]?.length ?? 0;
  const mismatch = texts.find((text) => (text.split('.')[1]?.length ?? 0) !== decimals);
  if (mismatch !== undefined) throw new Error(`expected ${decimals} decimals everywhere, got "${mismatch}"`);
  const digits = texts
    .reduce((sum, text) => sum + decimalUnits(text), 0n)
    .toString()
    .padStart(decimals + 1, '0');
  return decimals === 0 ? digits : `${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
}

/** The price string of highest (or lowest) value. */
function extremePrice(prices: readonly string[], pick: 'max' | 'min'): string {
  return prices.reduce((best, price) => {
    const [a, b] = [decimalUnits(price), decimalUnits(best)];
    return (pick === 'max' ? a > b : a < b) ? price : best;
  });
}

/**
 * The kline of `interval` opening at `openTime` that `rows` (its shorter klines, oldest first)
 * add up to, as Binance aggregates: first open, highest high, lowest low, last close, amounts
 * summed exactly as decimals (BigInt) and printed with the rows' decimals, trades summed.
 *
 * @example
 * ```ts
 * expect(world.kline('UM', 'BTCUSDT', '1h', t, now)).toEqual(aggregateKlines(minutes, '1h', t));
 * ```
 */
export function aggregateKlines(rows: readonly RawKline[], interval: Interval, openTime: number): RawKline {
  const first = rows[0];
  const last = rows[rows.length - 1];
  if (first === undefined || last === undefined) throw new Error('aggregateKlines: expected at least one row, got none');
  const column = (i: 2 | 3 | 5 | 7 | 9 | 10) => rows.map((row) => row[i]);
  return [
    openTime,
    first[1],
    extremePrice(column(2), 'max'),
    extremePrice(column(3), 'min'),
    last[4],
    sumDecimals(column(5)),
    closeTimeOf(interval, openTime),
    sumDecimals(column(7)),
    rows.reduce((sum, row) => sum + row[8], 0),
    sumDecimals(column(9)),
    sumDecimals(column(10)),
    '0',
  ];
}
