import { describe, expect, it } from 'vitest';
import type { RawKline } from '../../src/binance/kline.js';
import { resolveKlinesRange, type KlinesRange } from '../../src/binance/klines-query.js';
import { selectKlines, type DayRows, type Selection } from '../../src/service/kline-selection.js';
import { CandleRing } from '../../src/store/candle-ring.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
// BAR 1h, UTC days: 24 candles a day. "Now" is 05:30 on day 3; the ring holds day 2 from 10:00 on.
const D0 = Date.parse('2024-03-01T00:00:00Z');
const NOW = D0 + 3 * DAY + 5.5 * HOUR;
const dayName = (n: number): string => new Date(D0 + n * DAY).toISOString().slice(0, 10);

function kline(t: number): RawKline {
  return [t, '1.0', '2.0', '0.5', '1.5', '10', t + HOUR - 1, '15', 4, '5', '7.5', '0'];
}

/** Complete days 0 and 1 on disk (day 1 with an exchange gap 06:00-08:00); day 2 lacks a file. */
function days(loaded: Set<string> = new Set([dayName(0), dayName(1), dayName(2)])) {
  const rows = (n: number, skip: (hour: number) => boolean = () => false): RawKline[] =>
    Array.from({ length: 24 }, (_, h) => h)
      .filter((h) => !skip(h))
      .map((h) => kline(D0 + n * DAY + h * HOUR));
  const onDisk = new Map<string, DayRows>([
    [dayName(0), rows(0)],
    [dayName(1), rows(1, (h) => h >= 6 && h < 8)],
    [dayName(2), null],
  ]);
  return { timezone: 'UTC', get: (day: string) => (loaded.has(day) ? onDisk.get(day) : undefined) };
}

function ring(): CandleRing {
  const r = new CandleRing(100);
  for (let t = D0 + 2 * DAY + 10 * HOUR; t <= D0 + 3 * DAY + 5 * HOUR; t += HOUR) r.upsert(kline(t));
  return r;
}

function range(market: 'SPOT' | 'CM', query: string): KlinesRange {
  const params = new URLSearchParams(query);
  const resolved = resolveKlinesRange(
    market,
    {
      symbol: 'X',
      interval: '1h',
      startTime: params.has('startTime') ? Number(params.get('startTime')) : undefined,
      endTime: params.has('endTime') ? Number(params.get('endTime')) : undefined,
      limit: params.has('limit') ? Number(params.get('limit')) : undefined,
      timeZone: undefined,
    },
    NOW,
  );
  if ('code' in resolved) throw new Error(resolved.msg);
  return resolved;
}

/** The open times a selection holds, oldest first, as hours since D0. */
function hours(selection: Selection, r: CandleRing | undefined): number[] | string {
  if (selection.kind !== 'held') return selection.kind === 'load' ? `load ${selection.day}` : `not held: ${selection.reason}`;
  const times: number[] = [];
  for (const part of selection.parts) {
    if (part.kind === 'rows') times.push(...part.rows.map((row) => row[0]));
    else for (let i = part.start; i < part.end; i += 1) times.push(r?.view().openTime(i) ?? Number.NaN);
  }
  return times.map((t) => (t - D0) / HOUR);
}

const select = (r: CandleRing | undefined, query: string, market: 'SPOT' | 'CM' = 'SPOT', loaded?: Set<string>, maxDays = 10) =>
  hours(selectKlines({ range: range(market, query), interval: '1h', now: NOW, ring: r?.view(), days: days(loaded), maxDays }), r);

describe('selectKlines', () => {
  it('walks forward from startTime through complete days, across an exchange gap, into the ring', () => {
    const r = ring();
    expect(select(r, `startTime=${D0 + 22 * HOUR}&limit=5`)).toEqual([22, 23, 24, 25, 26]);
    expect(select(r, `startTime=${D0 + DAY + 4 * HOUR}&limit=5`)).toEqual([28, 29, 32, 33, 34]);
    // Day 1's file, then the ring from day 2 10:00: day 2's missing file is never needed.
    expect(select(r, `startTime=${D0 + DAY + 20 * HOUR}&limit=3`)).toEqual([44, 45, 46]);
    // From day 1's last candle the walk needs day 2 before the ring: not on disk.
    expect(select(r, `startTime=${D0 + DAY + 23 * HOUR}&limit=3`)).toMatch(/no complete daily file of 2024-03-03/);
  });

  it('walks back from endTime (or now) through the ring into complete days', () => {
    const r = ring();
    expect(select(r, 'limit=3')).toEqual([75, 76, 77]);
    // Two candles in the ring, the third would come from day 2: not on disk.
    expect(select(r, `endTime=${D0 + 2 * DAY + 11 * HOUR}&limit=3`)).toMatch(/no complete daily file of 2024-03-03/);
    expect(select(r, `endTime=${D0 + 2 * DAY + 11 * HOUR}&limit=2`)).toEqual([58, 59]);
    // Older than the ring: day 1 alone, the gap skipped.
    expect(select(r, `endTime=${D0 + DAY + 9 * HOUR}&limit=5`)).toEqual([27, 28, 29, 32, 33]);
  });

  it('asks for a day not read yet, refuses what is not complete, today without a ring, and walks past maxDays', () => {
    const r = ring();
    expect(select(r, `startTime=${D0 + 3 * HOUR}&limit=2`, 'SPOT', new Set())).toBe(`load ${dayName(0)}`);
    expect(select(undefined, 'limit=2')).toMatch(/day 2024-03-04 is not over/);
    expect(select(r, `startTime=${D0 + 3 * HOUR}&limit=100`, 'SPOT', undefined, 1)).toMatch(/more than 1 daily files/);
    // COIN-M: the newest `limit` of its window, here entirely in files.
    expect(select(undefined, `startTime=${D0}&endTime=${D0 + DAY + 3 * HOUR}&limit=4`, 'CM')).toEqual([24, 25, 26, 27]);
  });
});
