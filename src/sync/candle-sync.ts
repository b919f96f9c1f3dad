/**
 * Keeps every symbol's ring equal to the exchange's candles: the orchestration around the serve
 * rule (`serve-rule.ts`) and the fetch plans (`fetch-plan.ts`). It runs the warm start (snapshot,
 * daily files, then REST for what is still missing), passes stream updates to the rule, fetches a
 * close the stream missed as soon as its boundary deadline passes, repairs holes, and sweeps over
 * REST for symbols the exchange has not confirmed lately.
 *
 * It needs only a small {@link SyncExchange} (clock, budget, klines over REST), not a whole
 * connection, so that it runs against anything that can answer those.
 *
 * @example
 * ```ts
 * const sync = new CandleSync({ rule, exchange: connection, map, logger, events, streamCadenceMs: 250 });
 * await sync.warm(['BTCUSDT'], { useStreams: true });
 * sync.onKline('BTCUSDT', values, false, eventTime); // from the stream, synchronously
 * void sync.watchBoundaries(signal);                 // fetches closes the stream missed
 * await sync.sweep({ staleAfterMs });                // every UPDATE_INTERVAL_SECONDS
 * ```
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { closeTimeOf, openTimeOf, previousOpenTime } from '../binance/intervals.js';
import { COL, type RawKline } from '../binance/kline.js';
import { EIGHT_DECIMALS, type KlineFormats } from '../binance/kline-format.js';
import { FIRST_KLINE_TIME, MARKETS, type Interval } from '../binance/markets.js';
import { AbortedError, BannedError, ClosedError, InvalidArgumentError } from '../errors.js';
import type { Logger } from '../log.js';
import type { CandleRule } from '../rule.js';
import type { CandleMap } from '../store/candle-map.js';
import { sleep } from '../util/abort.js';
import { forEachConcurrently } from '../util/concurrency.js';
import type { SafeEmitter } from '../util/emitter.js';
import type { Histogram } from '../util/histogram.js';
import { REST_CONNECTIONS } from '../exchange/rest-client.js';
import { DerivedSeries } from './derived-bars.js';
import {
  candlesIn,
  missingRanges,
  planSweep,
  rangeWeight,
  seedLevels,
  sweepKind,
  warmConcurrency,
  windowStart,
  type SweepKind,
} from './fetch-plan.js';
import { TrackedSymbol, type RuleClock, type RuleEvents, type SymbolState } from './serve-rule.js';
import { readDailyRows, restoreSnapshot } from './warm-sources.js';

export type { SymbolState } from './serve-rule.js';

/** Events a bot can listen to. */
export interface CandleEvents {
  /**
   * A candle closed and the ring holds its final values (from the stream, or from REST when the
   * stream missed it); once per candle and interval: BAR, and each of the rule's INTERVALS when the
   * last BAR candle of its bar is final.
   */
  candleClosed: (event: { symbol: string; interval: Interval; openTime: number; close: number }) => void;
  /** A hole was found in a symbol's candles (`repaired: false`) or filled over REST (`repaired: true`). */
  gap: (event: { symbol: string; from: number; to: number; repaired: boolean }) => void;
  /** A symbol's data stopped being confirmed by the exchange. */
  stale: (event: { symbol: string; ageMs: number }) => void;
  /**
   * Rows of a ring were written, from open time `from` to its newest (BAR's ring, or a derived
   * ring): the forming candle updated, a candle closed, rows from REST (warm-up, repair, catch-up)
   * or from a daily file. Synchronous, on the hot path: for publishers that mirror the rings (read
   * them with `CandleServer.readRing`); a listener must not block.
   */
  rows: (event: { symbol: string; interval: Interval; from: number; kind: RowsKind }) => void;
  /** A stream connection dropped and is being re-opened. */
  reconnect: (event: { connection: number; attempt: number; delayMs: number; symbols: number }) => void;
}

/** How rows came into a ring (see the `rows` event). */
export type RowsKind = 'forming' | 'closed' | 'rest' | 'file';

/** Counters for metrics and benchmarks. */
export interface SyncStats {
  streamUpdates: number;
  restUpdates: number;
  gapsFound: number;
  gapsRepaired: number;
  sweeps: number;
  sweepRequests: number;
  /** Closes fetched over REST because their boundary deadline passed without them. */
  overdueFetches: number;
  /** Derived rings (INTERVALS) seeded: at start, and again after the base ring lost what they needed. */
  derivedSeeds: number;
}

/** Counters before anything happened. */
export function emptySyncStats(): SyncStats {
  return {
    streamUpdates: 0,
    restUpdates: 0,
    gapsFound: 0,
    gapsRepaired: 0,
    sweeps: 0,
    sweepRequests: 0,
    overdueFetches: 0,
    derivedSeeds: 0,
  };
}

