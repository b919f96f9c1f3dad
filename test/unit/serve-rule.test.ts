/**
 * The serve rule, edge by edge: a fake exchange clock (a plain object with a mutable `t`), rings of
 * ten 1m candles, REST rows and stream value arrays built from a candle index and a version.
 */
import { describe, expect, it } from 'vitest';
import { closeTimeOf } from '../../src/binance/intervals.js';
import type { RawKline } from '../../src/binance/kline.js';
import { CandleRing } from '../../src/store/candle-ring.js';
import { TrackedSymbol, type RuleClock, type RuleEvents } from '../../src/sync/serve-rule.js';

/** A REST reply's arguments: the rows, the time the request was sent, the range's start (its first row). */
function replyFrom(rows: readonly RawKline[], sentAt: number, from = rows[0]?.[0] ?? 0): [readonly RawKline[], number, number] {
  return [rows, sentAt, from];
}

const LENGTH = 10;
const MINUTE = 60_000;
const T0 = Date.UTC(2026, 0, 5, 0, 0);
const SECURITY_MS = 180_000;
const CADENCE_MS = 2000;
const MARGIN_MS = 100;

/** Open time of candle `i`. */
const open = (i: number): number => T0 + i * MINUTE;
/** Close time of candle `i`, as Binance reports it. */
const close = (i: number): number => closeTimeOf('1m', open(i));

/**
 * The 12 values of candle `i` in version `v` (0 = the final values in these tests, others are
 * forming snapshots): every version of every candle differs in every price and volume column.
 */
function values(i: number, v = 0): number[] {
  const base = 100 + i;
  return [open(i), base, base + 2 + v / 8, base - 1, base + 1 + v / 4, 10 + v, close(i), 1000 + v, 50 + v, 5 + v / 2, 500 + v, 0];
}

/** The REST row of candle `i` in version `v`: times and trades numbers, the rest strings. */
function row(i: number, v = 0): RawKline {
  const n = values(i, v);
  const s = (k: number): string => String(n[k]);
  return [n[0] as number, s(1), s(2), s(3), s(4), s(5), n[6] as number, s(7), n[8] as number, s(9), s(10), s(11)];
}

/** REST rows of candles `from`..`to`, `forming` (if given) in version `v`, the others final. */
function rows(from: number, to: number, forming?: { index: number; v: number }): RawKline[] {
  const out: RawKline[] = [];
  for (let i = from; i <= to; i += 1) out.push(row(i, forming?.index === i ? forming.v : 0));
  return out;
}

interface FakeClock extends RuleClock {
  t: number;
  margin: number;
}

function fakeClock(t: number, margin = MARGIN_MS): FakeClock {
  return {
    t,
    margin,
    now() {
      return this.t;
    },
    marginMs() {
      return this.margin;
    },
  };
}

interface Recorded extends RuleEvents {
  readonly closes: Array<[openTime: number, close: number]>;
  readonly holes: number[];
}

function recorder(): Recorded {
  const closes: Array<[number, number]> = [];
  const holes: number[] = [];
  return {
    closes,
    holes,
    closed: (symbol, openTime, closePrice) => {
      expect(symbol).toBe('BTCUSDT');
      closes.push([openTime, closePrice]);
    },
    hole: (symbol, from) => {
      expect(symbol).toBe('BTCUSDT');
      holes.push(from);
    },
  };
}

interface Setup {
  readonly tracked: TrackedSymbol;
  readonly clock: FakeClock;
  readonly events: Recorded;
  readonly ring: CandleRing;
}

function setup(options: { t?: number; cadenceMs?: number | undefined; margin?: number } = {}): Setup {
  const clock = fakeClock(options.t ?? open(5) + 30_000, options.margin ?? MARGIN_MS);
  const events = recorder();
  const ring = new CandleRing(LENGTH);
  const cadenceMs = 'cadenceMs' in options ? options.cadenceMs : CADENCE_MS;
  const tracked = new TrackedSymbol({ symbol: 'BTCUSDT', ring, bar: '1m', clock, cadenceMs, events });
  return { tracked, clock, events, ring };
}

/**
 * A warmed symbol at 30 s into candle 5: REST rows 0..5 sent now (0..4 final, 5 forming in version
 * 1), ready, then one stream update of candle 5 (version 2) a second later.
 */
