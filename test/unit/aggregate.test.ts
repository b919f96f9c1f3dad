import { describe, expect, it } from 'vitest';
import { aggregate, canAggregate, concatBars, type Bar } from '../../src/analysis/aggregate.js';
import { InvalidArgumentError } from '../../src/errors.js';
import type { RawKline } from '../../src/binance/kline.js';
import { CandleRing } from '../../src/store/candle-ring.js';

const at = (iso: string) => Date.parse(iso);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** A REST-shaped 1m row: volumes given, close time derived, strings where Binance sends strings. */
function row(
  iso: string,
  o: number,
  h: number,
  l: number,
  c: number,
  v: number,
  q: number,
  n: number,
  tb: number,
  tq: number,
  ms = MINUTE,
): RawKline {
  const t = at(iso);
  return [t, String(o), String(h), String(l), String(c), String(v), t + ms - 1, String(q), n, String(tb), String(tq), '0'];
}

// Seven minutes, 00:03 to 00:09: two in the 00:00 bucket, five in the 00:05 one.
const MINUTES: RawKline[] = [
  row('2024-01-01T00:03:00Z', 10, 12, 9, 11, 1, 10, 3, 0.5, 5),
  row('2024-01-01T00:04:00Z', 11, 11.5, 8, 8.5, 2, 20, 4, 1, 10),
  row('2024-01-01T00:05:00Z', 8.5, 9, 8, 8.8, 3, 30, 5, 1.5, 15),
  row('2024-01-01T00:06:00Z', 8.8, 15, 8.7, 14, 4, 40, 6, 2, 20),
  row('2024-01-01T00:07:00Z', 14, 14.5, 7, 7.5, 5, 50, 7, 2.5, 25),
  row('2024-01-01T00:08:00Z', 7.5, 8, 7.2, 7.9, 6, 60, 8, 3, 30),
  row('2024-01-01T00:09:00Z', 7.9, 8.1, 7.8, 8, 7, 70, 9, 3.5, 35),
];

// Worked by hand from MINUTES: O first, H max, L min, C last, volumes and trades summed.
const EXPECTED_5M: Bar[] = [
  {
    openTime: at('2024-01-01T00:00:00Z'),
    open: 10,
    high: 12,
    low: 8,
    close: 8.5,
    volume: 3,
    closeTime: at('2024-01-01T00:05:00Z') - 1,
    quoteVolume: 30,
    trades: 7,
    takerBuyBase: 1.5,
    takerBuyQuote: 15,
    candles: 2,
  },
  {
    openTime: at('2024-01-01T00:05:00Z'),
    open: 8.5,
    high: 15,
    low: 7,
    close: 8,
    volume: 25,
    closeTime: at('2024-01-01T00:10:00Z') - 1,
    quoteVolume: 250,
    trades: 35,
    takerBuyBase: 12.5,
    takerBuyQuote: 125,
    candles: 5,
  },
];

function ringOf(rows: readonly RawKline[]): CandleRing {
  const ring = new CandleRing(rows.length);
  ring.upsertMany(rows);
  return ring;
}

