/**
 * Keeps every symbol's ring equal to the exchange's candles: the warm start (snapshot, then daily
 * files, then REST for what is still missing), live updates written in place from the streams,
 * the REST sweep that brings stale symbols up to date and confirms closed candles the stream did
 * not, and repair of the holes that disconnects and stalls leave.
 *
 * Per symbol it tracks two things the freshness rule needs:
 * - `confirmedAt`: exchange time at which the exchange last vouched for this symbol's data (a
 *   stream event's `E`, or the exchange clock when a REST reply arrived);
 * - `holeFrom`: the open time from which the ring may lack candles the exchange has (set on a
 *   disconnect or a skipped candle, cleared once REST has filled the range). While it is set the
 *   symbol is not served, so served data never has a hole the exchange does not have.
 *
 * @example
 * ```ts
 * const sync = new CandleSync({ rule, connection, map, logger, events });
 * await sync.warm(['BTCUSDT'], { useStreams: true });
 * sync.onKline('BTCUSDT', values, false, eventTime); // from the stream, synchronously
 * await sync.sweep();                                 // every UPDATE_INTERVAL_SECONDS
 * ```
 */
import { AbortedError, BannedError, ClosedError } from '../errors.js';
import { closeTimeOf, intervalMs, nextOpenTime, openTimeOf, previousOpenTime } from '../binance/intervals.js';
import { COL, type RawKline } from '../binance/kline.js';
import { MARKETS } from '../binance/markets.js';
import { readDailyFile } from '../files/daily-file.js';
import { dailyFilePath, localDayBounds, localDayOf, addDays } from '../files/daily-layout.js';
import type { Logger } from '../log.js';
import { sleep } from '../util/abort.js';
import { forEachConcurrently } from '../util/concurrency.js';
import type { CandleRule } from '../rule.js';
import type { CandleMap } from '../store/candle-map.js';
import type { CandleRing } from '../store/candle-ring.js';
import type { SafeEmitter } from '../util/emitter.js';
import type { Histogram } from '../util/histogram.js';
import type { MarketConnection } from './market-connection.js';

/** Events a bot can listen to. */
export interface CandleEvents {
  /** A candle closed and the ring holds its final values (from the stream, or from REST when the stream missed it); once per candle. */
  candleClosed: (event: { symbol: string; openTime: number; close: number }) => void;
  /** A hole was found in a symbol's candles (`repaired: false`) or filled over REST (`repaired: true`). */
  gap: (event: { symbol: string; from: number; to: number; repaired: boolean }) => void;
  /** A symbol's data stopped being confirmed by the exchange. */
  stale: (event: { symbol: string; ageMs: number }) => void;
  /** A stream connection dropped and is being re-opened. */
  reconnect: (event: { connection: number; attempt: number; delayMs: number; symbols: number }) => void;
}

/** Why a symbol is or is not served. */
export type SymbolState = 'unknown' | 'warming' | 'fresh' | 'stale' | 'repairing' | 'banned';

/** Per-symbol bookkeeping beside its ring. */
export interface Tracked {
  readonly symbol: string;
  readonly ring: CandleRing;
  /** Exchange time of the last confirmation; 0 = never. */
  confirmedAt: number;
  /** Exchange time (`E`) of the last stream update; 0 = never. */
  streamAt: number;
  /** True once the warm start has filled the ring. */
  isReady: boolean;
  /** Open time from which candles may be missing, or undefined when the ring has no hole. */
  holeFrom: number | undefined;
  /** Open time of the newest candle whose final values the ring holds. */
  finalOpenTime: number;
  /** Set once `stale` was emitted, so it is emitted once per episode. */
  isReportedStale: boolean;
}

/** Counters for metrics and benchmarks. */
export interface SyncStats {
  streamUpdates: number;
  restUpdates: number;
  gapsFound: number;
  gapsRepaired: number;
  sweeps: number;
  sweepRequests: number;
}

/** Options of {@link CandleSync}. */
export interface CandleSyncOptions {
  readonly rule: CandleRule;
  readonly connection: MarketConnection;
  readonly map: CandleMap;
  readonly events: SafeEmitter<CandleEvents>;
  readonly logger: Logger;
  /** Event-to-ring latency in ms, recorded for every stream update. */
  readonly latency?: Histogram;
  /** Local clock (ms); tests and benchmarks may control it. */
  readonly localNow?: () => number;
}

