/**
 * The simulated market: symbols per market with their listing, delisting, suspensions and status,
 * and the candles every reader (REST, archives, streams) sees, from one clock.
 *
 * @example
 * ```ts
 * const world = new MarketWorld({ seed: 1, symbols: { SPOT: ['BTCUSDT'] } });
 * const now = world.now();
 * world.kline('SPOT', 'BTCUSDT', '1m', openTimeOf('1m', now), now); // the forming candle
 * ```
 */
import type { RawKline } from '../binance/kline.js';
import { nextOpenTime, openTimeOf } from '../binance/intervals.js';
import { MARKETS, MARKET_TYPES, SYMBOL_PATTERN, type Interval, type MarketType } from '../binance/markets.js';
import { InvalidArgumentError } from '../errors.js';
import { KlineFold, formatKline } from './kline-fold.js';
import { STEPS_PER_SECOND } from './minute-seconds.js';
import {
  type MinuteSource,
  type OhlcvRow,
  type SymbolProfile,
  ReplaySeries,
  SyntheticSeries,
  foldSpan,
  symbolProfile,
} from './market-data.js';
import type { SimFaults, SimSymbol, SimSymbolStatus, SimWorld } from './types.js';

/** How a symbol is declared: its name, or its name with listing facts. */
export interface SimSymbolInit {
  readonly symbol: string;
  readonly status?: SimSymbolStatus;
  /** UM and CM: PERPETUAL (default), CURRENT_QUARTER, NEXT_QUARTER, TRADIFI_PERPETUAL. */
  readonly contractType?: string;
  /** First candle open time; default 2019-01-01 UTC for initial symbols, now for `list`. */
  readonly listedAt?: number;
  readonly delistedAt?: number;
  /** Starting price of the synthetic path; default derived from the name and seed. */
  readonly basePrice?: number;
  readonly baseAsset?: string;
  readonly quoteAsset?: string;
}

/** A replay: recorded 1m rows played as the 1m candles of a symbol. */
export interface SimReplay {
  readonly market: MarketType;
  readonly symbol: string;
  readonly rows: readonly OhlcvRow[];
  /** Open time of the first replayed minute; default: one day before the current minute. */
  readonly startTime?: number;
}

/** Options of a MarketWorld. */
export interface MarketWorldOptions {
  readonly seed?: number;
  readonly clock?: () => number;
  readonly markets?: readonly MarketType[];
  readonly symbols?: Partial<Record<MarketType, ReadonlyArray<string | SimSymbolInit>>>;
  readonly replay?: readonly SimReplay[];
  readonly faults?: SimFaults;
}

/** The symbols each market starts with when none are given. */
export const DEFAULT_SYMBOLS: Readonly<Record<MarketType, readonly string[]>> = {
  SPOT: ['BTCUSDT', 'ETHUSDT', 'BNBUSDT'],
  UM: ['BTCUSDT', 'ETHUSDT'],
  CM: ['BTCUSD_PERP', 'ETHUSD_PERP'],
};

const DEFAULT_LISTED_AT = Date.UTC(2019, 0, 1);
// Closed candles cached at most; the oldest tenth is dropped when full.
const CACHE_LIMIT = 100_000;

/** Fault switches all off. */
export function defaultFaults(): SimFaults {
  return {
    restDelayMs: 0,
    restFailNext: 0,
    restFailStatus: 503,
    restMalformedNext: 0,
    force429Next: 0,
    force418Next: 0,
    forcedRetryAfterSeconds: 5,
    streamsStalled: false,
    streamMalformedNext: 0,
    archiveCorrupt: false,
    archiveTruncated: false,
    archiveMissingRows: 0,
    archiveChecksumMissing: false,
  };
}

/**
 * `n` distinct symbol names for a market, shaped as Binance names them (SPOT and UM `XAAAUSDT`,
 * CM `XAAAUSD_PERP`), for tests and benchmarks with many symbols.
 *
 * @example
 * ```ts
 * generateSymbols('CM', 2); // ['XAAAUSD_PERP', 'XAABUSD_PERP']
 * ```
 */
