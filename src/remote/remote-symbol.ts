/**
 * One symbol and interval as a remote reader keeps it: a CandleRing filled from the stream (final
 * candles) and the live subject (the forming one), the publisher's word on it (confirmation time
 * and state from heartbeats and candles), and the serve rule applied on the publisher's exchange
 * clock, as src/sync/serve-rule.ts applies it in process. Synchronous, no I/O, the clock passed in.
 *
 * ```
 *  oldest ........................................... newest
 *  [final][final][final] ... [final][final]          [forming]   ← live, or final from the stream
 *   ^ consecutive open times (no hole)                ^ opened < securityMs ago on the exchange clock,
 *   ^ from the stream: final (open time <= finalOpenTime)  confirmed < securityMs ago (c, heartbeats)
 * ```
 *
 * A live update never overwrites a final row: live and stored messages take different paths and
 * may arrive out of order, so a forming update older than the newest final candle is dropped.
 *
 * @example
 * ```ts
 * const remote = new RemoteSymbol('BTCUSDT', '1m', new CandleRing(1440));
 * remote.applyCandle(message.k, message.x, message.c); // 'closed' when a newer candle became final
 * remote.isServable(180_000, clock.now());
 * ```
 */
import type { Interval } from '../binance/markets.js';
import type { CandleRing } from '../store/candle-ring.js';
import type { SymbolState } from '../sync/serve-rule.js';

/** Publisher states that say its ring may not be served whatever the window (a hole, a late close, a warm-up). */
const UNSERVABLE_STATES: ReadonlySet<string> = new Set(['repairing', 'overdue', 'warming']);

/** What applying a candle did: a newer candle became final, a row was written, or nothing. */
export type RemoteApplyResult = 'closed' | 'written' | 'ignored';

/** One symbol and interval of a remote reader; see the module comment. */
export class RemoteSymbol {
  readonly symbol: string;
  readonly interval: Interval;
  readonly ring: CandleRing;
  /** Exchange time at which the exchange last vouched for the symbol, per the publisher; 0 = never. */
  confirmedAt = 0;
  /** Open time of the newest candle written from a final message; 0 = none. */
  finalOpenTime = 0;
  /** The publisher's state of the symbol in its last heartbeat, undefined before one. */
  publisherState: string | undefined;
  /** Set once `stale` was reported, so that it is reported once per episode. */
  isReportedStale = false;
  // The first hole found in the ring, cached for the ring's revision, newest and oldest open time
  // (a forming update changes none of them, so the hot read is O(1)).
  #holeKey = '';
  #holeFrom: number | undefined;

  constructor(symbol: string, interval: Interval, ring: CandleRing) {
    this.symbol = symbol;
    this.interval = interval;
    this.ring = ring;
  }

  /**
   * A candle message: `k` the 12 values, `isFinal` its `x` (always true on the stream), `confirmedAt`
   * its `c`. A forming update at or before the newest final candle is dropped (it is older).
   */
  applyCandle(k: ArrayLike<number>, isFinal: boolean, confirmedAt: number): RemoteApplyResult {
    this.confirm(confirmedAt);
    const openTime = k[0] as number;
    if (!isFinal && openTime <= this.finalOpenTime) return 'ignored';
    if (this.ring.upsert(k) === 'ignored') return 'ignored';
    if (!isFinal || openTime <= this.finalOpenTime) return 'written';
    this.finalOpenTime = openTime;
    return 'closed';
  }

  /** The exchange vouched for the symbol at exchange time `at` (a heartbeat's or candle's `c`). */
  confirm(at: number): void {
    if (at <= this.confirmedAt) return;
    this.confirmedAt = at;
    this.isReportedStale = false;
  }

  /**
   * Open time of the first candle missing between the oldest and the newest row (consecutive
   * open times per the interval), or undefined. An exchange gap (a halt) counts as a hole too:
   * the reader cannot tell it from a candle not yet published.
   */
  holeFrom(): number | undefined {
    const ring = this.ring;
    const key = `${ring.revision}|${String(ring.oldestOpenTime)}|${String(ring.newestOpenTime)}`;
    if (key !== this.#holeKey) {
      this.#holeKey = key;
      this.#holeFrom = ring.gaps(this.interval)[0]?.from;
    }
    return this.#holeFrom;
  }

  /** Every row before the newest came from a final message. */
  hasFinalRows(): boolean {
    const view = this.ring.view();
    return view.length < 2 || view.openTime(view.length - 2) <= this.finalOpenTime;
  }

  /** The newest candle opened, and the exchange last confirmed the symbol, less than `securityMs` before `now`. */
  isFresh(securityMs: number, now: number): boolean {
    const newest = this.ring.newestOpenTime;
    return newest !== undefined && now - newest < securityMs && now - this.confirmedAt < securityMs;
  }

  /** The serve rule: fresh on the exchange clock, final rows, no hole, and the publisher not repairing. */
  isServable(securityMs: number, now: number): boolean {
    return (
      this.isFresh(securityMs, now) &&
      this.hasFinalRows() &&
      this.holeFrom() === undefined &&
      !UNSERVABLE_STATES.has(this.publisherState ?? '')
    );
  }

  /** Why the symbol is or is not served, in the in-process server's words. */
  state(securityMs: number, now: number, isReady: boolean): SymbolState {
    if (!isReady || this.ring.isEmpty) return 'warming';
    if (this.isServable(securityMs, now)) return 'fresh';
    if (this.publisherState === 'banned' || this.publisherState === 'overdue' || this.publisherState === 'warming')
      return this.publisherState;
    if (this.holeFrom() !== undefined || !this.hasFinalRows() || this.publisherState === 'repairing') return 'repairing';
    return 'stale';
  }
}
