/**
 * Request weight of Binance's other public market-data GETs (order book, trades, tickers, funding),
 * as Binance's API documentation states them (spot and derivatives docs, 2026-07). candle-server
 * keeps none of these; its HTTP API passes them on for bots that point a whole public API at it
 * (ccxt's `urls.api.public`, freqtrade's `ccxt_config`), charging this weight to the budget
 * before sending. The reply's X-MBX-USED-WEIGHT-1M then corrects the count, so a weight Binance
 * has since changed costs at most one reply's difference.
 *
 * Paths are relative to the market's prefix (`/api/v3`, `/fapi/v1`, `/dapi/v1`). Undefined for a
 * path not listed: the HTTP API does not pass on what it cannot price.
 *
 * @example
 * ```ts
 * marketDataWeight('SPOT', 'depth', new URLSearchParams('symbol=BTCUSDT&limit=1000')); // 50
 * marketDataWeight('UM', 'ticker/24hr', new URLSearchParams()); // 40
 * ```
 */
import type { MarketType } from './markets.js';
import { MARKETS } from './markets.js';

type Weigh = (params: URLSearchParams) => number;

const DIGITS = /^\d{1,9}$/;

/** A numeric parameter, or `fallback` when absent or not a number. */
function numberParam(params: URLSearchParams, name: string, fallback: number): number {
  const text = params.get(name);
  return text !== null && DIGITS.test(text) ? Number(text) : fallback;
}

/** How many symbols a `symbols=["A","B"]` parameter names (0 when absent or unreadable). */
function symbolCount(params: URLSearchParams): number {
  const text = params.get('symbols');
  if (text === null) return 0;
  return text.split(',').length;
}

/** `one` with a symbol, `all` without. */
const bySymbol =
  (one: number, all: number): Weigh =>
  (params) =>
    params.get('symbol') !== null ? one : all;

const SPOT: Readonly<Record<string, Weigh>> = {
  depth: (params) => {
    const limit = numberParam(params, 'limit', 100);
    return limit <= 100 ? 5 : limit <= 500 ? 25 : limit <= 1000 ? 50 : 250;
  },
  trades: () => 25,
  aggTrades: () => 4,
  uiKlines: () => 2,
  avgPrice: () => 2,
  'ticker/24hr': (params) => {
    if (params.get('symbol') !== null) return 2;
    const n = symbolCount(params);
    return n === 0 || n > 100 ? 80 : n > 20 ? 40 : 2;
  },
  'ticker/price': bySymbol(2, 4),
  'ticker/bookTicker': bySymbol(2, 4),
};

/** Futures klines-like paths: weight by `limit`, as klines. */
const futuresKlinesLike = (market: MarketType): Weigh => {
  const spec = MARKETS[market];
  return (params) => spec.klinesWeight(Math.min(numberParam(params, 'limit', spec.klinesDefaultLimit), spec.klinesMaxLimit));
};

const futuresDepth: Weigh = (params) => {
  const limit = numberParam(params, 'limit', 500);
  return limit <= 50 ? 2 : limit <= 100 ? 5 : limit <= 500 ? 10 : 20;
};

function futures(market: 'UM' | 'CM'): Readonly<Record<string, Weigh>> {
  const klinesLike = futuresKlinesLike(market);
  return {
    depth: futuresDepth,
    trades: () => 5,
    aggTrades: () => 20,
    markPriceKlines: klinesLike,
    indexPriceKlines: klinesLike,
    premiumIndexKlines: klinesLike,
    continuousKlines: klinesLike,
    premiumIndex: market === 'UM' ? () => 1 : () => 10,
    fundingRate: () => 1,
    openInterest: () => 1,
    'ticker/24hr': bySymbol(1, 40),
    'ticker/price': bySymbol(1, 2),
    'ticker/bookTicker': bySymbol(2, 5),
  };
}

const WEIGHTS: Readonly<Record<MarketType, Readonly<Record<string, Weigh>>>> = { SPOT, UM: futures('UM'), CM: futures('CM') };

/** The public market-data paths (after the market's prefix) that have a known weight. */
export function weighedPaths(market: MarketType): string[] {
  return Object.keys(WEIGHTS[market]);
}

/**
 * The request weight Binance charges for a GET of `path` (after the market's prefix) with
 * `params`, or undefined when the path is not one of the public market-data paths listed here.
 */
export function marketDataWeight(market: MarketType, path: string, params: URLSearchParams): number | undefined {
  const weigh = Object.hasOwn(WEIGHTS[market], path) ? WEIGHTS[market][path] : undefined;
  return weigh?.(params);
}
