import { describe, expect, it } from 'vitest';
import { candlesBetween, closeTimeOf, nextOpenTime, openTimeOf, previousOpenTime } from '../../src/binance/intervals.js';

const at = (iso: string) => Date.parse(iso);

describe('interval arithmetic', () => {
  it('aligns fixed intervals to UTC multiples', () => {
    expect(openTimeOf('1m', at('2024-01-01T10:30:59.999Z'))).toBe(at('2024-01-01T10:30:00Z'));
    expect(openTimeOf('4h', at('2024-01-01T10:30:00Z'))).toBe(at('2024-01-01T08:00:00Z'));
    expect(openTimeOf('1s', at('2024-01-01T10:30:00.500Z'))).toBe(at('2024-01-01T10:30:00Z'));
  });

  it('opens weeks on Monday 00:00 UTC', () => {
    // 2024-01-03 is a Wednesday; its week opened on Monday 2024-01-01.
    expect(openTimeOf('1w', at('2024-01-03T12:00:00Z'))).toBe(at('2024-01-01T00:00:00Z'));
    expect(nextOpenTime('1w', at('2024-01-01T00:00:00Z'))).toBe(at('2024-01-08T00:00:00Z'));
  });

  it('opens months on the first of the calendar month', () => {
    expect(openTimeOf('1M', at('2024-02-29T23:59:59Z'))).toBe(at('2024-02-01T00:00:00Z'));
    expect(nextOpenTime('1M', at('2024-01-01T00:00:00Z'))).toBe(at('2024-02-01T00:00:00Z'));
    expect(previousOpenTime('1M', at('2024-03-01T00:00:00Z'))).toBe(at('2024-02-01T00:00:00Z'));
    expect(closeTimeOf('1M', at('2024-02-01T00:00:00Z'))).toBe(at('2024-03-01T00:00:00Z') - 1);
  });

  it('gives close time as next open minus one millisecond', () => {
    expect(closeTimeOf('1m', at('2024-01-01T00:00:00Z'))).toBe(at('2024-01-01T00:00:59.999Z'));
  });

  it('counts candles in a half-open range', () => {
    expect(candlesBetween('1m', at('2024-01-01T00:00:00Z'), at('2024-01-02T00:00:00Z'))).toBe(1440);
    expect(candlesBetween('1M', at('2024-01-01T00:00:00Z'), at('2025-01-01T00:00:00Z'))).toBe(12);
    expect(candlesBetween('1h', at('2024-01-02T00:00:00Z'), at('2024-01-01T00:00:00Z'))).toBe(0);
  });
});