function warmed(options: { cadenceMs?: number | undefined; margin?: number; stream?: boolean } = {}): Setup {
  const s = setup(options);
  s.tracked.applyRest(...replyFrom(rows(0, 5, { index: 5, v: 1 }), s.clock.t));
  s.tracked.markReady();
  if (options.stream !== false) {
    s.clock.t += 1000;
    s.tracked.applyStream(values(5, 2), false, s.clock.t);
  }
  return s;
}

/** The ring's row of the candle opening at `openTime`, as plain numbers. */
function rowOf(ring: CandleRing, openTime: number): number[] {
  const index = ring.indexOf(openTime);
  expect(index, `candle ${new Date(openTime).toISOString()} in the ring`).toBeGreaterThanOrEqual(0);
  return Array.from(ring.view().at(index));
}

/** Open times held by the ring, oldest first. */
function openTimes(ring: CandleRing): number[] {
  return Array.from(ring.view().column(0));
}

describe('TrackedSymbol: REST replies', () => {
  it('takes rows that closed more than the clock margin before the request as final, the forming row not', () => {
    const { tracked, ring, clock } = setup();
    tracked.applyRest(...replyFrom(rows(0, 5, { index: 5, v: 1 }), clock.t));
    expect(openTimes(ring)).toEqual([0, 1, 2, 3, 4, 5].map(open));
    expect(tracked.finalOpenTime).toBe(open(4));
    expect(tracked.pendingFinal()).toBe(open(5));
    expect(rowOf(ring, open(5))).toEqual(values(5, 1));
    expect(tracked.confirmedAt).toBe(clock.t);
  });

  it('does not take a row that closed within the clock margin before the request as final (the request may have been made while it was forming)', () => {
    // Candle 5 closed 51 ms before the request by our clock; the clock may be 100 ms off.
    const { tracked, clock } = setup({ t: close(5) + 51 });
    tracked.applyRest(...replyFrom([...rows(0, 5), row(6, 1)], clock.t));
    tracked.markReady();
    expect(tracked.finalOpenTime).toBe(open(4));
    expect(tracked.hasFinalRows()).toBe(false);
    expect(tracked.isServable(SECURITY_MS)).toBe(false);
    expect(tracked.state(SECURITY_MS, false)).toBe('repairing');
    // Asked again once the margin has passed, candle 5 is final and the ring is served.
    clock.t = close(5) + 500;
    tracked.applyRest(...replyFrom([row(5), row(6, 2)], clock.t));
    expect(tracked.finalOpenTime).toBe(open(5));
    expect(tracked.isServable(SECURITY_MS)).toBe(true);
  });

  it('counts a row as final only when its close time is strictly more than the margin before the request', () => {
    const at = setup({ t: close(4) + 1 + MARGIN_MS });
    // closeTime(4) = sentAt - margin - 1: final.
    at.tracked.applyRest(...replyFrom(rows(3, 5, { index: 5, v: 1 }), at.clock.t));
    expect(at.tracked.finalOpenTime).toBe(open(4));
    const edge = setup({ t: close(4) + MARGIN_MS });
    // closeTime(4) = sentAt - margin exactly: not final.
    edge.tracked.applyRest(...replyFrom(rows(3, 5, { index: 5, v: 1 }), edge.clock.t));
    expect(edge.tracked.finalOpenTime).toBe(open(3));
  });

  it('keeps the stream values of a row the stream updated after the request was sent (a REST row racing a stream update)', () => {
    const { tracked, ring, clock } = warmed();
    const sentAt = clock.t + 500;
    clock.t = sentAt + 400;
    tracked.applyStream(values(5, 7), false, clock.t);
    // The reply to the request sent before that stream update arrives now with older values.
    tracked.applyRest(...replyFrom([row(5, 3)], sentAt));
    expect(rowOf(ring, open(5))).toEqual(values(5, 7));
  });

  it('keeps the stream values when the stream update carries the request time itself', () => {
    const { tracked, ring, clock } = warmed();
    const sentAt = clock.t;
    tracked.applyStream(values(5, 7), false, sentAt);
    tracked.applyRest(...replyFrom([row(5, 3)], sentAt));
    expect(rowOf(ring, open(5))).toEqual(values(5, 7));
  });

  it('takes a forming row from a reply sent after the last stream update', () => {
    const { tracked, ring, clock } = warmed();
    clock.t += 500;
    tracked.applyRest(...replyFrom([row(5, 3)], clock.t));
    expect(rowOf(ring, open(5))).toEqual(values(5, 3));
    expect(tracked.confirmedAt).toBe(clock.t);
  });

  it('adds a forming row the ring lacks even when the stream is ahead of the request', () => {
    const { tracked, ring, clock } = warmed();
    // The stream's close of candle 5 comes 50 ms into candle 6; a request sent at 10 ms into 6
    // replies after it, with candle 5 (closed within the margin) and the forming candle 6.
    tracked.applyStream(values(5), true, open(6) + 50);
    clock.t = open(6) + 300;
    tracked.applyRest(...replyFrom([row(5, 9), row(6, 1)], open(6) + 10));
    expect(rowOf(ring, open(6))).toEqual(values(6, 1));
    expect(rowOf(ring, open(5))).toEqual(values(5));
  });

  it('never replaces final values with a row that may still have been forming, whatever the order of replies', () => {
    const { tracked, ring } = setup({ t: close(5) + 5000 });
    tracked.applyRest(...replyFrom(rows(0, 6, { index: 6, v: 1 }), close(5) + 5000));
    tracked.markReady();
    expect(tracked.finalOpenTime).toBe(open(5));
    // A reply to a request sent just before candle 5 closed arrives late; no stream runs.
    tracked.applyRest(...replyFrom([row(5, 9)], close(5) - 20));
    expect(rowOf(ring, open(5))).toEqual(values(5));
    expect(tracked.finalOpenTime).toBe(open(5));
  });

  it('reports the closes a REST reply confirms once ready, in order, not those of the warm-up', () => {
    const { tracked, events, clock } = warmed({ stream: false });
    expect(events.closes).toEqual([]);
    clock.t = open(8) + 5000;
    tracked.applyRest(...replyFrom(rows(5, 8, { index: 8, v: 1 }), clock.t));
    expect(events.closes).toEqual([
      [open(5), values(5)[4]],
      [open(6), values(6)[4]],
      [open(7), values(7)[4]],
    ]);
    // The same reply again confirms nothing new.
    tracked.applyRest(...replyFrom(rows(5, 8, { index: 8, v: 2 }), clock.t + 1));
    expect(events.closes).toHaveLength(3);
  });

  it('moves confirmedAt only forward', () => {
    const { tracked, clock } = warmed({ stream: false });
    const first = clock.t;
    tracked.applyRest(...replyFrom([row(5, 2)], first - 10_000));
    expect(tracked.confirmedAt).toBe(first);
  });
});

