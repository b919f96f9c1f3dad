/**
 * Binance's klines parameters as the exchange reads them: what it refuses (and with which HTTP
 * status, code and message), its defaults and maximum for `limit`, and which candles a valid
 * request selects. Shared by the simulated exchange and the HTTP API's Binance paths, so both
 * answer a request alike.
 *
 * A request is read in two steps, because the exchange checks the symbol's existence between them:
 *
 * ```
 *   readKlinesRequest    missing symbol/interval (-1102), illegal characters (-1100), unknown
 *                       interval (-1120)
 *   (the caller)        unknown symbol (-1121)
 *   resolveKlinesRange  limit outside 1..max (-1130), spot timeZone (-1130), startTime > endTime
 *                       (spot: no rows; futures -1023), COIN-M window over 200 days (-1130)
 * ```
 *
 * The selection: the candles opening in [from, to] (`to` clipped to now by the reader), the
 * oldest `limit` of them when `newest` is false, else the newest `limit`. SPOT and UM read forward
 * from `startTime`, or back from `endTime` (or now) without it; COIN-M always takes the newest
 * `limit` ending at `endTime`, within 200 days.
 *
 * @example
 * ```ts
 * const params = readKlinesRequest('UM', url.searchParams);
 * if ('code' in params) return reply(params.status, { code: params.code, msg: params.msg });
 * const range = resolveKlinesRange('UM', params, now);
 * ```
 */
import { MARKETS, SYMBOL_PATTERN, isInterval, type Interval, type MarketType } from './markets.js';

/** A Binance error reply: HTTP status, code and message. */
export interface BinanceFailure {
  readonly status: number;
  readonly code: number;
  readonly msg: string;
}

/** A klines request whose parameters passed the checks made before the symbol lookup. */
export interface KlinesRequest {
  readonly symbol: string;
  readonly interval: Interval;
  readonly startTime: number | undefined;
  readonly endTime: number | undefined;
  readonly limit: number | undefined;
  /** SPOT only; undefined elsewhere (futures ignore it). */
  readonly timeZone: string | undefined;
}

/** The candles a valid klines request selects: open times in [from, to], the oldest or newest `limit`. */
export interface KlinesRange {
  readonly from: number;
  /** Inclusive; the reader clips it to now. */
  readonly to: number;
  readonly limit: number;
  /** True: the newest `limit` candles of the range; false: the oldest. */
  readonly newest: boolean;
  /** True when the exchange answers with no rows without looking (spot: startTime after endTime). */
  readonly isEmpty: boolean;
}

const DAY = 86_400_000;
/** COIN-M serves at most this span between startTime and endTime. */
export const CM_MAX_SPAN_MS = 200 * DAY;
const DIGITS = /^[0-9]{1,20}$/;
const TIME_ZONE = /^[+-]?(\d{1,2})(:(\d{2}))?$/;

/** A failure with Binance's HTTP status, code and message. */
export function binanceFailure(status: number, code: number, msg: string): BinanceFailure {
  return { status, code, msg };
}

/** -1102: a mandatory parameter is absent or empty. */
export const missingParameter = (name: string): BinanceFailure =>
  binanceFailure(400, -1102, `Mandatory parameter '${name}' was not sent, was empty/null, or malformed.`);

/** -1100: a parameter holds characters outside its legal range. */
export const illegalCharacters = (name: string, range: string): BinanceFailure =>
  binanceFailure(400, -1100, `Illegal characters found in parameter '${name}'; legal range is '${range}'.`);

/** -1130: a parameter's value is not accepted. */
export const invalidValue = (name: string): BinanceFailure => binanceFailure(400, -1130, `Data sent for parameter '${name}' is not valid.`);

/** -1121: the exchange lists no such symbol. */
export const INVALID_SYMBOL: BinanceFailure = binanceFailure(400, -1121, 'Invalid symbol.');

/** -1120: not an interval of this market. */
export const INVALID_INTERVAL: BinanceFailure = binanceFailure(400, -1120, 'Invalid interval.');