/** What the engine needs of the exchange: its clock, the weight budget's state, klines over REST. */
export interface SyncExchange {
  readonly clock: {
    /** Exchange time now, ms. */
    now(): number;
    /** Exchange time minus local time, ms. */
    readonly offsetMs: number;
    /** Round trip of the best clock sample, ms; undefined before the first. */
    readonly rttMs: number | undefined;
  };
  readonly governor: {
    readonly bannedUntil: number | undefined;
    /** Weight per window this process may spend. */
    readonly budget: number;
    /** Weight spent in the current window. */
    readonly usedWeight: number;
  };
  readonly rest: {
    klinesRange(
      symbol: string,
      interval: Interval,
      from: number,
      to: number,
      options: { signal?: AbortSignal; priority?: 'live' | 'backfill' },
    ): Promise<RawKline[]>;
  };
}

/** Options of {@link CandleSync}. */
export interface CandleSyncOptions {
  readonly rule: CandleRule;
  readonly exchange: SyncExchange;
  readonly map: CandleMap;
  readonly events: SafeEmitter<CandleEvents>;
  readonly logger: Logger;
  /** Stream cadence in ms when streams follow the symbols: the boundary deadline's grace. */
  readonly streamCadenceMs?: number | undefined;
  /** Event-to-ring latency in ms, recorded for every stream update. */
  readonly latency?: Histogram;
  /** Local clock (ms); tests and benchmarks may control it. */
  readonly localNow?: () => number;
  /** The rings of each of the rule's INTERVALS, kept from the BAR ring (created when missing). */
  readonly derivedMaps?: ReadonlyMap<Interval, CandleMap>;
  /** How the exchange prints each symbol's klines: learned from REST rows, used by exact volume sums. */
  readonly formats?: KlineFormats;
}

// Symbols repaired or swept at once; the weight governor paces the requests whatever this is.
const CONCURRENCY = 8;
// Requests the warm-up keeps in flight at least and at most (see warmConcurrency): as many as the
// budget pays for, no more than the REST client's connections (REST_CONNECTIONS).
const WARM_IN_FLIGHT = { minimum: CONCURRENCY, maximum: REST_CONNECTIONS } as const;
// Our exchange clock may be off by up to half a round trip: a REST row counts as final only if it
// closed this long before the request, so a reply made a moment before the close is never taken
// for the final candle.
const MIN_CLOCK_MARGIN_MS = 100;
// Share of the budget the periodic sweep may plan for, leaving room for repairs and other users.
const SWEEP_BUDGET_SHARE = 0.6;
// Share of the budget derived rings may be seeded within: the rest stays with the live rings' repairs.
const SEED_BUDGET_SHARE = 0.5;
// The boundary watch wakes at least this often, so that a month-long bar never needs a longer timer.
const MAX_BOUNDARY_SLEEP_MS = 60_000;

/** The candle synchronisation engine of one market. */
export class CandleSync {
  readonly stats: SyncStats = emptySyncStats();
  readonly #rule: CandleRule;
  readonly #exchange: SyncExchange;
  readonly #map: CandleMap;
  readonly #events: SafeEmitter<CandleEvents>;
  readonly #logger: Logger;
  readonly #latency: Histogram | undefined;
  readonly #localNow: () => number;
  readonly #streamCadenceMs: number | undefined;
  readonly #tracked = new Map<string, TrackedSymbol>();
  // The rule's view of the exchange clock and its margin, shared by every symbol.
  readonly #clock: RuleClock;
  // The rule's reports, turned into events and counters; one object for every symbol.
  readonly #ruleEvents: RuleEvents;
  // Aborted by close(): every REST request of the engine stops.
  readonly #closing = new AbortController();
  // The sweep in progress: sweeps never overlap.
  #sweeping: Promise<void> | undefined;
  // Round-robin cursor so that, under a tight budget, every stale symbol gets its turn.
  #cursor = 0;
  // Symbols being fetched right now (repair, overdue close), so that nothing fetches them twice.
  readonly #fetching = new Set<string>();
  // Each symbol's derived rings (one per interval of INTERVALS), kept from its base ring.
  readonly #derived = new Map<string, DerivedSeries[]>();
  readonly #derivedMaps: ReadonlyMap<Interval, CandleMap>;
  readonly #derivedEvents = new Map<Interval, RuleEvents>();
  // Symbols whose derived rings are being seeded right now.
  readonly #seeding = new Set<string>();
  readonly #formats: KlineFormats | undefined;

