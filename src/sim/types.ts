/**
 * The contract between the parts of the simulated exchange: the world (symbols, candles, clock,
 * faults) that the REST routes, the archive routes and the kline streams all read.
 *
 * The world is the single source of truth, so every reader sees the same market at every instant:
 * the forming candle a stream pushes at time t equals what `klines` returns at time t, and once
 * closed, both equal the final candle.
 */
import type { RawKline } from '../binance/kline.js';
import type { Interval, MarketType } from '../binance/markets.js';

/** Trading status of a simulated symbol, in the market's own vocabulary. */
export type SimSymbolStatus = 'TRADING' | 'BREAK' | 'HALT' | 'END_OF_DAY' | 'PENDING_TRADING' | 'SETTLING' | 'CLOSE' | 'DELIVERING';

/** Fault switches shared by every part of the simulator. Tests flip them at run time. */
export interface SimFaults {
  /** Extra delay before every REST reply, in ms. */
  restDelayMs: number;
  /** Answer this many next REST requests with HTTP 5xx (`restFailStatus`). */
  restFailNext: number;
  restFailStatus: number;
  /** Answer this many next REST requests with a malformed body (200, invalid JSON). */
  restMalformedNext: number;
  /** Answer this many next REST requests with 429 (Retry-After `forcedRetryAfterSeconds`). */
  force429Next: number;
  /** Answer this many next REST requests with 418 (Retry-After `forcedRetryAfterSeconds`). */
  force418Next: number;
  forcedRetryAfterSeconds: number;
  /** Streams keep their sockets open but push no kline data (pings go on) while true. */
  streamsStalled: boolean;
  /** Send this many next stream frames as malformed text instead of the event. */
  streamMalformedNext: number;
  /** Archives are served with bytes that do not match their `.CHECKSUM` while true. */
  archiveCorrupt: boolean;
  /** Archives are served cut short (an unreadable zip that fails its checksum) while true. */
  archiveTruncated: boolean;
  /** Archives hold this many fewer rows than the day had, with a matching checksum (0 = off). */
  archiveMissingRows: number;
  /** `.CHECKSUM` files answer 404 while true. */
  archiveChecksumMissing: boolean;
}

/** What the simulator knows of a symbol. */
export interface SimSymbol {
  readonly market: MarketType;
  readonly symbol: string;
  status: SimSymbolStatus;
  /** UM only: PERPETUAL, CURRENT_QUARTER, NEXT_QUARTER or TRADIFI_PERPETUAL. */
  contractType?: string;
  /** First candle open time (epoch ms): no candles before it. */
  listedAt: number;
  /** After this time (epoch ms) no candles: delisted or settled. */
  delistedAt?: number;
  /** Spans [from, to) of suspended trading: no candles open inside them. */
  suspensions: Array<{ from: number; to: number }>;
  /** Asset names as exchangeInfo shows them (e.g. BTC and USDT; USD for CM). */
  baseAsset?: string;
  quoteAsset?: string;
  /** Futures pair without the contract suffix (BTCUSD for BTCUSD_PERP). */
  pair?: string;
}

/** The simulated market as every reader sees it. */
export interface SimWorld {
  /** The exchange clock (epoch ms). */
  now(): number;
  readonly faults: SimFaults;
  /** Symbols of a market, including those not trading. */
  symbols(market: MarketType): readonly SimSymbol[];
  symbol(market: MarketType, symbol: string): SimSymbol | undefined;
  /**
   * The candle opening at `openTime` as it stands at `now`: forming while `now` is before its
   * close time, final afterwards. Undefined when there is no candle (not yet open, before listing,
   * after delisting, or inside a suspension). `openTime` must be aligned to the interval.
   */
  kline(market: MarketType, symbol: string, interval: Interval, openTime: number, now: number): RawKline | undefined;
}