describe('TrackedSymbol: stream updates', () => {
  it('updates the forming candle in place and records the event time as confirmation and stream time', () => {
    const { tracked, ring, clock } = warmed({ stream: false });
    clock.t += 700;
    tracked.applyStream(values(5, 4), false, clock.t);
    expect(rowOf(ring, open(5))).toEqual(values(5, 4));
    expect(ring.count).toBe(6);
    expect(tracked.confirmedAt).toBe(clock.t);
    expect(tracked.streamAt).toBe(clock.t);
    expect(tracked.finalOpenTime).toBe(open(4));
  });

  it('takes a close event (x) as the final values and reports the close once', () => {
    const { tracked, ring, events } = warmed();
    tracked.applyStream(values(5), true, close(5) + 1);
    tracked.applyStream(values(5), true, close(5) + 2);
    expect(tracked.finalOpenTime).toBe(open(5));
    expect(rowOf(ring, open(5))).toEqual(values(5));
    expect(events.closes).toEqual([[open(5), values(5)[4]]]);
  });

  it('appends the next candle after a close without a hole, and reports closes in order', () => {
    const { tracked, events, clock } = warmed();
    clock.t = open(6) + 10;
    tracked.applyStream(values(5), true, clock.t);
    tracked.applyStream(values(6, 1), false, clock.t + 1);
    clock.t = open(7) + 10;
    tracked.applyStream(values(6), true, clock.t);
    tracked.applyStream(values(7, 1), false, clock.t + 1);
    expect(tracked.holeFrom).toBeUndefined();
    expect(events.holes).toEqual([]);
    expect(events.closes.map(([t]) => t)).toEqual([open(5), open(6)]);
    expect(tracked.isServable(SECURITY_MS)).toBe(true);
  });

  it('marks a hole at the unclosed candle when the next candle arrives without its close (a close missed by the stream)', () => {
    const { tracked, events, clock } = warmed();
    clock.t = open(6) + 100;
    tracked.applyStream(values(6, 1), false, clock.t);
    expect(tracked.holeFrom).toBe(open(5));
    expect(events.holes).toEqual([open(5)]);
    expect(tracked.isServable(SECURITY_MS)).toBe(false);
    expect(tracked.state(SECURITY_MS, false)).toBe('repairing');
  });

  it('marks a hole at the first skipped candle when the stream jumps over one (a skipped candle)', () => {
    const { tracked, events, clock } = warmed();
    tracked.applyStream(values(5), true, close(5) + 1);
    clock.t = open(7) + 100;
    tracked.applyStream(values(7, 1), false, clock.t);
    expect(tracked.holeFrom).toBe(open(6));
    expect(events.holes).toEqual([open(6)]);
    expect(tracked.isServable(SECURITY_MS)).toBe(false);
  });

  it('does not let a close that skips a candle advance the final values (a skipped close is a hole)', () => {
    // Candle 5 closed within the margin of the request: not final; candle 6 arrived by REST.
    const { tracked, events, clock } = setup({ t: close(5) + 50 });
    tracked.applyRest(...replyFrom([...rows(0, 5), row(6, 1)], clock.t));
    tracked.markReady();
    expect(tracked.finalOpenTime).toBe(open(4));
    clock.t = close(6) + 10;
    // The stream reports the close of 6, never that of 5.
    tracked.applyStream(values(6), true, clock.t);
    expect(tracked.finalOpenTime).toBe(open(4));
    expect(tracked.pendingFinal()).toBe(open(5));
    expect(tracked.holeFrom).toBe(open(5));
    expect(events.holes).toEqual([open(5)]);
    expect(events.closes).toEqual([]);
    // The repair confirms both closes, in order, and clears the hole it covered.
    tracked.applyRest(...replyFrom([...rows(5, 6), row(7, 1)], close(6) + 1000));
    expect(tracked.repaired(open(5))).toBe(true);
    expect(events.closes.map(([t]) => t)).toEqual([open(5), open(6)]);
    expect(tracked.finalOpenTime).toBe(open(6));
    clock.t = close(6) + 1000;
    expect(tracked.isServable(SECURITY_MS)).toBe(true);
  });

  it('marks no hole for skipped candles before the warm start is done', () => {
    const { tracked, events, clock } = setup();
    tracked.applyStream(values(5, 1), false, clock.t);
    clock.t = open(7) + 100;
    tracked.applyStream(values(7, 1), false, clock.t);
    expect(tracked.holeFrom).toBeUndefined();
    expect(events.holes).toEqual([]);
  });

  it('does not serve a closed candle whose final values never came, even without a newer stream event', () => {
    const { tracked, clock } = setup({ t: close(5) + 50 });
    tracked.applyRest(...replyFrom([...rows(0, 5), row(6, 1)], clock.t));
    tracked.markReady();
    tracked.applyStream(values(6, 2), false, clock.t + 10);
    expect(tracked.hasFinalRows()).toBe(false);
    expect(tracked.isServable(SECURITY_MS)).toBe(false);
    expect(tracked.isStreamSettled()).toBe(false);
  });
});