  constructor(options: CandleSyncOptions) {
    this.#rule = options.rule;
    this.#exchange = options.exchange;
    this.#map = options.map;
    this.#events = options.events;
    this.#logger = options.logger.child({ component: 'sync', market: options.rule.MARKET });
    this.#latency = options.latency;
    this.#localNow = options.localNow ?? Date.now;
    this.#streamCadenceMs = options.streamCadenceMs;
    const clock = this.#exchange.clock;
    this.#clock = { now: () => clock.now(), marginMs: () => Math.max(MIN_CLOCK_MARGIN_MS, 2 * (clock.rttMs ?? 0)) };
    this.#formats = options.formats;
    this.#derivedMaps = options.derivedMaps ?? new Map();
    const closedIn =
      (interval: Interval) =>
      (symbol: string, openTime: number, close: number): void => {
        if (this.#events.has('candleClosed')) this.#events.emit('candleClosed', { symbol, interval, openTime, close });
      };
    for (const interval of this.#rule.INTERVALS) {
      this.#derivedEvents.set(interval, { closed: closedIn(interval), hole: () => undefined });
    }
    this.#ruleEvents = {
      closed: closedIn(this.#rule.BAR),
      hole: (symbol, from) => {
        this.stats.gapsFound += 1;
        this.#events.emit('gap', { symbol, from, to: clock.now(), repaired: false });
      },
    };
  }

  /**
   * The bookkeeping of a symbol's BAR ring, or of one of its derived rings (`interval` of the
   * rule's INTERVALS); undefined when it is not followed.
   */
  tracked(symbol: string, interval: Interval = this.#rule.BAR): TrackedSymbol | undefined {
    if (interval === this.#rule.BAR) return this.#tracked.get(symbol);
    return this.#series(symbol, interval)?.tracked;
  }

  /** Every followed symbol. */
  symbols(): string[] {
    return [...this.#tracked.keys()];
  }

  /**
   * Puts the rings of `symbols` from the newest valid snapshots into the maps (BAR's and each
   * derived interval's): the first warm-start source.
   */
  async restoreSnapshot(symbols: readonly string[]): Promise<void> {
    await restoreSnapshot(this.#rule, symbols, this.#map, this.#logger);
    for (const [interval, map] of this.#derivedMaps) await restoreSnapshot(this.#rule, symbols, map, this.#logger, interval);
  }

  /**
   * Adds symbols and fills their rings: rows already in the map (from a snapshot) are kept, older
   * candles come from the daily files, and REST fills whatever is still missing up to the forming
   * candle. With `useStreams`, a symbol whose snapshot already reaches the current candle costs no
   * request: the stream's first event confirms it.
   */
  async warm(symbols: readonly string[], options: { useStreams: boolean; signal?: AbortSignal }): Promise<void> {
    for (const symbol of symbols) {
      if (this.#tracked.has(symbol)) continue;
      const ring = this.#map.get(symbol) ?? this.#map.add(symbol);
      this.#tracked.set(
        symbol,
        new TrackedSymbol({
          symbol,
          ring,
          bar: this.#rule.BAR,
          clock: this.#clock,
          cadenceMs: this.#streamCadenceMs,
          events: this.#ruleEvents,
        }),
      );
      if (this.#rule.INTERVALS.length > 0) this.#derived.set(symbol, this.#newSeries(symbol));
    }
    const signal = this.#signal(options.signal);
    let done = 0;
    const startedAt = this.#localNow();
    await forEachConcurrently(symbols, this.#warmInFlight(), async (symbol) => {
      const tracked = this.#tracked.get(symbol);
      if (tracked === undefined || tracked.isReady) return;
      try {
        await this.#warmOne(tracked, options.useStreams, signal);
      } catch (error) {
        if (isStop(error, signal)) throw error;
        // The sweep retries it: a symbol that failed to warm is simply not ready yet.
        this.#logger.error({ err: error, symbol }, 'warm start failed; the sweep will retry');
      }
      done += 1;
      if (done % 100 === 0 || done === symbols.length) {
        this.#logger.info({ done, total: symbols.length, elapsedMs: this.#localNow() - startedAt }, 'candle map warm-up progress');
      }
    });
  }

  /** Stops following symbols and drops their rings. */
  remove(symbols: readonly string[]): void {
    for (const symbol of symbols) {
      this.#tracked.delete(symbol);
      this.#map.remove(symbol);
      this.#derived.delete(symbol);
      for (const map of this.#derivedMaps.values()) map.remove(symbol);
    }
  }

  /**
   * A stream update: written into the ring in place, synchronously. `values` holds the 12
   * columns; it may be a reused buffer and is not kept.
   */
  onKline(symbol: string, values: ArrayLike<number>, isClosed: boolean, eventTime: number): void {
    const tracked = this.#tracked.get(symbol);
    if (tracked === undefined) return;
    tracked.applyStream(values, isClosed, eventTime);
    const isListening = this.#events.has('rows');
    if (isListening)
      this.#events.emit('rows', {
        symbol,
        interval: this.#rule.BAR,
        from: values[COL.openTime] as number,
        kind: isClosed ? 'closed' : 'forming',
      });
    if (this.#derived.size > 0) this.#followDerived(tracked, eventTime, isListening);
    this.stats.streamUpdates += 1;
    // The clock offset is known to within half a round trip: a slightly negative age is noise.
    if (this.#latency !== undefined) this.#latency.record(Math.max(0, this.#localNow() + this.#exchange.clock.offsetMs - eventTime));
  }

  /**
   * The stream of these symbols was interrupted; data after `sinceExchangeTime` may be missing
   * until repaired.
   */
  onInterrupted(symbols: readonly string[], sinceExchangeTime: number): void {
    for (const symbol of symbols) this.#tracked.get(symbol)?.interrupted(sinceExchangeTime);
  }

  /**
   * Watches candle boundaries until `signal` aborts: once a boundary's deadline (the close time
   * plus one stream cadence plus the clock's margin) has passed, every symbol still lacking that
   * close and the next candle is fetched over REST at once, within the budget. Costs nothing while
   * the streams deliver; does nothing without streams.
   */
  async watchBoundaries(signal?: AbortSignal): Promise<void> {
    const cadence = this.#streamCadenceMs;
    if (cadence === undefined) return;
    const combined = this.#signal(signal);
    const bar = this.#rule.BAR;
    const clock = this.#exchange.clock;
    while (!combined.aborted) {
      const now = clock.now();
      const grace = cadence + this.#clock.marginMs();
      // The deadline of the candle that closed last, if still ahead, else that of the forming one.
      const current = openTimeOf(bar, now);
      const lastDeadline = closeTimeOf(bar, previousOpenTime(bar, current)) + grace + 1;
      const deadline = lastDeadline > now ? lastDeadline : closeTimeOf(bar, current) + grace + 1;
      try {
        await sleep(Math.min(MAX_BOUNDARY_SLEEP_MS, Math.max(1, deadline - now)), combined, 'boundary watch');
        // Let stream messages that arrived meanwhile be read first: the timer runs before I/O.
        await nextTurn();
      } catch (error) {
        if (isStop(error, combined)) return;
        throw error;
      }
      if (clock.now() >= deadline) this.#fetchOverdue(combined);
    }
  }

  /**
   * One REST pass within the weight budget: repairs holes first, then overdue closes, then
   * symbols whose data the exchange has not confirmed for `staleAfterMs` (every symbol in
   * REST-only mode, where this is the update loop), then closed candles whose final values no
   * stream event delivered. Stalest first, round-robin, never more than the budget's share of one
   * interval.
   */
  sweep(options: { staleAfterMs: number; signal?: AbortSignal }): Promise<void> {
    this.#sweeping ??= this.#sweep(options).finally(() => {
      this.#sweeping = undefined;
    });
    return this.#sweeping;
  }

  /** Repairs the holes of these symbols now (after a stream resumed), without waiting for a sweep. */
  async repair(symbols: readonly string[], signal?: AbortSignal): Promise<void> {
    const combined = this.#signal(signal);
    await forEachConcurrently(symbols, CONCURRENCY, async (symbol) => {
      const tracked = this.#tracked.get(symbol);
      if (tracked?.holeFrom === undefined || this.#fetching.has(symbol)) return;
      try {
        await this.#repairOne(tracked, combined);
      } catch (error) {
        if (isStop(error, combined)) throw error;
        this.#logger.warn({ err: error, symbol }, 'repair failed; the sweep will retry');
      }
    });
  }

  /**
   * Why a symbol is or is not served right now, with `securityMs` as the freshness limit, in BAR
   * or one of the rule's INTERVALS. A derived ring is never fresher than its base: while the base
   * is not fresh, that is the reason; then 'warming' until its fold is seeded.
   */
  state(symbol: string, securityMs: number, interval: Interval = this.#rule.BAR): SymbolState {
    const tracked = this.#tracked.get(symbol);
    if (tracked === undefined) return 'unknown';
    const baseState = tracked.state(securityMs, this.#exchange.governor.bannedUntil !== undefined);
    if (interval === this.#rule.BAR) return baseState;
    const series = this.#series(symbol, interval);
    if (series === undefined) return 'unknown';
    if (baseState !== 'fresh') return baseState;
    if (!series.isSeeded || !series.tracked.isReady) return 'warming';
    return series.isServable(tracked, securityMs) ? 'fresh' : 'repairing';
  }

  /**
   * The ring of `symbol` in `interval` (BAR or one of INTERVALS) when it may be served (see
   * {@link TrackedSymbol.isServable} and {@link DerivedSeries.isServable}). The one freshness rule
   * behind getCandleSecurity and `state`; on the read path, so it allocates nothing.
   */
  servable(symbol: string, securityMs: number, interval: Interval = this.#rule.BAR): TrackedSymbol['ring'] | undefined {
    const tracked = this.#tracked.get(symbol);
    if (tracked === undefined) return undefined;
    if (interval === this.#rule.BAR) return tracked.isServable(securityMs) ? tracked.ring : undefined;
    const series = this.#series(symbol, interval);
    return series !== undefined && series.isServable(tracked, securityMs) ? series.ring : undefined;
  }

  /**
   * True once a symbol followed over the streams has had its first stream update and has no hole,
   * unconfirmed or overdue close: the point at which a start-up can call it served. True for a
   * symbol no longer followed.
   */
  isStreamSettled(symbol: string): boolean {
    return this.#tracked.get(symbol)?.isStreamSettled() ?? true;
  }

  /** Stops every request of the engine. Idempotent. */
  async close(): Promise<void> {
    this.#closing.abort(new ClosedError('candle sync'));
    await this.#sweeping?.catch(() => undefined);
  }

  /** Requests the warm-up keeps in flight: what the budget pays for, so that latency is hidden. */
  #warmInFlight(): number {
    const spec = MARKETS[this.#rule.MARKET];
    return warmConcurrency({
      budget: this.#exchange.governor.budget,
      requestWeight: spec.klinesWeight(spec.klinesBestLimit),
      ...WARM_IN_FLIGHT,
    });
  }

  async #warmOne(tracked: TrackedSymbol, useStreams: boolean, signal: AbortSignal): Promise<void> {
    const bar = this.#rule.BAR;
    const current = openTimeOf(bar, this.#exchange.clock.now());
    const start = windowStart(bar, this.#rule.LENGTH, current);
    const ring = tracked.ring;
    tracked.dropBefore(start);
    if (ring.isEmpty || (ring.oldestOpenTime ?? 0) > start) {
      const daily = await readDailyRows(this.#rule, tracked.symbol, start, current, this.#logger);
      this.#formats?.learn(tracked.symbol, daily.at(-1));
      tracked.applyFinal(daily);
      const first = daily[0];
      if (first !== undefined && this.#events.has('rows')) {
        this.#events.emit('rows', { symbol: tracked.symbol, interval: bar, from: first[COL.openTime], kind: 'file' });
      }
    }
    if (useStreams && ring.newestOpenTime === current && ring.isFull && ring.gaps(bar).length === 0) {
      // A fresh snapshot: nothing closed since it was taken; the stream confirms the forming candle.
      tracked.adoptSnapshot(current);
    } else {
      for (const range of missingRanges(ring, bar, start, current, MARKETS[this.#rule.MARKET].klinesBestLimit)) {
        await this.#fetchInto(tracked, range.from, range.to, signal);
      }
      await this.#confirmFinal(tracked, signal);
      tracked.markReady();
    }
  }

  /**
   * Seeds the derived rings (INTERVALS) of the ready symbols among `symbols` that do not follow
   * their base yet: a second pass after the warm-up, at back-fill priority, a few symbols at a time
   * and never past half the budget, so that repairs and overdue closes of the live rings keep their
   * weight meanwhile. Failures are left to the sweep.
   */
  async seedDerived(symbols: readonly string[], signal?: AbortSignal): Promise<void> {
    if (this.#derived.size === 0) return;
    const combined = this.#signal(signal);
    const startedAt = this.#localNow();
    let done = 0;
    await forEachConcurrently(symbols, CONCURRENCY, async (symbol) => {
      const tracked = this.#tracked.get(symbol);
      if (tracked === undefined || !tracked.isReady || this.#unseeded(tracked) === 0) return;
      await this.#seedDerived(tracked, combined);
      done += 1;
      if (done % 100 === 0)
        this.#logger.info({ done, total: symbols.length, elapsedMs: this.#localNow() - startedAt }, 'derived rings progress');
    });
  }

  /** Derived rings of `symbol` that do not follow its base yet (0 for a symbol not followed). */
  unseeded(symbol: string): number {
    const tracked = this.#tracked.get(symbol);
    return tracked === undefined ? 0 : this.#unseeded(tracked);
  }

  /** Seeds every derived ring of a ready symbol that does not follow its base yet; a failure is left to the sweep. */
  async #seedDerived(base: TrackedSymbol, signal: AbortSignal): Promise<void> {
    // The start-up pass and the sweep may both reach a symbol: one seeds it.
    if (this.#seeding.has(base.symbol)) return;
    this.#seeding.add(base.symbol);
    try {
      for (const series of this.#derived.get(base.symbol) ?? []) {
        if (series.isSeeded) continue;
        try {
          await this.#backfillRoom(signal);
          await this.#seedSeries(base, series, signal);
        } catch (error) {
          if (isStop(error, signal)) throw error;
          if (!(error instanceof BannedError)) {
            this.#logger.warn(
              { err: error, symbol: base.symbol, interval: series.interval },
              'seeding a derived ring failed; the sweep will retry',
            );
          }
        }
      }
    } finally {
      this.#seeding.delete(base.symbol);
    }
  }

  /**
   * Fills a derived ring's history (native klines of its interval, from where a snapshot left off)
   * and seeds the fold of the bucket holding the base's first candle without final values: from
   * the base ring when it reaches back to the bucket's start, else from native klines of coarser
   * intervals (seedLevels) and then BAR candles. Tries again when a bucket closes meanwhile.
   */
  async #seedSeries(base: TrackedSymbol, series: DerivedSeries, signal: AbortSignal): Promise<void> {
    const { BAR: bar, LENGTH, MARKET } = this.#rule;
    const interval = series.interval;
    const clock = this.#exchange.clock;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const current = openTimeOf(interval, clock.now());
      // LENGTH days, weeks or months may reach back before Binance existed: no kline is older.
      const start = Math.max(windowStart(interval, LENGTH, current), openTimeOf(interval, FIRST_KLINE_TIME));
      series.tracked.dropBefore(start);
      const ring = series.ring;
      // A snapshot that reaches the forming bar needs no history: the fold rewrites that bar.
      if (!(ring.newestOpenTime === current && ring.isFull && ring.gaps(interval).length === 0)) {
        for (const range of missingRanges(ring, interval, start, current, MARKETS[MARKET].klinesBestLimit)) {
          await this.#fetchInto(series.tracked, range.from, range.to, signal, interval);
        }
        await this.#confirmFinal(series.tracked, signal, interval);
      }
      const pending = base.pendingFinal() ?? openTimeOf(bar, clock.now());
      const bucket = openTimeOf(interval, pending);
      const tiles: RawKline[] = [];
      let tilesEnd = bucket;
      if ((base.ring.oldestOpenTime ?? Number.POSITIVE_INFINITY) > bucket) {
        for (const level of seedLevels(bar, interval)) {
          const end = openTimeOf(level, pending);
          if (end > tilesEnd) tilesEnd = await this.#fetchTiles(base.symbol, level, tilesEnd, end, tiles, signal);
        }
        if ((base.ring.oldestOpenTime ?? Number.POSITIVE_INFINITY) > tilesEnd && pending > tilesEnd) {
          tilesEnd = await this.#fetchTiles(base.symbol, bar, tilesEnd, pending, tiles, signal);
        }
      }
      // Synchronously from here: the base may have moved on during the requests.
      if (openTimeOf(interval, base.pendingFinal() ?? pending) !== bucket) continue;
      if (series.seed(bucket, tiles, tilesEnd, base, clock.now())) {
        this.stats.derivedSeeds += 1;
        if (this.#events.has('rows')) this.#events.emit('rows', { symbol: base.symbol, interval, from: start, kind: 'rest' });
        return;
      }
    }
    this.#logger.info({ symbol: base.symbol, interval }, 'derived ring not seeded yet (the base moved on meanwhile); the sweep retries');
  }

  /**
   * Appends to `tiles` the final native klines of `level` from `from` up to (not including) `end`,
   * as the exchange printed them (their volumes are summed from the text, exactly); returns the open time after the last one taken: `end` when every candle of the
   * range was final, else the first that may still have been forming.
   */
  async #fetchTiles(symbol: string, level: Interval, from: number, end: number, tiles: RawKline[], signal: AbortSignal): Promise<number> {
    const sentAt = this.#exchange.clock.now();
    const rows = await this.#exchange.rest.klinesRange(symbol, level, from, previousOpenTime(level, end), { signal, priority: 'backfill' });
    this.stats.restUpdates += 1;
    const finalBefore = sentAt - this.#clock.marginMs();
    for (const row of rows) {
      if (row[COL.openTime] < from) continue;
      if (row[COL.closeTime] >= finalBefore) return row[COL.openTime];
      tiles.push(row);
    }
    return end;
  }

  /** Waits while more than SEED_BUDGET_SHARE of the window's budget is spent: the rest is the live rings'. */
  async #backfillRoom(signal: AbortSignal): Promise<void> {
    const governor = this.#exchange.governor;
    while (governor.usedWeight > governor.budget * SEED_BUDGET_SHARE) await sleep(250, signal, 'derived rings: budget');
  }

  #newSeries(symbol: string): DerivedSeries[] {
    return this.#rule.INTERVALS.map((interval) => {
      const map = this.#derivedMaps.get(interval);
      if (map === undefined) throw new InvalidArgumentError(`no candle map was given for the derived interval ${interval}`);
      const ring = map.get(symbol) ?? map.add(symbol);
      return new DerivedSeries({
        symbol,
        bar: this.#rule.BAR,
        interval,
        ring,
        clock: this.#clock,
        events: this.#derivedEvents.get(interval) ?? { closed: () => undefined, hole: () => undefined },
        format: () => this.#formats?.of(symbol) ?? EIGHT_DECIMALS,
      });
    });
  }

  #series(symbol: string, interval: Interval): DerivedSeries | undefined {
    const derived = this.#derived.get(symbol);
    if (derived === undefined) return undefined;
    for (const series of derived) if (series.interval === interval) return series;
    return undefined;
  }

  /**
   * A candle that closed within the clock margin before a REST request may have been sent while
   * still forming, so it is not taken as final. Waits out the margin and asks for it again, so
   * that a warm-up or a repair ends with every closed candle final.
   */
  async #confirmFinal(tracked: TrackedSymbol, signal: AbortSignal, bar: Interval = this.#rule.BAR): Promise<void> {
    const newest = tracked.ring.newestOpenTime;
    const pending = tracked.pendingFinal();
    if (pending === undefined || newest === undefined || pending >= newest) return;
    const waitMs = closeTimeOf(bar, pending) + this.#clock.marginMs() - this.#exchange.clock.now();
    if (waitMs > 0) await sleep(waitMs, signal, 'confirming a closed candle');
    // The stream may have delivered its close meanwhile.
    if (tracked.pendingFinal() === pending) {
      await this.#fetchInto(tracked, pending, openTimeOf(bar, this.#exchange.clock.now()), signal, bar);
    }
  }

  /**
   * Fetches [from, to] over REST into the ring and records the exchange's confirmation. In BAR
   * (live priority), the derived rings then follow; in a derived interval (back-fill priority), the
   * rows are that ring's history.
   */
  async #fetchInto(
    tracked: TrackedSymbol,
    from: number,
    to: number,
    signal: AbortSignal,
    interval: Interval = this.#rule.BAR,
  ): Promise<void> {
    const isBase = interval === this.#rule.BAR;
    const sentAt = this.#exchange.clock.now();
    const rows = await this.#exchange.rest.klinesRange(tracked.symbol, interval, from, to, {
      signal,
      priority: isBase ? 'live' : 'backfill',
    });
    this.#formats?.learn(tracked.symbol, rows.at(-1));
    tracked.applyRest(rows, sentAt, from);
    this.stats.restUpdates += 1;
    const isListening = this.#events.has('rows');
    if (isListening && rows.length > 0)
      this.#events.emit('rows', { symbol: tracked.symbol, interval, from: rows[0]?.[COL.openTime] ?? from, kind: 'rest' });
    if (isBase) this.#followDerived(tracked, sentAt, isListening);
  }

  /** The derived rings of a symbol follow its base after a write; the rows they write are reported. */
  #followDerived(base: TrackedSymbol, eventTime: number, isListening: boolean): void {
    const derived = this.#derived.get(base.symbol);
    if (derived === undefined) return;
    for (const series of derived) {
      const finalBefore = series.tracked.finalOpenTime;
      const from = series.follow(base, eventTime);
      if (isListening && from !== Number.POSITIVE_INFINITY) {
        // A bar closed when the derived ring's final chain grew.
        const kind = series.tracked.finalOpenTime > finalBefore ? 'closed' : 'forming';
        this.#events.emit('rows', { symbol: base.symbol, interval: series.interval, from, kind });
      }
    }
  }

  async #repairOne(tracked: TrackedSymbol, signal: AbortSignal): Promise<void> {
    const from = tracked.holeFrom;
    if (from === undefined) return;
    this.#fetching.add(tracked.symbol);
    try {
      const to = openTimeOf(this.#rule.BAR, this.#exchange.clock.now());
      await this.#fetchInto(tracked, from, to, signal);
      await this.#confirmFinal(tracked, signal);
      if (tracked.repaired(from)) {
        this.stats.gapsRepaired += 1;
        this.#logger.info({ symbol: tracked.symbol, from: new Date(from).toISOString() }, 'gap repaired over REST');
        this.#events.emit('gap', { symbol: tracked.symbol, from, to, repaired: true });
      }
    } finally {
      this.#fetching.delete(tracked.symbol);
    }
  }

  /** Brings a symbol up to date from its oldest candle without final values. */
  async #catchUp(tracked: TrackedSymbol, signal: AbortSignal): Promise<void> {
    const current = openTimeOf(this.#rule.BAR, this.#exchange.clock.now());
    await this.#fetchInto(tracked, this.#catchUpFrom(tracked, current), current, signal);
    await this.#confirmFinal(tracked, signal);
  }

  /** Where catching up starts: the first candle without final values, the newest row at the latest. */
  #catchUpFrom(tracked: TrackedSymbol, current: number): number {
    const pending = tracked.pendingFinal() ?? windowStart(this.#rule.BAR, this.#rule.LENGTH, current);
    return Math.min(pending, tracked.ring.newestOpenTime ?? current);
  }

  /** Fetches, in the background, the closes of every symbol past its boundary deadline. */
  #fetchOverdue(signal: AbortSignal): void {
    if (this.#exchange.governor.bannedUntil !== undefined) return;
    const now = this.#exchange.clock.now();
    const overdue: TrackedSymbol[] = [];
    for (const tracked of this.#tracked.values()) {
      if (tracked.holeFrom === undefined && !this.#fetching.has(tracked.symbol) && tracked.isOverdue(now)) overdue.push(tracked);
    }
    if (overdue.length === 0) return;
    this.#logger.info(
      { count: overdue.length, symbols: overdue.slice(0, 10).map((t) => t.symbol) },
      'closes overdue on the stream; fetching them over REST',
    );
    for (const tracked of overdue) this.#fetching.add(tracked.symbol);
    forEachConcurrently(overdue, CONCURRENCY, async (tracked) => {
      try {
        this.stats.overdueFetches += 1;
        await this.#catchUp(tracked, signal);
      } catch (error) {
        if (isStop(error, signal)) throw error;
        if (!(error instanceof BannedError))
          this.#logger.warn({ err: error, symbol: tracked.symbol }, 'fetching an overdue close failed; the sweep will retry');
      } finally {
        this.#fetching.delete(tracked.symbol);
      }
    }).catch(() => {
      // Stopped: the engine is closing.
      for (const tracked of overdue) this.#fetching.delete(tracked.symbol);
    });
  }

  async #sweep(options: { staleAfterMs: number; signal?: AbortSignal }): Promise<void> {
    const signal = this.#signal(options.signal);
    const now = this.#exchange.clock.now();
    const bar = this.#rule.BAR;
    const governor = this.#exchange.governor;
    if (governor.bannedUntil !== undefined) return;
    this.stats.sweeps += 1;
    const all = [...this.#tracked.values()];
    const count = all.length;
    const due: Array<{ tracked: TrackedSymbol; kind: SweepKind; confirmedAt: number; weight: number }> = [];
    for (let i = 0; i < count; i += 1) {
      const tracked = all[(this.#cursor + i) % count] as TrackedSymbol;
      const kind = sweepKind(tracked, bar, now, options.staleAfterMs) ?? (this.#unseeded(tracked) > 0 ? 'derive' : undefined);
      if (kind === undefined) continue;
      const weight = kind === 'derive' ? this.#seedWeight(tracked) : this.#catchUpWeight(tracked, now);
      due.push({ tracked, kind, confirmedAt: tracked.confirmedAt, weight });
      const age = now - tracked.confirmedAt;
      if (tracked.isReady && !tracked.isReportedStale && age >= options.staleAfterMs && tracked.confirmedAt > 0) {
        tracked.isReportedStale = true;
        this.#events.emit('stale', { symbol: tracked.symbol, ageMs: age });
      }
    }
    if (count > 0) this.#cursor = (this.#cursor + 1) % count;
    // Plan within the budget's share of one update interval: a big universe is covered over several sweeps.
    const spec = MARKETS[this.#rule.MARKET];
    const allowance = Math.max(
      spec.klinesWeight(spec.klinesBestLimit),
      (governor.budget * SWEEP_BUDGET_SHARE * this.#rule.UPDATE_INTERVAL_SECONDS) / 60,
    );
    await forEachConcurrently(planSweep(due, allowance), CONCURRENCY, async ({ tracked, kind }) => {
      if (!this.#tracked.has(tracked.symbol) || this.#fetching.has(tracked.symbol)) return;
      try {
        this.stats.sweepRequests += 1;
        if (kind === 'warm') await this.#warmOne(tracked, false, signal);
        else if (kind === 'repair') await this.#repairOne(tracked, signal);
        else if (kind === 'derive') await this.#seedDerived(tracked, signal);
        else await this.#catchUp(tracked, signal);
      } catch (error) {
        if (isStop(error, signal)) throw error;
        if (error instanceof BannedError) return;
        this.#logger.warn({ err: error, symbol: tracked.symbol, kind }, 'sweep request failed');
      }
    });
  }

  /** Derived rings of a symbol that do not follow its base yet. */
  #unseeded(tracked: TrackedSymbol): number {
    let count = 0;
    for (const series of this.#derived.get(tracked.symbol) ?? []) if (!series.isSeeded) count += 1;
    return count;
  }

  /** Weight of seeding a symbol's derived rings, at most: a window of history and a request per seed level each. */
  #seedWeight(tracked: TrackedSymbol): number {
    const spec = MARKETS[this.#rule.MARKET];
    return this.#unseeded(tracked) * (rangeWeight(this.#rule.MARKET, this.#rule.LENGTH) + 3 * spec.klinesWeight(60));
  }

  /** Weight of bringing a symbol up to date: its missing candles in best-size pages. */
  #catchUpWeight(tracked: TrackedSymbol, now: number): number {
    const bar = this.#rule.BAR;
    const current = openTimeOf(bar, now);
    const from = tracked.holeFrom ?? this.#catchUpFrom(tracked, current);
    const candles = tracked.isReady ? Math.max(1, candlesIn([{ from, to: current }], bar)) : this.#rule.LENGTH;
    return rangeWeight(this.#rule.MARKET, candles);
  }

  #signal(signal: AbortSignal | undefined): AbortSignal {
    return signal === undefined ? this.#closing.signal : AbortSignal.any([signal, this.#closing.signal]);
  }
}

function isStop(error: unknown, signal: AbortSignal): boolean {
  return error instanceof AbortedError || error instanceof ClosedError || signal.aborted;
}