export function generateSymbols(market: MarketType, n: number): string[] {
  const names: string[] = [];
  for (let i = 0; i < n; i += 1) {
    let base = '';
    for (let k = 0, v = i; k < 3; k += 1, v = Math.floor(v / 26)) base = String.fromCharCode(65 + (v % 26)) + base;
    // Beyond 26^3 names, a numeric suffix keeps them distinct.
    const asset = `X${base}${i >= 17_576 ? Math.floor(i / 17_576) : ''}`;
    names.push(market === 'CM' ? `${asset}USD_PERP` : `${asset}USDT`);
  }
  return names;
}

/** Splits a symbol name into base asset, quote asset and pair. */
export function splitSymbol(market: MarketType, symbol: string): { baseAsset: string; quoteAsset: string; pair: string } {
  const pair = market === 'CM' ? (symbol.split('_')[0] ?? symbol) : symbol;
  const quotes = market === 'CM' ? ['USD'] : ['USDT', 'USDC', 'FDUSD', 'BUSD', 'BTC', 'ETH', 'BNB', 'EUR', 'TRY'];
  const quote = quotes.find((q) => pair.endsWith(q) && pair.length > q.length) ?? 'USDT';
  return { baseAsset: pair.endsWith(quote) ? pair.slice(0, -quote.length) : pair, quoteAsset: quote, pair };
}

// Per-symbol state the readers do not see.
interface SymbolState {
  readonly info: SimSymbol;
  readonly profile: SymbolProfile;
  // Where its minutes come from: the synthetic path, or a replay.
  series: MinuteSource;
  // True while the status was set by listing in the future, so it flips to TRADING by itself.
  awaitingListing: boolean;
}

/**
 * The world of the simulated exchange. Implements the SimWorld contract and the operations the
 * simulator exposes (list, delist, suspend, set status).
 */
export class MarketWorld implements SimWorld {
  readonly faults: SimFaults;
  readonly seed: number;
  readonly #clock: () => number;
  readonly #markets: Map<MarketType, Map<string, SymbolState>> = new Map();
  // Closed candles never change (unless history is rewritten by list/replay, which clears it).
  readonly #cache: Map<string, RawKline> = new Map();
  // The last forming candle per symbol and interval: the streams ask several times a second,
  // and it only changes when a new step (half a second) begins.
  readonly #forming: Map<string, { openTime: number; end: number; row: RawKline }> = new Map();

  constructor(options: MarketWorldOptions = {}) {
    this.seed = options.seed ?? 1;
    this.#clock = options.clock ?? Date.now;
    this.faults = options.faults ?? defaultFaults();
    for (const market of options.markets ?? MARKET_TYPES) {
      this.#markets.set(market, new Map());
      for (const init of options.symbols?.[market] ?? DEFAULT_SYMBOLS[market]) {
        const spec = typeof init === 'string' ? { symbol: init } : init;
        this.list(market, { listedAt: DEFAULT_LISTED_AT, ...spec });
      }
    }
    for (const replay of options.replay ?? []) this.replay(replay);
  }

  now(): number {
    return this.#clock();
  }