describe('TrackedSymbol: interruptions and repairs', () => {
  it('marks a hole from the candle of the interruption once ready', () => {
    const { tracked, events, clock } = warmed();
    tracked.interrupted(open(5) + 40_000);
    expect(tracked.holeFrom).toBe(open(5));
    expect(events.holes).toEqual([open(5)]);
    expect(tracked.isServable(SECURITY_MS)).toBe(false);
    clock.t += 1;
    expect(tracked.state(SECURITY_MS, false)).toBe('repairing');
  });

  it('ignores an interruption during the warm-up', () => {
    const { tracked, events } = setup();
    tracked.interrupted(open(5));
    expect(tracked.holeFrom).toBeUndefined();
    expect(events.holes).toEqual([]);
  });

  it('keeps the earliest hole: a later one is not reported, an earlier one replaces it', () => {
    const { tracked, events } = warmed();
    tracked.interrupted(open(4) + 10);
    tracked.interrupted(open(5) + 10);
    expect(tracked.holeFrom).toBe(open(4));
    tracked.interrupted(open(2) + 10);
    expect(tracked.holeFrom).toBe(open(2));
    expect(events.holes).toEqual([open(4), open(2)]);
  });

  it('clears a hole only when the repair covered it (a newer interruption may have set an earlier one)', () => {
    const { tracked, clock } = warmed();
    tracked.interrupted(open(5));
    tracked.interrupted(open(3));
    expect(tracked.repaired(open(5))).toBe(false);
    expect(tracked.holeFrom).toBe(open(3));
    tracked.applyRest(...replyFrom(rows(3, 5, { index: 5, v: 5 }), clock.t + 100));
    expect(tracked.repaired(open(3))).toBe(true);
    expect(tracked.holeFrom).toBeUndefined();
    expect(tracked.repaired(open(3))).toBe(false);
    clock.t += 100;
    expect(tracked.isServable(SECURITY_MS)).toBe(true);
  });
});