/** The legal range Binance names for a symbol parameter. */
export const SYMBOL_RANGE = '^[A-Z0-9-_.]{1,20}$';

/**
 * The checks the exchange makes before it looks the symbol up, in its order. Returns the
 * parameters, or the failure to answer with.
 */
export function readKlinesRequest(market: MarketType, params: URLSearchParams): KlinesRequest | BinanceFailure {
  const symbol = params.get('symbol');
  const interval = params.get('interval');
  if (symbol === null || symbol === '') return missingParameter('symbol');
  if (interval === null || interval === '') return missingParameter('interval');
  if (!SYMBOL_PATTERN.test(symbol)) return illegalCharacters('symbol', SYMBOL_RANGE);
  const numbers: Partial<Record<'startTime' | 'endTime' | 'limit', number>> = {};
  for (const name of ['startTime', 'endTime', 'limit'] as const) {
    const text = params.get(name);
    if (text === null || text === '') continue;
    if (!DIGITS.test(text)) return illegalCharacters(name, '^[0-9]{1,20}$');
    numbers[name] = Number(text);
  }
  if (!isInterval(interval) || !MARKETS[market].intervals.includes(interval)) return INVALID_INTERVAL;
  const timeZone = market === 'SPOT' ? params.get('timeZone') : null;
  return {
    symbol,
    interval,
    startTime: numbers.startTime,
    endTime: numbers.endTime,
    limit: numbers.limit,
    timeZone: timeZone === null || timeZone === '' ? undefined : timeZone,
  };
}

/**
 * The checks the exchange makes once the symbol is known, and the candles the request selects
 * at `now` (exchange time, ms).
 */
export function resolveKlinesRange(market: MarketType, params: KlinesRequest, now: number): KlinesRange | BinanceFailure {
  const spec = MARKETS[market];
  const limit = params.limit ?? spec.klinesDefaultLimit;
  if (limit < 1 || limit > spec.klinesMaxLimit) return invalidValue('limit');
  // Accepted for compatibility; candles stay on UTC boundaries whatever the offset.
  if (params.timeZone !== undefined && !isTimeZone(params.timeZone)) return invalidValue('timeZone');
  const { startTime, endTime } = params;
  if (startTime !== undefined && endTime !== undefined && startTime > endTime) {
    if (market !== 'SPOT') return binanceFailure(400, -1023, 'Start time is greater than end time.');
    return { from: startTime, to: endTime, limit, newest: false, isEmpty: true };
  }
  if (market === 'CM') {
    // COIN-M: the newest `limit` candles of a window of at most 200 days ending at endTime.
    const to = endTime ?? (startTime === undefined ? now : Math.min(startTime + CM_MAX_SPAN_MS, now));
    const from = startTime ?? to - CM_MAX_SPAN_MS;
    if (to - from > CM_MAX_SPAN_MS) return invalidValue('endTime');
    return { from, to, limit, newest: true, isEmpty: false };
  }
  if (startTime !== undefined) return { from: startTime, to: endTime ?? now, limit, newest: false, isEmpty: false };
  return { from: 0, to: endTime ?? now, limit, newest: true, isEmpty: false };
}

/**
 * The request weight the exchange charges for a klines query string: by `limit` (the default
 * when absent or unreadable), capped at the market's maximum.
 */
export function klinesWeightOf(market: MarketType, params: URLSearchParams): number {
  const spec = MARKETS[market];
  const limit = params.get('limit');
  const n = limit !== null && DIGITS.test(limit) ? Number(limit) : spec.klinesDefaultLimit;
  return spec.klinesWeight(Math.min(n, spec.klinesMaxLimit));
}

/** True for a spot `timeZone` the exchange accepts: an offset of at most 14 hours, minutes under 60. */
function isTimeZone(text: string): boolean {
  const match = TIME_ZONE.exec(text);
  if (match === null) return false;
  const hours = Number(match[1]);
  const minutes = match[3] === undefined ? 0 : Number(match[3]);
  return hours <= 14 && minutes < 60;
}
