/**
 * The serve rule: one symbol's bookkeeping beside its ring, and the decision whether its candles
 * may be served. Synchronous, no I/O, the exchange clock injected: every edge of the rule is
 * reachable from a unit test.
 *
 * A ring is served only when every row is the exchange's candle and the newest is fresh:
 *
 * ```
 *  oldest ...................................... newest
 *  [final][final][final] ... [final][final]     [forming]
 *   ^ no hole the exchange does not have          ^ opened < securityMs ago, confirmed < securityMs ago,
 *   ^ every row before the newest final             and not past its close by more than one stream
 *     (finalOpenTime >= newest - 1 candle)          cadence + the clock's uncertainty (the boundary
 *                                                   deadline) unless its final values are held
 * ```
 *
 * What it tracks:
 * - `confirmedAt`: exchange time at which the exchange last vouched for this symbol's data (a
 *   stream event's `E`, or the exchange clock when a REST request was sent);
 * - `streamAt`: exchange time of the last stream event;
 * - `holeFrom`: the open time from which the ring may lack candles the exchange has (set on an
 *   interruption, a skipped candle or a skipped close; cleared once REST has filled the range);
 * - `finalOpenTime`: the end of the final chain: every row from the oldest up to this open time
 *   holds the candle's final values, with no candle the exchange has missing between them. Final
 *   values come from a stream event with `x: true`, a daily file, a snapshot (every row but its
 *   newest), or a REST row that closed more than the clock's uncertainty before the request was
 *   sent. The chain only grows where it ends: by the next candle's close on the stream, or by a
 *   REST reply whose range starts at or before the first candle it lacks (a reply covers every
 *   candle the exchange has in its range, so it bridges the exchange's own gaps). A close that
 *   skips a candle leaves that candle unconfirmed, which is a hole once the symbol is ready.
 *
 * @example
 * ```ts
 * const tracked = new TrackedSymbol({ symbol: 'BTCUSDT', ring, bar: '1m', clock, cadenceMs: 250, events });
 * tracked.applyRest(rows, sentAt);       // warm-up
 * tracked.markReady();
 * tracked.applyStream(values, false, E); // every stream event, in place
 * tracked.isServable(180_000);           // the freshness rule behind getCandleSecurity
 * ```
 */
import { closeTimeOf, nextOpenTime, openTimeOf, previousOpenTime } from '../binance/intervals.js';
import { COL, type RawKline } from '../binance/kline.js';
import type { Interval } from '../binance/markets.js';
import type { CandleRing } from '../store/candle-ring.js';

/** Why a symbol is or is not served. */
export type SymbolState = 'unknown' | 'warming' | 'fresh' | 'stale' | 'repairing' | 'overdue' | 'banned';

/** The exchange clock as the rule needs it. */
export interface RuleClock {
  /** Exchange time now, ms. */
  now(): number;
  /**
   * How far our exchange clock may be off, ms: a REST row is final only if it closed this long
   * before the request was sent, and a boundary deadline is this much later.
   */
  marginMs(): number;
}

/** What the rule reports to its owner (events, counters); called synchronously. */
export interface RuleEvents {
  /** The ring now holds this candle's final values; once per candle. */
  closed(symbol: string, openTime: number, close: number): void;
  /** Candles from `from` on may be missing: the symbol is not served until REST fills them. */
  hole(symbol: string, from: number): void;
}

/** Options of {@link TrackedSymbol}. */
export interface TrackedSymbolOptions {
  readonly symbol: string;
  readonly ring: CandleRing;
  readonly bar: Interval;
  readonly clock: RuleClock;
  /**
   * Stream cadence in ms: the newest candle, once its close time has passed by more than this plus
   * the clock's margin without its final values or the next candle, is not served. Undefined when
   * no stream follows the symbol (REST-only mode): its update cadence is the sweep's.
   */
  readonly cadenceMs?: number | undefined;
  readonly events?: RuleEvents | undefined;
}

const NO_EVENTS: RuleEvents = { closed: () => undefined, hole: () => undefined };

/** One symbol's state and the serve rule. */
export class TrackedSymbol {
  readonly symbol: string;
  readonly ring: CandleRing;
  /** Exchange time of the last confirmation; 0 = never. */
  confirmedAt = 0;
  /** Exchange time (`E`) of the last stream update; 0 = never. */
  streamAt = 0;
  /** True once the warm start has filled the ring. */
  isReady = false;
  /** Open time from which candles may be missing, or undefined when the ring has no hole. */
  holeFrom: number | undefined = undefined;
  /** Open time of the newest candle whose final values the ring holds; 0 = none. */
  finalOpenTime = 0;
  /** Set once `stale` was reported, so that it is reported once per episode (the owner's flag). */
  isReportedStale = false;
  readonly #bar: Interval;
  readonly #clock: RuleClock;
  readonly #cadenceMs: number | undefined;
  readonly #events: RuleEvents;