describe('TrackedSymbol: the boundary deadline', () => {
  it('still serves the newest candle exactly at its close time plus one cadence plus the margin', () => {
    const { tracked, clock } = warmed();
    clock.t = close(5) + CADENCE_MS + MARGIN_MS;
    expect(tracked.isOverdue()).toBe(false);
    expect(tracked.isServable(SECURITY_MS)).toBe(true);
    expect(tracked.state(SECURITY_MS, false)).toBe('fresh');
  });

  it('does not serve the newest candle one ms past the deadline without its final values or the next candle, state overdue', () => {
    const { tracked, clock } = warmed();
    clock.t = close(5) + CADENCE_MS + MARGIN_MS + 1;
    expect(tracked.isOverdue()).toBe(true);
    expect(tracked.isServable(SECURITY_MS)).toBe(false);
    expect(tracked.state(SECURITY_MS, false)).toBe('overdue');
    expect(tracked.isStreamSettled()).toBe(false);
  });

  it('moves the deadline with the clock margin', () => {
    const { tracked, clock } = warmed({ margin: 1000 });
    clock.t = close(5) + CADENCE_MS + 1000;
    expect(tracked.isOverdue()).toBe(false);
    clock.margin = 999;
    expect(tracked.isOverdue()).toBe(true);
  });

  it('is not overdue once the final values are held (stream close)', () => {
    const { tracked, clock } = warmed();
    tracked.applyStream(values(5), true, close(5) + 1);
    clock.t = close(5) + 30_000;
    expect(tracked.isOverdue()).toBe(false);
    expect(tracked.isServable(SECURITY_MS)).toBe(true);
  });

  it('is not overdue once the final values are held (REST close)', () => {
    const { tracked, clock } = warmed();
    clock.t = close(5) + CADENCE_MS + MARGIN_MS + 500;
    tracked.applyRest(...replyFrom([row(5)], clock.t));
    expect(tracked.finalOpenTime).toBe(open(5));
    expect(tracked.isOverdue()).toBe(false);
    expect(tracked.isServable(SECURITY_MS)).toBe(true);
  });

  it('is not overdue once the next candle is the newest', () => {
    const { tracked, clock } = warmed();
    tracked.applyStream(values(5), true, close(5) + 1);
    tracked.applyStream(values(6, 1), false, close(5) + 2);
    clock.t = close(5) + CADENCE_MS + MARGIN_MS + 1;
    expect(tracked.isOverdue()).toBe(false);
    expect(tracked.isServable(SECURITY_MS)).toBe(true);
  });

  it('is never overdue without a stream cadence (REST-only mode): freshness alone decides', () => {
    const { tracked, clock } = warmed({ cadenceMs: undefined, stream: false });
    clock.t = close(5) + 60_000;
    expect(tracked.isOverdue()).toBe(false);
    expect(tracked.isServable(SECURITY_MS)).toBe(true);
    clock.t = open(5) + SECURITY_MS;
    expect(tracked.isOverdue()).toBe(false);
    expect(tracked.isServable(SECURITY_MS)).toBe(false);
    expect(tracked.state(SECURITY_MS, false)).toBe('stale');
  });

  it('is not overdue before the warm start is done', () => {
    const s = setup();
    s.tracked.applyRest(...replyFrom(rows(0, 5, { index: 5, v: 1 }), s.clock.t));
    s.clock.t = close(5) + 10_000;
    expect(s.tracked.isOverdue()).toBe(false);
  });
});