  /** Markets this world simulates. */
  get markets(): MarketType[] {
    return [...this.#markets.keys()];
  }

  symbols(market: MarketType): readonly SimSymbol[] {
    const states = this.#markets.get(market);
    if (states === undefined) return [];
    const now = this.now();
    return [...states.values()].map((state) => this.#refresh(state, now));
  }

  symbol(market: MarketType, symbol: string): SimSymbol | undefined {
    const state = this.#markets.get(market)?.get(symbol);
    return state === undefined ? undefined : this.#refresh(state, this.now());
  }

  /** Adds (or re-lists) a symbol. Listed at `init.listedAt`, default now (its minute). */
  list(market: MarketType, init: string | SimSymbolInit): SimSymbol {
    const spec = typeof init === 'string' ? { symbol: init } : init;
    if (!SYMBOL_PATTERN.test(spec.symbol)) {
      throw new InvalidArgumentError(`symbol "${spec.symbol}" is not a Binance symbol (A-Z, 0-9, _)`);
    }
    const states = this.#marketStates(market);
    const now = this.now();
    const listedAt = spec.listedAt ?? openTimeOf('1m', now);
    const names = splitSymbol(market, spec.symbol);
    const pending: SimSymbolStatus = market === 'SPOT' ? 'BREAK' : 'PENDING_TRADING';
    const info: SimSymbol = {
      market,
      symbol: spec.symbol,
      status: spec.status ?? (listedAt > now ? pending : 'TRADING'),
      listedAt,
      suspensions: [],
      baseAsset: spec.baseAsset ?? names.baseAsset,
      quoteAsset: spec.quoteAsset ?? names.quoteAsset,
      pair: names.pair,
    };
    if (market !== 'SPOT') info.contractType = spec.contractType ?? 'PERPETUAL';
    if (spec.delistedAt !== undefined) info.delistedAt = spec.delistedAt;
    const profile = symbolProfile(this.seed, market, spec.symbol, spec.basePrice);
    states.set(spec.symbol, {
      info,
      profile,
      series: new SyntheticSeries(profile),
      awaitingListing: spec.status === undefined && listedAt > now,
    });
    this.#forget(market, spec.symbol);
    return info;
  }

  /** Stops a symbol's candles from `at` (default now); its status changes once `at` has passed. */
  delist(market: MarketType, symbol: string, at: number = this.now()): void {
    this.#state(market, symbol).info.delistedAt = at;
    this.#forget(market, symbol);
  }

  /**
   * Suspends trading over [from, to): no second inside the span trades, so no candle opens inside
   * it, and the candles around it fold only the seconds outside it.
   */
  suspend(market: MarketType, symbol: string, from: number, to: number): void {
    if (!(to > from)) throw new InvalidArgumentError(`suspension needs from < to, got from ${from} and to ${to}`);
    this.#state(market, symbol).info.suspensions.push({ from, to });
    this.#forget(market, symbol);
  }

  /** Sets the status exchangeInfo reports (candles are unaffected). */
  setStatus(market: MarketType, symbol: string, status: SimSymbolStatus): void {
    const state = this.#state(market, symbol);
    state.info.status = status;
    state.awaitingListing = false;
  }

  /** Plays recorded 1m rows as the candles of a symbol (listing it if needed). */
  replay(replay: SimReplay): void {
    const startTime = replay.startTime ?? openTimeOf('1m', this.now()) - 86_400_000;
    let state = this.#markets.get(replay.market)?.get(replay.symbol);
    if (state === undefined) {
      this.list(replay.market, { symbol: replay.symbol, listedAt: startTime });
      state = this.#state(replay.market, replay.symbol);
    } else {
      state.info.listedAt = startTime;
    }
    state.series = new ReplaySeries(replay.rows, startTime, state.profile.key);
    this.#forget(replay.market, replay.symbol);
  }

  /** Decimals used in a symbol's strings (prices, quantities), for exchangeInfo filters. */
  profile(market: MarketType, symbol: string): SymbolProfile | undefined {
    return this.#markets.get(market)?.get(symbol)?.profile;
  }

  /**
   * The candle opening at `openTime` as it stands at `now`: the fold of its seconds that trade
   * (listed, not delisted, not suspended) and have begun by `now`; undefined when there is none.
   */
  kline(market: MarketType, symbol: string, interval: Interval, openTime: number, now: number): RawKline | undefined {
    const state = this.#markets.get(market)?.get(symbol);
    if (state === undefined || !MARKETS[market].intervals.includes(interval) || openTime > now) return undefined;
    const nextOpen = nextOpenTime(interval, openTime);
    const isClosed = now >= nextOpen;
    const key = `${market}|${symbol}|${interval}${isClosed ? `|${openTime}` : ''}`;
    // What has begun: all of it once closed, before that up to the step of a second holding `now`.
    const end = isClosed ? nextOpen : Math.min(nextOpen, Math.floor(now / STEP) * STEP + STEP);
    if (isClosed) {
      const cached = this.#cache.get(key);
      if (cached !== undefined) return cached;
    } else {
      const last = this.#forming.get(key);
      if (last !== undefined && last.openTime === openTime && last.end === end) return last.row;
    }
    const fold = new KlineFold(state.series.units.qtyDecimals);
    foldTrading(state, fold, openTime, end);
    if (fold.isEmpty) return undefined;
    const row = formatKline(fold, state.series.units, openTime, nextOpen - 1);
    if (isClosed) {
      if (this.#cache.size >= CACHE_LIMIT) this.#trimCache();
      this.#cache.set(key, row);
    } else {
      this.#forming.set(key, { openTime, end, row });
    }
    return row;
  }

  /**
   * Candles with open times in [from, to] (both inclusive), oldest first, at most `limit`, as they
   * stand at `now`. With `newest`, the last `limit` of the range instead of the first.
   */
  klines(
    market: MarketType,
    symbol: string,
    interval: Interval,
    range: { from: number; to: number; limit: number; newest?: boolean; now: number },
  ): RawKline[] {
    const state = this.#markets.get(market)?.get(symbol);
    if (state === undefined) return [];
    const to = Math.min(range.to, range.now, state.info.delistedAt ?? Number.POSITIVE_INFINITY);
    const from = Math.max(range.from, openTimeOf(interval, state.info.listedAt));
    const rows: RawKline[] = [];
    if (to < from || range.limit <= 0) return rows;
    if (range.newest === true) {
      for (let t = openTimeOf(interval, to); t >= from && rows.length < range.limit; t = previousOpen(interval, t)) {
        const row = this.kline(market, symbol, interval, t, range.now);
        if (row !== undefined) rows.push(row);
      }
      return rows.reverse();
    }
    let t = openTimeOf(interval, from);
    if (t < from) t = nextOpenTime(interval, t);
    for (; t <= to && rows.length < range.limit; t = nextOpenTime(interval, t)) {
      const row = this.kline(market, symbol, interval, t, range.now);
      if (row !== undefined) rows.push(row);
    }
    return rows;
  }

  #refresh(state: SymbolState, now: number): SimSymbol {
    const info = state.info;
    if (state.awaitingListing && info.listedAt <= now) {
      info.status = 'TRADING';
      state.awaitingListing = false;
    }
    if (info.delistedAt !== undefined && info.delistedAt <= now && info.status === 'TRADING') {
      info.status = info.market === 'SPOT' ? 'BREAK' : 'SETTLING';
    }
    return info;
  }

  #marketStates(market: MarketType): Map<string, SymbolState> {
    let states = this.#markets.get(market);
    if (states === undefined) {
      states = new Map();
      this.#markets.set(market, states);
    }
    return states;
  }

  #state(market: MarketType, symbol: string): SymbolState {
    const state = this.#markets.get(market)?.get(symbol);
    if (state === undefined) throw new InvalidArgumentError(`${market} has no simulated symbol "${symbol}"`);
    return state;
  }

