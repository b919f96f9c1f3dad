/**
 * What differs between Binance's three markets: endpoints, limits, weights, intervals and stream
 * facts. Everything here follows the project's exchange notes (BINANCE.md); values that Binance
 * has changed before (streams per connection) are defaults that options can override.
 *
 * @example
 * ```ts
 * const um = MARKETS.UM;
 * um.klinesWeight(499); // 2
 * ```
 */

/** The three Binance markets candle-server serves. */
export const MARKET_TYPES = ['SPOT', 'UM', 'CM'] as const;
export type MarketType = (typeof MARKET_TYPES)[number];

/** Names of the request-weight budgets: UM and CM share one since 2026-06-30. */
export type BudgetGroup = 'spot' | 'futures';

/** Every kline interval Binance offers on some market. */
export const INTERVALS = ['1s', '1m', '3m', '5m', '15m', '30m', '1h', '2h', '4h', '6h', '8h', '12h', '1d', '3d', '1w', '1M'] as const;
export type Interval = (typeof INTERVALS)[number];

/** How one market looks from the outside. */
export interface MarketSpec {
  readonly type: MarketType;
  /** Folder name for the daily files: SPOT, UM or CM. */
  readonly name: MarketType;
  readonly budgetGroup: BudgetGroup;
  readonly restBaseUrl: string;
  readonly wsBaseUrl: string;
  /** Path segment of this market in the data.binance.vision layout. */
  readonly archivePath: 'spot' | 'futures/um' | 'futures/cm';
  readonly paths: {
    readonly klines: string;
    readonly time: string;
    readonly exchangeInfo: string;
  };
  /** Query string that shrinks exchangeInfo (spot only). */
  readonly exchangeInfoQuery: string;
  readonly exchangeInfoWeight: number;
  readonly timeWeight: number;
  readonly klinesMaxLimit: number;
  readonly klinesDefaultLimit: number;
  /** The page size that gives the most candles per unit of weight. */
  readonly klinesBestLimit: number;
  /** Klines weight for a given `limit`. */
  klinesWeight(limit: number): number;
  /** REQUEST_WEIGHT per minute per IP when exchangeInfo does not say. */
  readonly fallbackWeightLimit: number;
  readonly intervals: readonly Interval[];
  /** True when klines with only `endTime` return the newest candles before it (CM). */
  readonly pagesBackwards: boolean;
  /** Route prefix of the kline streams ('' or '/market'). */
  readonly wsRoutePrefix: string;
  /** Milliseconds between kline stream pushes. */
  wsCadenceMs(interval: Interval): number;
  readonly wsMaxStreamsPerConnection: number;
  readonly wsMaxIncomingPerSecond: number;
  readonly wsPingIntervalMs: number;
  /** Without a pong for this long the server drops the connection. */
  readonly wsPongTimeoutMs: number;
  readonly wsMaxLifetimeMs: number;
}

const FUTURES_INTERVALS = INTERVALS.filter((i) => i !== '1s');

function futuresKlinesWeight(limit: number): number {
  if (limit < 100) return 1;
  if (limit < 500) return 2;
  if (limit <= 1000) return 5;
  return 10;
}

const DAY_MS = 86_400_000;