describe('TrackedSymbol: freshness', () => {
  it('does not serve a ring whose newest candle opened securityMs ago or more', () => {
    const { tracked, clock } = warmed({ cadenceMs: undefined });
    clock.t = open(5) + SECURITY_MS - 1;
    tracked.applyRest(...replyFrom([row(5, 3)], clock.t));
    expect(tracked.isServable(SECURITY_MS)).toBe(true);
    clock.t = open(5) + SECURITY_MS;
    expect(tracked.isServable(SECURITY_MS)).toBe(false);
  });

  it('does not serve a ring the exchange last confirmed securityMs ago or more', () => {
    // Our clock ran 50 ms behind the exchange's: the reply holding candle 5 was sent at open(5) - 50.
    const { tracked, clock } = setup({ t: open(5) - 50, cadenceMs: undefined });
    tracked.applyFinal(rows(0, 4));
    tracked.applyRest(...replyFrom([row(5, 1)], clock.t));
    tracked.markReady();
    clock.t = open(5) + 9_949;
    expect(tracked.isServable(10_000)).toBe(true);
    // The newest candle opened 9.95 s ago, but the exchange last vouched 10 s ago.
    clock.t = open(5) + 9_950;
    expect(tracked.isServable(10_000)).toBe(false);
    expect(tracked.state(10_000, false)).toBe('stale');
  });
});

describe('TrackedSymbol: snapshots and daily files', () => {
  function fromSnapshot(): Setup {
    const s = setup();
    // A snapshot taken during candle 5: candles 0..4 final, 5 forming.
    const data = new Float64Array(6 * 12);
    for (let i = 0; i <= 5; i += 1) data.set(values(i, i === 5 ? 1 : 0), i * 12);
    s.ring.assign(data);
    s.tracked.adoptSnapshot(open(5));
    return s;
  }

  it('adopts a snapshot that reaches the current candle: ready, every row before the newest final, served after the first stream event', () => {
    const { tracked, clock } = fromSnapshot();
    expect(tracked.isReady).toBe(true);
    expect(tracked.finalOpenTime).toBe(open(4));
    expect(tracked.hasFinalRows()).toBe(true);
    // Nothing confirmed it yet.
    expect(tracked.isServable(SECURITY_MS)).toBe(false);
    expect(tracked.state(SECURITY_MS, false)).toBe('stale');
    expect(tracked.isStreamSettled()).toBe(false);
    clock.t += 200;
    tracked.applyStream(values(5, 2), false, clock.t);
    expect(tracked.isServable(SECURITY_MS)).toBe(true);
    expect(tracked.isStreamSettled()).toBe(true);
  });

  it('after adopting a snapshot, the next candle without the close of the current one is a hole', () => {
    const { tracked, clock, events } = fromSnapshot();
    clock.t = open(6) + 100;
    tracked.applyStream(values(6, 1), false, clock.t);
    expect(tracked.holeFrom).toBe(open(5));
    expect(events.holes).toEqual([open(5)]);
  });

  it('takes the rows of a daily file as final without reporting closes, never moving the final values back', () => {
    const { tracked, ring, events } = setup();
    tracked.applyFinal(rows(0, 3));
    expect(openTimes(ring)).toEqual([0, 1, 2, 3].map(open));
    expect(tracked.finalOpenTime).toBe(open(3));
    expect(rowOf(ring, open(2))).toEqual(values(2));
    tracked.applyFinal(rows(0, 1));
    expect(tracked.finalOpenTime).toBe(open(3));
    tracked.applyFinal([]);
    expect(tracked.finalOpenTime).toBe(open(3));
    expect(events.closes).toEqual([]);
  });

  it('a warm start from a daily file and a REST tail serves the ring', () => {
    const { tracked, clock, ring } = setup();
    tracked.applyFinal(rows(0, 3));
    tracked.applyRest(...replyFrom(rows(3, 5, { index: 5, v: 1 }), clock.t));
    tracked.markReady();
    expect(openTimes(ring)).toEqual([0, 1, 2, 3, 4, 5].map(open));
    expect(tracked.finalOpenTime).toBe(open(4));
    expect(tracked.isServable(SECURITY_MS)).toBe(true);
  });
});