describe('aggregate', () => {
  it('builds 5m bars from 1m rows: first open, max high, min low, last close, sums', () => {
    expect(aggregate(MINUTES, '1m', '5m')).toEqual(EXPECTED_5M);
  });

  it('reads a CandleView in place and gives the same bars as the rows', () => {
    const ring = ringOf(MINUTES);
    expect(aggregate(ring.view(), '1m', '5m')).toEqual(EXPECTED_5M);
    expect(aggregate(ring.view(), '1m', '1m').map((bar) => bar.close)).toEqual([11, 8.5, 8.8, 14, 7.5, 7.9, 8]);
  });

  it('accepts rows of plain numbers', () => {
    const numeric = MINUTES.map((r) => r.map(Number));
    expect(aggregate(numeric, '1m', '5m')).toEqual(EXPECTED_5M);
  });

  it('leaves out candles before `from`, from rows and from a view alike', () => {
    const from = at('2024-01-01T00:07:00Z');
    const expected = [
      {
        ...EXPECTED_5M[1]!,
        open: 14,
        high: 14.5,
        low: 7,
        volume: 18,
        quoteVolume: 180,
        trades: 24,
        takerBuyBase: 9,
        takerBuyQuote: 90,
        candles: 3,
      },
    ];
    expect(aggregate(MINUTES, '1m', '5m', { from })).toEqual(expected);
    expect(aggregate(ringOf(MINUTES).view(), '1m', '5m', { from })).toEqual(expected);
    expect(aggregate(ringOf(MINUTES).view(), '1m', '5m', { from: at('2024-01-02T00:00:00Z') })).toEqual([]);
  });

  it('gives a partial last bucket its full close time and the count of candles it holds', () => {
    const bars = aggregate(MINUTES.slice(0, 4), '1m', '5m');
    expect(bars.at(-1)).toMatchObject({
      openTime: at('2024-01-01T00:05:00Z'),
      closeTime: at('2024-01-01T00:10:00Z') - 1,
      candles: 2,
      close: 14,
    });
  });

  it('opens daily bars at 00:00 UTC and weekly bars on Monday', () => {
    const hours = [
      row('2024-01-07T22:00:00Z', 1, 2, 0.5, 1.5, 1, 1, 1, 0, 0, HOUR),
      row('2024-01-07T23:00:00Z', 1.5, 3, 1, 2, 1, 1, 1, 0, 0, HOUR),
      row('2024-01-08T00:00:00Z', 2, 2.5, 1.8, 2.2, 1, 1, 1, 0, 0, HOUR),
    ];
    const daily = aggregate(hours, '1h', '1d');
    expect(daily.map((bar) => [bar.openTime, bar.open, bar.high, bar.low, bar.close, bar.candles])).toEqual([
      [at('2024-01-07T00:00:00Z'), 1, 3, 0.5, 2, 2],
      [at('2024-01-08T00:00:00Z'), 2, 2.5, 1.8, 2.2, 1],
    ]);
    // 2024-01-07 is a Sunday: its week opened on Monday 2024-01-01, the next on 2024-01-08.
    expect(aggregate(hours, '1h', '1w').map((bar) => bar.openTime)).toEqual([at('2024-01-01T00:00:00Z'), at('2024-01-08T00:00:00Z')]);
    expect(aggregate(hours, '1h', '4h').map((bar) => [bar.openTime, bar.closeTime])).toEqual([
      [at('2024-01-07T20:00:00Z'), at('2024-01-08T00:00:00Z') - 1],
      [at('2024-01-08T00:00:00Z'), at('2024-01-08T04:00:00Z') - 1],
    ]);
  });

  it('builds a bar from the candles it has when the source has a hole', () => {
    const holed = [MINUTES[2]!, MINUTES[6]!];
    expect(aggregate(holed, '1m', '5m')).toEqual([
      { ...EXPECTED_5M[1]!, high: 9, low: 7.8, volume: 10, quoteVolume: 100, trades: 14, takerBuyBase: 5, takerBuyQuote: 50, candles: 2 },
    ]);
  });

  it('refuses unordered or repeated candles', () => {
    expect(() => aggregate([MINUTES[1]!, MINUTES[0]!], '1m', '5m')).toThrow(/strictly increase/);
    expect(() => aggregate([MINUTES[0]!, MINUTES[0]!], '1m', '5m')).toThrow(InvalidArgumentError);
  });

  it('refuses periods the bar does not divide', () => {
    expect(() => aggregate(MINUTES, '5m', '1m')).toThrow(/cannot aggregate 5m candles into 1m/);
    expect(() => aggregate(MINUTES, '1w', '1M')).toThrow(InvalidArgumentError);
    expect([canAggregate('1m', '4h'), canAggregate('1s', '1d'), canAggregate('1d', '1M'), canAggregate('12h', '1w')]).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect([
      canAggregate('3m', '1m'),
      canAggregate('1h', '1h'),
      canAggregate('3d', '1w'),
      canAggregate('1w', '1M'),
      canAggregate('1M', '1w'),
    ]).toEqual([false, true, false, false, false]);
  });
});

describe('concatBars', () => {
  it('merges a bucket split between history and the ring, as if aggregated at once', () => {
    const older = aggregate(MINUTES.slice(0, 4), '1m', '5m');
    const newer = aggregate(MINUTES.slice(4), '1m', '5m');
    expect(concatBars(older, newer)).toEqual(EXPECTED_5M);
  });

  it('keeps both when they do not meet, and drops older bars past the first newer one', () => {
    const [first, second] = EXPECTED_5M as [Bar, Bar];
    expect(concatBars([first], [second])).toEqual(EXPECTED_5M);
    expect(concatBars([], [second])).toEqual([second]);
    expect(concatBars([first], [])).toEqual([first]);
    const later = { ...second, openTime: second.openTime + 5 * MINUTE };
    expect(concatBars([first, later], [second]).map((bar) => bar.openTime)).toEqual([first.openTime, second.openTime]);
  });
});