/** The facts of each market, keyed by market type. */
export const MARKETS: Readonly<Record<MarketType, MarketSpec>> = {
  SPOT: {
    type: 'SPOT',
    name: 'SPOT',
    budgetGroup: 'spot',
    restBaseUrl: 'https://api.binance.com',
    wsBaseUrl: 'wss://stream.binance.com:9443',
    archivePath: 'spot',
    paths: { klines: '/api/v3/klines', time: '/api/v3/time', exchangeInfo: '/api/v3/exchangeInfo' },
    exchangeInfoQuery: 'permissions=SPOT&symbolStatus=TRADING&showPermissionSets=false',
    exchangeInfoWeight: 20,
    timeWeight: 1,
    klinesMaxLimit: 1000,
    klinesDefaultLimit: 500,
    klinesBestLimit: 1000,
    klinesWeight: () => 2,
    fallbackWeightLimit: 6000,
    intervals: INTERVALS,
    pagesBackwards: false,
    wsRoutePrefix: '',
    wsCadenceMs: (interval) => (interval === '1s' ? 1000 : 2000),
    wsMaxStreamsPerConnection: 1024,
    wsMaxIncomingPerSecond: 5,
    wsPingIntervalMs: 20_000,
    wsPongTimeoutMs: 60_000,
    wsMaxLifetimeMs: DAY_MS,
  },
  UM: {
    type: 'UM',
    name: 'UM',
    budgetGroup: 'futures',
    restBaseUrl: 'https://fapi.binance.com',
    wsBaseUrl: 'wss://fstream.binance.com',
    archivePath: 'futures/um',
    paths: { klines: '/fapi/v1/klines', time: '/fapi/v1/time', exchangeInfo: '/fapi/v1/exchangeInfo' },
    exchangeInfoQuery: '',
    exchangeInfoWeight: 1,
    timeWeight: 1,
    klinesMaxLimit: 1500,
    klinesDefaultLimit: 500,
    klinesBestLimit: 499,
    klinesWeight: futuresKlinesWeight,
    fallbackWeightLimit: 2400,
    intervals: FUTURES_INTERVALS,
    pagesBackwards: false,
    wsRoutePrefix: '/market',
    wsCadenceMs: () => 250,
    wsMaxStreamsPerConnection: 200,
    wsMaxIncomingPerSecond: 10,
    wsPingIntervalMs: 180_000,
    wsPongTimeoutMs: 600_000,
    wsMaxLifetimeMs: DAY_MS,
  },
  CM: {
    type: 'CM',
    name: 'CM',
    budgetGroup: 'futures',
    restBaseUrl: 'https://dapi.binance.com',
    wsBaseUrl: 'wss://dstream.binance.com',
    archivePath: 'futures/cm',
    paths: { klines: '/dapi/v1/klines', time: '/dapi/v1/time', exchangeInfo: '/dapi/v1/exchangeInfo' },
    exchangeInfoQuery: '',
    exchangeInfoWeight: 1,
    timeWeight: 1,
    klinesMaxLimit: 1500,
    klinesDefaultLimit: 500,
    klinesBestLimit: 499,
    klinesWeight: futuresKlinesWeight,
    fallbackWeightLimit: 2400,
    intervals: FUTURES_INTERVALS,
    pagesBackwards: true,
    wsRoutePrefix: '',
    wsCadenceMs: () => 250,
    wsMaxStreamsPerConnection: 200,
    wsMaxIncomingPerSecond: 10,
    wsPingIntervalMs: 180_000,
    wsPongTimeoutMs: 600_000,
    wsMaxLifetimeMs: DAY_MS,
  },
};

/** Default base URL of the bulk history archives (data.binance.vision layout). */
export const DEFAULT_ARCHIVE_BASE_URL = 'https://data.binance.vision';

/** Binance symbols are upper-case letters, digits and `_`. */
export const SYMBOL_PATTERN = /^[A-Z0-9_]{1,40}$/;

/** True when `value` is one of the three market types. */
export function isMarketType(value: unknown): value is MarketType {
  return typeof value === 'string' && (MARKET_TYPES as readonly string[]).includes(value);
}

/** True when `value` is a Binance kline interval (on some market). */
export function isInterval(value: unknown): value is Interval {
  return typeof value === 'string' && (INTERVALS as readonly string[]).includes(value);
}

/**
 * No Binance kline opens before this (July 2017, the exchange's first trading month): a window of
 * LENGTH days, weeks or months that reaches further back is cut here, so that no request asks for
 * years that cannot hold candles.
 */
export const FIRST_KLINE_TIME = Date.UTC(2017, 6, 1);