describe('TrackedSymbol: state()', () => {
  it('is warming before the warm start is done, even during a ban', () => {
    const { tracked, clock } = setup();
    tracked.applyRest(...replyFrom(rows(0, 5, { index: 5, v: 1 }), clock.t));
    expect(tracked.isServable(SECURITY_MS)).toBe(false);
    expect(tracked.state(SECURITY_MS, false)).toBe('warming');
    expect(tracked.state(SECURITY_MS, true)).toBe('warming');
  });

  it('is fresh when servable, even during a ban', () => {
    const { tracked } = warmed();
    expect(tracked.state(SECURITY_MS, false)).toBe('fresh');
    expect(tracked.state(SECURITY_MS, true)).toBe('fresh');
  });

  it('is banned rather than repairing, overdue or stale during a ban', () => {
    const hole = warmed();
    hole.tracked.interrupted(open(5));
    expect(hole.tracked.state(SECURITY_MS, true)).toBe('banned');
    const overdue = warmed();
    overdue.clock.t = close(5) + CADENCE_MS + MARGIN_MS + 1;
    expect(overdue.tracked.state(SECURITY_MS, true)).toBe('banned');
    const stale = warmed();
    stale.clock.t += SECURITY_MS;
    expect(stale.tracked.state(SECURITY_MS, true)).toBe('banned');
  });

  it('is repairing rather than overdue with a hole', () => {
    const { tracked, clock } = warmed();
    tracked.interrupted(open(5));
    clock.t = close(5) + CADENCE_MS + MARGIN_MS + 1;
    expect(tracked.isOverdue()).toBe(true);
    expect(tracked.state(SECURITY_MS, false)).toBe('repairing');
  });

  it('is repairing when a row before the newest lacks its final values', () => {
    const { tracked, clock } = setup({ t: close(5) + 50 });
    tracked.applyRest(...replyFrom([...rows(0, 5), row(6, 1)], clock.t));
    tracked.markReady();
    expect(tracked.holeFrom).toBeUndefined();
    expect(tracked.state(SECURITY_MS, false)).toBe('repairing');
  });

  it('is overdue rather than stale when past the deadline and unconfirmed for securityMs', () => {
    const { tracked, clock } = warmed();
    clock.t = close(5) + CADENCE_MS + MARGIN_MS + 1;
    // Freshness fails too (5 s limit): the reason given is the missing close.
    expect(tracked.isFresh(5000)).toBe(false);
    expect(tracked.state(5000, false)).toBe('overdue');
  });

  it('is stale when whole and not past the deadline but unconfirmed for securityMs', () => {
    const { tracked, clock } = warmed();
    clock.t += 10_000;
    expect(tracked.isOverdue()).toBe(false);
    expect(tracked.state(5000, false)).toBe('stale');
  });
});

describe('TrackedSymbol: isStreamSettled', () => {
  it('is false before the warm start, and until the first stream update', () => {
    const s = setup();
    expect(s.tracked.isStreamSettled()).toBe(false);
    s.tracked.applyRest(...replyFrom(rows(0, 5, { index: 5, v: 1 }), s.clock.t));
    s.tracked.markReady();
    expect(s.tracked.isStreamSettled()).toBe(false);
    s.tracked.applyStream(values(5, 2), false, s.clock.t + 10);
    expect(s.tracked.isStreamSettled()).toBe(true);
  });

  it('is false with a hole, and again true once it is repaired', () => {
    const { tracked } = warmed();
    tracked.interrupted(open(5));
    expect(tracked.isStreamSettled()).toBe(false);
    tracked.repaired(open(5));
    expect(tracked.isStreamSettled()).toBe(true);
  });

  it('is false when overdue', () => {
    const { tracked, clock } = warmed();
    expect(tracked.isStreamSettled()).toBe(true);
    clock.t = close(5) + CADENCE_MS + MARGIN_MS + 1;
    expect(tracked.isStreamSettled()).toBe(false);
  });
});