  #forget(market: MarketType, symbol: string): void {
    const prefix = `${market}|${symbol}|`;
    for (const key of this.#cache.keys()) if (key.startsWith(prefix)) this.#cache.delete(key);
    for (const key of this.#forming.keys()) if (key.startsWith(prefix)) this.#forming.delete(key);
  }

  #trimCache(): void {
    let drop = Math.ceil(CACHE_LIMIT / 10);
    for (const key of this.#cache.keys()) {
      if (drop-- <= 0) break;
      this.#cache.delete(key);
    }
  }
}

const SECOND = 1000;
// Forming candles grow a step (half a second) at a time.
const STEP = SECOND / STEPS_PER_SECOND;

function previousOpen(interval: Interval, openTime: number): number {
  return openTimeOf(interval, openTime - 1);
}

/**
 * Folds the parts of [from, to) in which a symbol trades, `from` on a whole second: a second
 * trades when it ends after the listing, starts before the delisting, and lies in no suspension.
 */
function foldTrading(state: SymbolState, fold: KlineFold, from: number, to: number): void {
  const { info, series } = state;
  const start = Math.max(from, Math.floor(info.listedAt / SECOND) * SECOND);
  const end = info.delistedAt === undefined ? to : Math.min(to, Math.ceil(info.delistedAt / SECOND) * SECOND);
  if (info.suspensions.length === 0) {
    if (start < end) foldSpan(series, fold, start, end);
    return;
  }
  let spans: Array<[number, number]> = start < end ? [[start, end]] : [];
  for (const suspension of info.suspensions) {
    const cutFrom = Math.ceil(suspension.from / SECOND) * SECOND;
    const cutTo = Math.floor(suspension.to / SECOND) * SECOND;
    if (cutFrom >= cutTo) continue;
    spans = spans.flatMap(([a, b]): Array<[number, number]> => {
      if (cutTo <= a || cutFrom >= b) return [[a, b]];
      const kept: Array<[number, number]> = [];
      if (a < cutFrom) kept.push([a, cutFrom]);
      if (cutTo < b) kept.push([cutTo, b]);
      return kept;
    });
  }
  for (const [a, b] of spans) foldSpan(series, fold, a, b);
}