// Symbols warmed or swept at once; the weight governor paces the requests whatever this is.
const CONCURRENCY = 8;
// Our exchange clock may be off by up to half a round trip: a REST row counts as final only if it
// closed this long before the request, so a reply made a moment before the close is never taken
// for the final candle.
const MIN_CLOCK_MARGIN_MS = 100;
// Share of the budget the periodic sweep may plan for, leaving room for repairs and other users.
const SWEEP_BUDGET_SHARE = 0.6;

/** The candle synchronisation engine of one market. */
export class CandleSync {
  readonly stats: SyncStats = { streamUpdates: 0, restUpdates: 0, gapsFound: 0, gapsRepaired: 0, sweeps: 0, sweepRequests: 0 };
  readonly #rule: CandleRule;
  readonly #connection: MarketConnection;
  readonly #map: CandleMap;
  readonly #events: SafeEmitter<CandleEvents>;
  readonly #logger: Logger;
  readonly #latency: Histogram | undefined;
  readonly #localNow: () => number;
  readonly #tracked = new Map<string, Tracked>();
  // Aborted by close(): every REST request of the engine stops.
  readonly #closing = new AbortController();
  // The sweep in progress: sweeps never overlap.
  #sweeping: Promise<void> | undefined;
  // Round-robin cursor so that, under a tight budget, every stale symbol gets its turn.
  #cursor = 0;
  // Symbols being repaired right now, so a sweep does not repair them twice.
  readonly #repairing = new Set<string>();

  constructor(options: CandleSyncOptions) {
    this.#rule = options.rule;
    this.#connection = options.connection;
    this.#map = options.map;
    this.#events = options.events;
    this.#logger = options.logger.child({ component: 'sync', market: options.rule.MARKET });
    this.#latency = options.latency;
    this.#localNow = options.localNow ?? Date.now;
  }

  /** The bookkeeping of a symbol, or undefined when it is not followed. */
  tracked(symbol: string): Tracked | undefined {
    return this.#tracked.get(symbol);
  }