describe('TrackedSymbol: warm-up racing the stream', () => {
  // Regression: the stream runs before the warm-up's REST reply arrives. Its first close used to
  // set the final values outright; the reply's forming row, older than that close, was dropped, and
  // markReady() served the ring with a candle missing.
  it('does not serve a ring that lacks a candle after a warm-up reply slower than the first stream close', () => {
    const { tracked, clock, ring } = setup();
    const sentAt = clock.t; // during candle 5
    // While the reply is on its way, the stream delivers candle 6 and its close, then candle 7.
    tracked.applyStream(values(6, 1), false, open(6) + 100);
    tracked.applyStream(values(6), true, close(6) + 1);
    tracked.applyStream(values(7, 1), false, open(7) + 100);
    clock.t = open(7) + 200;
    tracked.applyRest(...replyFrom(rows(0, 5, { index: 5, v: 1 }), sentAt));
    tracked.markReady();
    // The reply's forming candle is kept, but it is not final: not served yet.
    expect(openTimes(ring)).toContain(open(5));
    expect(tracked.pendingFinal()).toBe(open(5));
    expect(tracked.isServable(SECURITY_MS)).toBe(false);
    // The warm-up's confirmation fetches from the first candle lacking its final values.
    clock.t = open(7) + 5000;
    tracked.applyRest(...replyFrom(rows(5, 7, { index: 7, v: 2 }), clock.t));
    expect(openTimes(ring)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map(open));
    expect(rowOf(ring, open(5))).toEqual(values(5));
    expect(tracked.isServable(SECURITY_MS)).toBe(true);
  });
});

describe('TrackedSymbol: a hole after a candle that lacks its final values', () => {
  // Regression: a new stream candle used to mark the hole from the newest row, not from the oldest
  // row lacking its final values; the repair from there returned final rows after that row, and
  // the final values moved over it, serving a candle with the values it had while forming.
  it('marks the hole from the first candle lacking its final values, so the repair replaces them', () => {
    const { tracked, clock } = setup();
    const sentAt = clock.t; // during candle 5
    // The stream's first event (candle 6) comes before the warm-up's reply.
    tracked.applyStream(values(6, 1), false, open(6) + 100);
    tracked.applyRest(...replyFrom(rows(0, 5, { index: 5, v: 1 }), sentAt));
    tracked.markReady();
    expect(tracked.pendingFinal()).toBe(open(5));
    // Candle 7 arrives without the close of 6: a hole from candle 5, the first not final.
    tracked.applyStream(values(7, 1), false, open(7) + 100);
    expect(tracked.holeFrom).toBe(open(5));
    clock.t = open(7) + 5000;
    const from = tracked.holeFrom as number;
    tracked.applyRest(...replyFrom(rows(indexOfOpen(from), 7, { index: 7, v: 2 }), clock.t));
    expect(tracked.repaired(from)).toBe(true);
    expect(rowOf(tracked.ring, open(5))).toEqual(values(5));
    expect(tracked.isServable(SECURITY_MS)).toBe(true);
  });
});

function indexOfOpen(openTime: number): number {
  return (openTime - T0) / MINUTE;
}

describe('TrackedSymbol: the final chain', () => {
  it('does not take final rows of a reply that starts after the first candle lacking its final values', () => {
    const { tracked, clock, ring } = warmed({ stream: false });
    expect(tracked.pendingFinal()).toBe(open(5));
    // Later, a reply for candles 7..8 only: 5 is still as it was while forming, 6 is missing.
    clock.t = close(8) + 1000;
    tracked.applyRest(...replyFrom(rows(7, 8), clock.t));
    expect(openTimes(ring)).toEqual([0, 1, 2, 3, 4, 5, 7, 8].map(open));
    expect(tracked.pendingFinal()).toBe(open(5));
    expect(tracked.isServable(SECURITY_MS)).toBe(false);
    // A reply from candle 5 on closes the chain up to its last final row.
    tracked.applyRest(...replyFrom(rows(5, 8), clock.t));
    expect(tracked.finalOpenTime).toBe(open(8));
    expect(tracked.isServable(SECURITY_MS)).toBe(true);
  });

  it('bridges a gap the exchange itself has, inside a reply that starts at the first candle lacking its final values', () => {
    const { tracked, clock, ring } = warmed({ stream: false });
    // Trading was suspended during candle 6: the exchange has 5, 7 and 8 only.
    clock.t = close(8) + 1000;
    tracked.applyRest(...replyFrom([row(5), row(7), row(8)], clock.t, open(5)));
    expect(openTimes(ring)).toEqual([0, 1, 2, 3, 4, 5, 7, 8].map(open));
    expect(tracked.finalOpenTime).toBe(open(8));
    expect(tracked.isServable(SECURITY_MS)).toBe(true);
  });
});
