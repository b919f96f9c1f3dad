/**
 * candle-server: the last N Binance candles of many symbols, in memory, always current.
 *
 * @example
 * ```ts
 * import { CandleServer } from 'candle-server';
 * const server = new CandleServer({ instType: 'UM', rule: { SYMBOLS: ['BTCUSDT'], LENGTH: 1440 } });
 * await server.runCandleMap();
 * const candles = server.getCandleSecurity('BTCUSDT', 180);
 * await server.close();
 * ```
 */
export {
  CandleServer,
  getCandleSecurity,
  runningServer,
  type CandleSecurityOptions,
  type CandleServerOptions,
  type CandleServerStats,
  type SymbolStatus,
} from './candle-server.js';
export {
  DEFAULT_RULE,
  loadCandleRule,
  parseCandleRule,
  resolveEndpoints,
  RULE_ENV_PREFIX,
  shardSpecOf,
  type CandleRule,
  type CandleRuleInput,
  type LoadCandleRuleOptions,
} from './rule.js';
export {
  AbortedError,
  BannedError,
  CandleServerError,
  ClosedError,
  ConfigError,
  CorruptFileError,
  ExchangeError,
  InvalidArgumentError,
  MalformedResponseError,
  NetworkError,
  RateLimitError,
  TimeoutError,
  WeightUnavailableError,
  type ConfigIssue,
} from './errors.js';
export { shardOf } from './sync/shard.js';
export { CandleView, EMPTY_CANDLE_VIEW } from './store/candle-view.js';
export { COL, KLINE_COLUMNS, type RawKline } from './binance/kline.js';
export { INTERVALS, MARKET_TYPES, MARKETS, type Interval, type MarketType } from './binance/markets.js';
export type { CandleEvents, SymbolState } from './sync/candle-sync.js';
export * from './analysis/index.js';