  /** Every followed symbol. */
  symbols(): string[] {
    return [...this.#tracked.keys()];
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
      this.#tracked.set(symbol, { symbol, ring, confirmedAt: 0, streamAt: 0, isReady: false, holeFrom: undefined, finalOpenTime: 0, isReportedStale: false });
    }
    const signal = this.#signal(options.signal);
    let done = 0;
    const startedAt = this.#localNow();
    await forEachConcurrently(symbols, CONCURRENCY, async (symbol) => {
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
    }
  }

  /**
   * A stream update: written into the ring in place, synchronously. `values` holds the 12
   * columns; it may be a reused buffer and is not kept.
   */
  onKline(symbol: string, values: ArrayLike<number>, isClosed: boolean, eventTime: number): void {
    const tracked = this.#tracked.get(symbol);
    if (tracked === undefined) return;
    const openTime = values[COL.openTime] as number;
    const ring = tracked.ring;
    const newest = ring.newestOpenTime;
    if (tracked.isReady && newest !== undefined && openTime > newest) {
      // A new candle: the one before must have closed with its final values, and none may be skipped.
      // Otherwise (the stream was down, or a close event never came) the ring has a hole until REST fills it.
      const firstMissing = tracked.finalOpenTime < newest ? newest : nextOpenTime(this.#rule.BAR, newest);
      if (firstMissing < openTime) this.#markHole(tracked, firstMissing);
    }
    ring.upsertNumbers(
      openTime,
      values[1] as number,
      values[2] as number,
      values[3] as number,
      values[4] as number,
      values[5] as number,
      values[6] as number,
      values[7] as number,
      values[8] as number,
      values[9] as number,
      values[10] as number,
      values[11] as number,
    );
    if (eventTime > tracked.confirmedAt) tracked.confirmedAt = eventTime;
    if (eventTime > tracked.streamAt) tracked.streamAt = eventTime;
    tracked.isReportedStale = false;
    this.stats.streamUpdates += 1;
    // The clock offset is known to within half a round trip: a slightly negative age is noise.
    if (this.#latency !== undefined) this.#latency.record(Math.max(0, this.#localNow() + this.#connection.clock.offsetMs - eventTime));
    if (isClosed && openTime > tracked.finalOpenTime) {
      // Final values advance one candle at a time: a close that skips one leaves that candle
      // unconfirmed, a hole for REST to fill (the repair then reports both closes).
      const unconfirmed = nextOpenTime(this.#rule.BAR, tracked.finalOpenTime);
      if (tracked.isReady && tracked.finalOpenTime > 0 && unconfirmed < openTime) {
        this.#markHole(tracked, unconfirmed);
      } else {
        tracked.finalOpenTime = openTime;
        if (this.#events.has('candleClosed')) this.#events.emit('candleClosed', { symbol, openTime, close: values[4] as number });
      }
    }
  }

  /**
   * The stream of these symbols was interrupted; data after `sinceExchangeTime` may be missing
   * until repaired.
   */
  onInterrupted(symbols: readonly string[], sinceExchangeTime: number): void {
    const from = openTimeOf(this.#rule.BAR, sinceExchangeTime);
    for (const symbol of symbols) {
      const tracked = this.#tracked.get(symbol);
      if (tracked?.isReady) this.#markHole(tracked, from);
    }
  }

  /**
   * One REST pass within the weight budget: repairs holes first, then symbols whose data the
   * exchange has not confirmed for `staleAfterMs` (every symbol in REST-only mode, where this is
   * the update loop), then closed candles whose final values no stream event delivered. Stalest
   * first, round-robin, never more than the budget's share of one interval.
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
      if (tracked?.holeFrom === undefined || this.#repairing.has(symbol)) return;
      try {
        await this.#repairOne(tracked, combined);
      } catch (error) {
        if (isStop(error, combined)) throw error;
        this.#logger.warn({ err: error, symbol }, 'repair failed; the sweep will retry');
      }
    });
  }

  /** Why a symbol is or is not served right now, with `securityMs` as the freshness limit. */
  state(symbol: string, securityMs: number): SymbolState {
    const tracked = this.#tracked.get(symbol);
    if (tracked === undefined) return 'unknown';
    if (!tracked.isReady) return 'warming';
    const isWhole = tracked.holeFrom === undefined && this.#isFinal(tracked);
    if (isWhole && this.#isFresh(tracked, securityMs)) return 'fresh';
    // During a ban nothing can be fetched: that is the reason, whatever needs fetching.
    if (this.#connection.governor.bannedUntil !== undefined) return 'banned';
    return isWhole ? 'stale' : 'repairing';
  }

  /**
   * The ring of `symbol` when it may be served: ready, without a hole, and fresh within
   * `securityMs` (see {@link CandleSync}). The one freshness rule behind getCandleSecurity and
   * `state`; on the read path, so it allocates nothing.
   */
  servable(symbol: string, securityMs: number): CandleRing | undefined {
    const tracked = this.#tracked.get(symbol);
    if (tracked === undefined || !tracked.isReady || tracked.holeFrom !== undefined || !this.#isFinal(tracked)) return undefined;
    return this.#isFresh(tracked, securityMs) ? tracked.ring : undefined;
  }

  /** Every row but the newest holds final values: closed candles are served only as they closed. */
  #isFinal(tracked: Tracked): boolean {
    const newest = tracked.ring.newestOpenTime;
    return newest === undefined || tracked.finalOpenTime >= previousOpenTime(this.#rule.BAR, newest) || tracked.ring.count < 2;
  }

  /**
   * True once a symbol followed over the streams has had its first stream update and has no hole
   * or unconfirmed close: the point at which a start-up can call it served. True for a symbol no
   * longer followed.
   */
  isStreamSettled(symbol: string): boolean {
    const tracked = this.#tracked.get(symbol);
    if (tracked === undefined) return true;
    return tracked.isReady && tracked.streamAt > 0 && tracked.holeFrom === undefined && this.#isFinal(tracked);
  }

  /** The newest candle opened, and the exchange last confirmed the symbol, less than `securityMs` ago. */
  #isFresh(tracked: Tracked, securityMs: number): boolean {
    const now = this.#connection.clock.now();
    return now - (tracked.ring.newestOpenTime ?? 0) < securityMs && now - tracked.confirmedAt < securityMs;
  }

  /** Stops every request of the engine. Idempotent. */
  async close(): Promise<void> {
    this.#closing.abort(new ClosedError('candle sync'));
    await this.#sweeping?.catch(() => undefined);
  }

  async #warmOne(tracked: Tracked, useStreams: boolean, signal: AbortSignal): Promise<void> {
    const bar = this.#rule.BAR;
    const now = this.#connection.clock.now();
    const current = openTimeOf(bar, now);
    const windowStart = this.#windowStart(current);
    const ring = tracked.ring;
    if (ring.isEmpty || (ring.oldestOpenTime ?? 0) > windowStart) await this.#loadDailyFiles(tracked, windowStart, current);
    if (useStreams && ring.newestOpenTime === current && ring.isFull && ring.gaps(bar).length === 0) {
      // A fresh snapshot: nothing closed since it was taken; the stream confirms the forming candle.
      tracked.finalOpenTime = previousOpenTime(bar, current);
      tracked.isReady = true;
      return;
    }
    for (const range of this.#missingRanges(ring, windowStart, current)) {
      await this.#fetchInto(tracked, range.from, range.to, signal);
    }
    await this.#confirmFinal(tracked, signal);
    tracked.isReady = true;
  }

  /**
   * A candle that closed within the clock margin before a REST request may have been sent while
   * still forming, so it is not taken as final. Waits out the margin and asks for it again, so
   * that a warm-up or a repair ends with every closed candle final.
   */
  async #confirmFinal(tracked: Tracked, signal: AbortSignal): Promise<void> {
    const bar = this.#rule.BAR;
    const newest = tracked.ring.newestOpenTime;
    const pending = nextOpenTime(bar, tracked.finalOpenTime);
    if (tracked.finalOpenTime === 0 || newest === undefined || pending >= newest) return;
    const waitMs = closeTimeOf(bar, pending) + this.#finalMarginMs() - this.#connection.clock.now();
    if (waitMs > 0) await sleep(waitMs, signal, 'confirming a closed candle');
    // The stream may have delivered its close meanwhile.
    if (nextOpenTime(bar, tracked.finalOpenTime) === pending) {
      await this.#fetchInto(tracked, pending, openTimeOf(bar, this.#connection.clock.now()), signal);
    }
  }

  /** How long after its close a candle is surely final in a REST reply: the clock's uncertainty. */
  #finalMarginMs(): number {
    return Math.max(MIN_CLOCK_MARGIN_MS, 2 * (this.#connection.clock.rttMs ?? 0));
  }

  /** Open time of the oldest candle of the window that ends with the candle opening at `current`. */
  #windowStart(current: number): number {
    const bar = this.#rule.BAR;
    if (bar !== '1M') return current - (this.#rule.LENGTH - 1) * intervalMs(bar);
    let time = current;
    for (let i = 1; i < this.#rule.LENGTH; i += 1) time = previousOpenTime(bar, time);
    return time;
  }

  /** Ranges of open times in [windowStart, current] the ring lacks: the head, inner holes and the tail. */
  #missingRanges(ring: CandleRing, windowStart: number, current: number): Array<{ from: number; to: number }> {
    const bar = this.#rule.BAR;
    const oldest = ring.oldestOpenTime;
    const newest = ring.newestOpenTime;
    if (oldest === undefined || newest === undefined || newest < windowStart) return [{ from: windowStart, to: current }];
    const ranges: Array<{ from: number; to: number }> = [];
    if (oldest > windowStart) ranges.push({ from: windowStart, to: previousOpenTime(bar, oldest) });
    for (const gap of ring.gaps(bar)) {
      if (gap.to >= windowStart) ranges.push({ from: Math.max(gap.from, windowStart), to: gap.to });
    }
    // From the newest row on: it may have been forming when it was stored.
    ranges.push({ from: newest, to: current });
    return this.#mergeRanges(ranges);
  }

  /**
   * Joins ranges separated by fewer candles than one page holds: fetching a few candles the ring
   * already has costs less weight than another request (a cold ring the stream has just given its
   * forming candle is one range, not a head and a tail).
   */
  #mergeRanges(ranges: Array<{ from: number; to: number }>): Array<{ from: number; to: number }> {
    const span = MARKETS[this.#rule.MARKET].klinesBestLimit * intervalMs(this.#rule.BAR);
    const merged: Array<{ from: number; to: number }> = [];
    for (const range of [...ranges].sort((a, b) => a.from - b.from)) {
      const last = merged.at(-1);
      if (last !== undefined && range.from - last.to <= span) last.to = Math.max(last.to, range.to);
      else merged.push({ ...range });
    }
    return merged;
  }

  /** Fills the ring from daily files of the local days that overlap the window (today excluded). */
  async #loadDailyFiles(tracked: Tracked, windowStart: number, current: number): Promise<void> {
    const { CANDLE_DIR, MARKET, TIMEZONE, BAR } = this.#rule;
    const today = localDayOf(current, TIMEZONE);
    for (let day = localDayOf(windowStart, TIMEZONE); day < today; day = addDays(day, 1)) {
      if (localDayBounds(day, TIMEZONE).end <= windowStart) continue;
      try {
        const rows = await readDailyFile(dailyFilePath(CANDLE_DIR, MARKET, TIMEZONE, BAR, day, tracked.symbol), { timezone: TIMEZONE, bar: BAR, day });
        if (rows === undefined) continue;
        const inWindow = rows.filter((row) => row[0] >= windowStart);
        tracked.ring.upsertMany(inWindow);
        const last = inWindow.at(-1);
        if (last !== undefined && last[0] > tracked.finalOpenTime) tracked.finalOpenTime = last[0];
      } catch (error) {
        // A damaged file only costs the REST requests that replace it.
        this.#logger.warn({ err: error, symbol: tracked.symbol, day }, 'daily file unreadable; using REST instead');
      }
    }
  }

  /** Fetches [from, to] over REST into the ring and records the exchange's confirmation. */
  async #fetchInto(tracked: Tracked, from: number, to: number, signal: AbortSignal): Promise<RawKline[]> {
    const sentAt = this.#connection.clock.now();
    const rows = await this.#connection.rest.klinesRange(tracked.symbol, this.#rule.BAR, from, to, { signal, priority: 'live' });
    this.#apply(tracked, rows, sentAt);
    return rows;
  }

  /**
   * Writes a REST reply requested at exchange time `sentAt`. Rows that closed well before `sentAt`
   * (by more than the clock's uncertainty) are final. A row that may still have been forming when
   * the reply was made never replaces final values, nor a row the stream has updated since the
   * request: the reply is older than those.
   */
  #apply(tracked: Tracked, rows: readonly RawKline[], sentAt: number): void {
    const finalBefore = sentAt - this.#finalMarginMs();
    const isStreamAhead = tracked.streamAt >= sentAt;
    const accepted: RawKline[] = [];
    const previousFinal = tracked.finalOpenTime;
    for (const row of rows) {
      if (row[COL.closeTime] < finalBefore) {
        accepted.push(row);
        if (row[0] > tracked.finalOpenTime) tracked.finalOpenTime = row[0];
      } else if (row[0] > tracked.finalOpenTime && !(isStreamAhead && tracked.ring.indexOf(row[0]) >= 0)) {
        accepted.push(row);
      }
    }
    tracked.ring.upsertMany(accepted);
    // Closes the stream did not deliver (a repair, REST-only mode) are reported too; not the warm-up's history.
    if (tracked.isReady && previousFinal > 0 && this.#events.has('candleClosed')) {
      for (const row of accepted) {
        if (row[0] > previousFinal && row[0] <= tracked.finalOpenTime) {
          this.#events.emit('candleClosed', { symbol: tracked.symbol, openTime: row[0], close: Number(row[COL.close]) });
        }
      }
    }
    if (sentAt > tracked.confirmedAt) tracked.confirmedAt = sentAt;
    tracked.isReportedStale = false;
    this.stats.restUpdates += 1;
  }

  #markHole(tracked: Tracked, from: number): void {
    if (tracked.holeFrom !== undefined && tracked.holeFrom <= from) return;
    tracked.holeFrom = from;
    this.stats.gapsFound += 1;
    this.#events.emit('gap', { symbol: tracked.symbol, from, to: this.#connection.clock.now(), repaired: false });
  }

  async #repairOne(tracked: Tracked, signal: AbortSignal): Promise<void> {
    const from = tracked.holeFrom;
    if (from === undefined) return;
    this.#repairing.add(tracked.symbol);
    try {
      const to = openTimeOf(this.#rule.BAR, this.#connection.clock.now());
      await this.#fetchInto(tracked, from, to, signal);
      await this.#confirmFinal(tracked, signal);
      // Only clear the hole this repair covered: a newer interruption may have set an earlier one.
      if (tracked.holeFrom === from) {
        tracked.holeFrom = undefined;
        this.stats.gapsRepaired += 1;
        this.#logger.info({ symbol: tracked.symbol, from: new Date(from).toISOString() }, 'gap repaired over REST');
        this.#events.emit('gap', { symbol: tracked.symbol, from, to, repaired: true });
      }
    } finally {
      this.#repairing.delete(tracked.symbol);
    }
  }

  async #sweep(options: { staleAfterMs: number; signal?: AbortSignal }): Promise<void> {
    const signal = this.#signal(options.signal);
    const now = this.#connection.clock.now();
    const bar = this.#rule.BAR;
    const governor = this.#connection.governor;
    if (governor.bannedUntil !== undefined) return;
    this.stats.sweeps += 1;
    const all = [...this.#tracked.values()];
    const count = all.length;
    const due: Array<{ tracked: Tracked; kind: 'repair' | 'warm' | 'stale' | 'final' }> = [];
    for (let i = 0; i < count; i += 1) {
      const tracked = all[(this.#cursor + i) % count] as Tracked;
      if (!tracked.isReady) due.push({ tracked, kind: 'warm' });
      else if (tracked.holeFrom !== undefined) due.push({ tracked, kind: 'repair' });
      else if (now - tracked.confirmedAt >= options.staleAfterMs) due.push({ tracked, kind: 'stale' });
      else if (closeTimeOf(bar, nextOpenTime(bar, tracked.finalOpenTime)) < now - options.staleAfterMs) due.push({ tracked, kind: 'final' });
    }
    if (count > 0) this.#cursor = (this.#cursor + 1) % count;
    const order = { repair: 0, warm: 1, stale: 2, final: 3 } as const;
    due.sort((a, b) => order[a.kind] - order[b.kind] || a.tracked.confirmedAt - b.tracked.confirmedAt);
    for (const { tracked } of due) {
      const age = now - tracked.confirmedAt;
      if (tracked.isReady && !tracked.isReportedStale && age >= options.staleAfterMs && tracked.confirmedAt > 0) {
        tracked.isReportedStale = true;
        this.#events.emit('stale', { symbol: tracked.symbol, ageMs: age });
      }
    }
    // Plan within the budget's share of one update interval: a big universe is covered over several sweeps.
    const spec = MARKETS[this.#rule.MARKET];
    let allowance = Math.max(spec.klinesWeight(spec.klinesBestLimit), (governor.budget * SWEEP_BUDGET_SHARE * this.#rule.UPDATE_INTERVAL_SECONDS) / 60);
    const planned: typeof due = [];
    for (const item of due) {
      const weight = this.#estimateWeight(item.tracked, now);
      if (weight > allowance) break;
      allowance -= weight;
      planned.push(item);
    }
    await forEachConcurrently(planned, CONCURRENCY, async ({ tracked, kind }) => {
      if (!this.#tracked.has(tracked.symbol)) return;
      try {
        this.stats.sweepRequests += 1;
        if (kind === 'warm') await this.#warmOne(tracked, false, signal);
        else if (kind === 'repair') {
          if (!this.#repairing.has(tracked.symbol)) await this.#repairOne(tracked, signal);
        } else {
          const from = Math.min(nextOpenTime(bar, tracked.finalOpenTime), tracked.ring.newestOpenTime ?? now);
          await this.#fetchInto(tracked, from, openTimeOf(bar, now), signal);
          await this.#confirmFinal(tracked, signal);
        }
      } catch (error) {
        if (isStop(error, signal)) throw error;
        if (error instanceof BannedError) return;
        this.#logger.warn({ err: error, symbol: tracked.symbol, kind }, 'sweep request failed');
      }
    });
  }

  /** Weight of bringing a symbol up to date: its missing candles in best-size pages. */
  #estimateWeight(tracked: Tracked, now: number): number {
    const spec = MARKETS[this.#rule.MARKET];
    const bar = this.#rule.BAR;
    const from = tracked.holeFrom ?? Math.min(nextOpenTime(bar, tracked.finalOpenTime), tracked.ring.newestOpenTime ?? 0);
    const candles = tracked.isReady && from > 0 ? Math.max(1, Math.ceil((now - from) / intervalMs(bar)) + 1) : this.#rule.LENGTH;
    const pages = Math.ceil(candles / spec.klinesBestLimit);
    const last = candles - (pages - 1) * spec.klinesBestLimit;
    return (pages - 1) * spec.klinesWeight(spec.klinesBestLimit) + spec.klinesWeight(last);
  }

  #signal(signal: AbortSignal | undefined): AbortSignal {
    return signal === undefined ? this.#closing.signal : AbortSignal.any([signal, this.#closing.signal]);
  }
}

function isStop(error: unknown, signal: AbortSignal): boolean {
  return error instanceof AbortedError || error instanceof ClosedError || signal.aborted;
}