  constructor(options: TrackedSymbolOptions) {
    this.symbol = options.symbol;
    this.ring = options.ring;
    this.#bar = options.bar;
    this.#clock = options.clock;
    this.#cadenceMs = options.cadenceMs;
    this.#events = options.events ?? NO_EVENTS;
    // A ring restored from a snapshot: every row before its newest had closed when it was taken.
    const count = this.ring.count;
    if (count >= 2) this.finalOpenTime = this.ring.view().openTime(count - 2);
  }

  /**
   * Forgets the rows that open before `start` (a snapshot older than the window): they are outside
   * the window, and a chain ending among them would make the warm-up fetch from there. Rows kept
   * from the window on stay final up to where the chain reached.
   */
  dropBefore(start: number): void {
    if (this.ring.dropBefore(start) === 0) return;
    if (this.finalOpenTime < start) this.finalOpenTime = 0;
  }

  /** The warm start is done: from now on skipped candles and closes are holes. */
  markReady(): void {
    this.isReady = true;
  }

  /**
   * Takes a ring restored from a snapshot that already reaches the current candle: every row
   * before the newest is final (it closed before the snapshot was taken), and the stream's next
   * event confirms the forming one.
   */
  adoptSnapshot(current: number): void {
    this.finalOpenTime = previousOpenTime(this.#bar, current);
    this.isReady = true;
  }

  /** Writes final rows (of a daily file) into the ring. */
  applyFinal(rows: readonly RawKline[]): void {
    if (rows.length === 0) return;
    this.ring.upsertMany(rows);
    const last = (rows[rows.length - 1] as RawKline)[COL.openTime];
    if (last > this.finalOpenTime) this.finalOpenTime = last;
  }

  /**
   * A stream update, written into the ring in place. `values` holds the 12 columns; it may be a
   * reused buffer and is not kept. On the hot path: allocates nothing.
   */
  applyStream(values: ArrayLike<number>, isClosed: boolean, eventTime: number): void {
    const openTime = values[COL.openTime] as number;
    const ring = this.ring;
    const newest = ring.newestOpenTime;
    if (this.isReady && newest !== undefined && openTime > newest) {
      // A new candle: every candle before it must have closed with its final values, and none may
      // be skipped. Otherwise (the stream was down, or a close never came) the ring has a hole
      // from the first candle whose final values it lacks.
      const firstUnconfirmed = this.pendingFinal() ?? newest;
      if (firstUnconfirmed < openTime) this.#markHole(firstUnconfirmed);
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
      values[11],
    );
    if (eventTime > this.confirmedAt) this.confirmedAt = eventTime;
    if (eventTime > this.streamAt) this.streamAt = eventTime;
    this.isReportedStale = false;
    if (isClosed && openTime > this.finalOpenTime) {
      // The chain grows by the next candle only: a close that skips one leaves that candle
      // unconfirmed, a hole for REST to fill (the repair then reports both closes). Before the
      // symbol is ready the warm-up's own confirmation fetches what lies between.
      const unconfirmed = this.pendingFinal() ?? openTime;
      if (openTime <= unconfirmed) {
        this.finalOpenTime = openTime;
        this.#events.closed(this.symbol, openTime, values[COL.close] as number);
      } else if (this.isReady) {
        this.#markHole(unconfirmed);
      }
    }
  }

  /**
   * Writes a REST reply for the range starting at open time `from`, requested at exchange time
   * `sentAt`. Rows that closed more than the clock's margin before `sentAt` are final; they extend
   * the final chain when the range starts at or before its end. A row that may still have been
   * forming when the reply was made never replaces final values, nor a row the stream has updated
   * since the request: the reply is older than those. Closes the stream did not deliver are
   * reported (a repair, REST-only mode); the warm-up's history is not.
   */
  applyRest(rows: readonly RawKline[], sentAt: number, from: number): void {
    const finalBefore = sentAt - this.#clock.marginMs();
    const isStreamAhead = this.streamAt >= sentAt;
    const previousFinal = this.finalOpenTime;
    // The reply's final part: its rows up to the first that may still have been forming.
    let finalCount = 0;
    while (finalCount < rows.length && (rows[finalCount] as RawKline)[COL.closeTime] < finalBefore) finalCount += 1;
    if (finalCount > 0) this.#extendChain(from, (rows[finalCount - 1] as RawKline)[COL.openTime]);
    const accepted: RawKline[] = rows.slice(0, finalCount);
    for (let i = finalCount; i < rows.length; i += 1) {
      const row = rows[i] as RawKline;
      if (row[COL.openTime] > this.finalOpenTime && !(isStreamAhead && this.ring.indexOf(row[COL.openTime]) >= 0)) accepted.push(row);
    }
    this.ring.upsertMany(accepted);
    if (this.isReady && previousFinal > 0) {
      for (const row of accepted) {
        const openTime = row[COL.openTime];
        if (openTime > previousFinal && openTime <= this.finalOpenTime) this.#events.closed(this.symbol, openTime, Number(row[COL.close]));
      }
    }
    if (sentAt > this.confirmedAt) this.confirmedAt = sentAt;
    this.isReportedStale = false;
  }

  /** The stream was interrupted: candles after exchange time `since` may be missing. */
  interrupted(since: number): void {
    if (this.isReady) this.#markHole(openTimeOf(this.#bar, since));
  }

  /**
   * A repair fetched everything from `from` on: clears the hole if it is still the one the repair
   * covered (a newer interruption may have set an earlier one). Returns true when it cleared it.
   */
  repaired(from: number): boolean {
    if (this.holeFrom !== from) return false;
    this.holeFrom = undefined;
    return true;
  }

  /**
   * Open time of the oldest candle whose final values the ring lacks (may be the forming one): the
   * one after the chain's end, or the oldest row when the chain is empty; undefined for an empty
   * ring without a chain.
   */
  pendingFinal(): number | undefined {
    return this.finalOpenTime > 0 ? nextOpenTime(this.#bar, this.finalOpenTime) : this.ring.oldestOpenTime;
  }

  /** Every row but the newest holds final values: closed candles are served only as they closed. */
  hasFinalRows(): boolean {
    return this.#hasFinalRows(this.ring.newestOpenTime);
  }

  /**
   * The newest row's candle closed more than one stream cadence plus the clock's margin ago, and
   * the ring holds neither its final values nor the next candle: the row is no longer the forming
   * candle, and its values may not be the final ones. Always false without a stream.
   */
  isOverdue(now = this.#clock.now()): boolean {
    return this.isReady && this.#isOverdue(this.ring.newestOpenTime, now);
  }

  /** The newest candle opened, and the exchange last confirmed the symbol, less than `securityMs` ago. */
  isFresh(securityMs: number, now = this.#clock.now()): boolean {
    return this.#isFresh(this.ring.newestOpenTime, securityMs, now);
  }

  /**
   * The rule behind getCandleSecurity: ready, no hole, fresh within `securityMs`, every row before
   * the newest final, and the newest not past its boundary deadline. Allocates nothing; reads the
   * ring's newest open time and the clock once.
   */
  isServable(securityMs: number): boolean {
    if (!this.isReady || this.holeFrom !== undefined) return false;
    const newest = this.ring.newestOpenTime;
    const now = this.#clock.now();
    return this.#isFresh(newest, securityMs, now) && this.#hasFinalRows(newest) && !this.#isOverdue(newest, now);
  }

  /** Why the symbol is or is not served; `isBanned` when the IP is banned (nothing can be fetched). */
  state(securityMs: number, isBanned: boolean): SymbolState {
    if (!this.isReady) return 'warming';
    if (this.isServable(securityMs)) return 'fresh';
    // During a ban nothing can be fetched: that is the reason, whatever needs fetching.
    if (isBanned) return 'banned';
    if (this.holeFrom !== undefined || !this.hasFinalRows()) return 'repairing';
    return this.isOverdue() ? 'overdue' : 'stale';
  }

  /**
   * True once the stream has taken over: a first stream update, no hole, no unconfirmed close, not
   * overdue. The point at which a start-up can call the symbol served.
   */
  isStreamSettled(): boolean {
    return this.isReady && this.streamAt > 0 && this.holeFrom === undefined && this.hasFinalRows() && !this.isOverdue();
  }

  /**
   * A REST reply covered every candle the exchange has from `from`, and its rows up to
   * `lastFinal` are final. The chain grows when the reply starts at or before the first candle it
   * lacks. A reply that reaches further back than the ring starts a chain of its own, which takes
   * in the old one only when it reaches the old oldest row.
   */
  #extendChain(from: number, lastFinal: number): void {
    const oldest = this.ring.oldestOpenTime;
    if (oldest !== undefined && from < oldest) {
      const reachesOld = this.finalOpenTime > 0 && nextOpenTime(this.#bar, lastFinal) >= oldest;
      this.finalOpenTime = reachesOld ? Math.max(this.finalOpenTime, lastFinal) : lastFinal;
      return;
    }
    const pending = this.pendingFinal();
    if ((pending === undefined || from <= pending) && lastFinal > this.finalOpenTime) this.finalOpenTime = lastFinal;
  }

  #hasFinalRows(newest: number | undefined): boolean {
    return newest === undefined || this.ring.count < 2 || this.finalOpenTime >= previousOpenTime(this.#bar, newest);
  }

  #isOverdue(newest: number | undefined, now: number): boolean {
    const cadence = this.#cadenceMs;
    if (cadence === undefined || newest === undefined || this.finalOpenTime >= newest) return false;
    return now - closeTimeOf(this.#bar, newest) > cadence + this.#clock.marginMs();
  }

  #isFresh(newest: number | undefined, securityMs: number, now: number): boolean {
    return now - (newest ?? 0) < securityMs && now - this.confirmedAt < securityMs;
  }

  #markHole(from: number): void {
    if (this.holeFrom !== undefined && this.holeFrom <= from) return;
    this.holeFrom = from;
    this.#events.hole(this.symbol, from);
  }
}
