import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  addDays,
  dailyDayFolder,
  dailyFilePath,
  dailyFolderName,
  expectedCount,
  expectedOpenTimes,
  lastFullLocalDays,
  localDayBounds,
  localDayOf,
  utcDaysCovering,
} from '../../src/files/daily-layout.js';

const at = (iso: string) => Date.parse(iso);
const NY = 'America/New_York';
const HOUR = 3_600_000;

describe('daily file layout', () => {
  it("follows the original's folder layout exactly", () => {
    expect(dailyFolderName('UM', NY, '1m')).toBe('UM-AmericaNew_York-1m');
    const root = join('/srv', 'candles');
    const path = dailyFilePath(root, 'UM', NY, '1m', '2024-01-24', 'BTCUSDT');
    expect(relative(root, path).split('\\').join('/')).toBe('UM-AmericaNew_York-1m/2024-01/2024-01-24/BTCUSDT.csv');
    expect(dailyDayFolder(root, 'SPOT', 'UTC', '1h', '2024-12-31')).toBe(join(root, 'SPOT-UTC-1h', '2024-12', '2024-12-31'));
    expect(dailyFolderName('CM', 'Asia/Tokyo', '1d')).toBe('CM-AsiaTokyo-1d');
  });

  it.each(['../x', 'a/b', '..', 'btcusdt', '', 'BTC USDT', 'BTC\\USDT', 'BTC.CSV'])('refuses the symbol %j', (symbol) => {
    expect(() => dailyFilePath('/srv/candles', 'UM', NY, '1m', '2024-01-24', symbol)).toThrow(InvalidArgumentError);
    expect(() => dailyFilePath('/srv/candles', 'UM', NY, '1m', '2024-01-24', symbol)).toThrow(/not a Binance symbol/);
  });

  it.each(['2024-02-30', '2024-1-24', '../2024-01-24', '2024-01-24/..', ''])('refuses the day %j', (day) => {
    expect(() => dailyFilePath('/srv/candles', 'UM', NY, '1m', day, 'BTCUSDT')).toThrow(InvalidArgumentError);
  });

  it.each(['../etc', 'America/../../x', 'Mars/Olympus_Mons', ''])('refuses the time zone %j', (timezone) => {
    expect(() => dailyFilePath('/srv/candles', 'UM', timezone, '1m', '2024-01-24', 'BTCUSDT')).toThrow(InvalidArgumentError);
  });
});

describe('local days across daylight saving (America/New_York)', () => {
  it('gives the spring-forward day 23 hours, the fall-back day 25 and a winter day 24', () => {
    expect(localDayBounds('2024-03-10', NY)).toEqual({ start: at('2024-03-10T05:00:00Z'), end: at('2024-03-11T04:00:00Z') });
    expect(localDayBounds('2024-11-03', NY)).toEqual({ start: at('2024-11-03T04:00:00Z'), end: at('2024-11-04T05:00:00Z') });
    const winter = localDayBounds('2024-01-15', NY);
    expect(winter.end - winter.start).toBe(24 * HOUR);
  });

  it('counts 1380, 1500 and 1440 one-minute candles and 23, 25 and 24 hourly ones', () => {
    expect(expectedCount('2024-03-10', NY, '1m')).toBe(1380);
    expect(expectedCount('2024-11-03', NY, '1m')).toBe(1500);
    expect(expectedCount('2024-01-15', NY, '1m')).toBe(1440);
    expect(expectedCount('2024-03-10', NY, '1h')).toBe(23);
    expect(expectedCount('2024-11-03', NY, '1h')).toBe(25);
    expect(expectedCount('2024-01-15', NY, '1h')).toBe(24);
    expect(expectedOpenTimes('2024-03-10', NY, '1m')).toHaveLength(1380);
    expect(expectedOpenTimes('2024-11-03', NY, '1h')).toHaveLength(25);
  });

  it('lists open times from local midnight to the minute before the next', () => {
    const times = expectedOpenTimes('2024-03-10', NY, '1m');
    expect(times[0]).toBe(at('2024-03-10T05:00:00Z'));
    expect(times.at(-1)).toBe(at('2024-03-11T03:59:00Z'));
    expect(times.every((t, i) => i === 0 || t - times[i - 1]! === 60_000)).toBe(true);
  });

  it('puts bars longer than the local alignment in the local day in which they open', () => {
    // The 1d candle opening at 00:00 UTC on the 16th opens at 19:00 on the 15th in New York.
    expect(expectedOpenTimes('2024-01-15', NY, '1d')).toEqual([at('2024-01-16T00:00:00Z')]);
    expect(expectedOpenTimes('2024-01-15', NY, '4h')).toEqual(
      ['08', '12', '16', '20'].map((h) => at(`2024-01-15T${h}:00:00Z`)).concat([at('2024-01-16T00:00:00Z'), at('2024-01-16T04:00:00Z')]),
    );
    expect(expectedCount('2024-03-10', NY, '4h')).toBe(5);
    expect(expectedCount('2024-11-03', NY, '4h')).toBe(7);
    // Every hour of a week belongs to exactly one local day.
    let total = 0;
    for (let day = '2024-03-07'; day < '2024-03-14'; day = addDays(day, 1)) total += expectedCount(day, NY, '1h');
    expect(total).toBe(7 * 24 - 1);
  });

  it('starts a day whose midnight does not exist at the first local instant (America/Santiago)', () => {
    // Chile moved clocks from 00:00 to 01:00 on 2024-09-08.
    const { start, end } = localDayBounds('2024-09-08', 'America/Santiago');
    expect(start).toBe(at('2024-09-08T04:00:00Z'));
    expect(end - start).toBe(23 * HOUR);
    expect(localDayOf(start - 1, 'America/Santiago')).toBe('2024-09-07');
    expect(localDayOf(start, 'America/Santiago')).toBe('2024-09-08');
  });
});

describe('day helpers', () => {
  it('finds the local day of an instant', () => {
    expect(localDayOf(at('2024-01-16T03:00:00Z'), NY)).toBe('2024-01-15');
    expect(localDayOf(at('2024-01-16T05:00:00Z'), NY)).toBe('2024-01-16');
    expect(localDayOf(at('2024-01-15T23:00:00Z'), 'Asia/Tokyo')).toBe('2024-01-16');
  });

  it('lists the last complete local days, oldest first, without today', () => {
    // 22:00 on the 24th in New York: the 24th is not over yet.
    expect(lastFullLocalDays(at('2024-01-25T03:00:00Z'), NY, 2)).toEqual(['2024-01-22', '2024-01-23']);
    expect(lastFullLocalDays(at('2024-01-25T05:00:00Z'), NY, 3)).toEqual(['2024-01-22', '2024-01-23', '2024-01-24']);
    expect(lastFullLocalDays(at('2024-03-01T12:00:00Z'), 'UTC', 2)).toEqual(['2024-02-28', '2024-02-29']);
    expect(lastFullLocalDays(at('2024-03-01T12:00:00Z'), 'UTC', 0)).toEqual([]);
    expect(() => lastFullLocalDays(0, 'UTC', -1)).toThrow(InvalidArgumentError);
  });

  it('names the UTC archive days that cover a local day', () => {
    expect(utcDaysCovering('2024-01-24', NY)).toEqual(['2024-01-24', '2024-01-25']);
    expect(utcDaysCovering('2024-01-24', 'Asia/Tokyo')).toEqual(['2024-01-23', '2024-01-24']);
    expect(utcDaysCovering('2024-01-24', 'UTC')).toEqual(['2024-01-24']);
    expect(utcDaysCovering('2024-12-31', NY)).toEqual(['2024-12-31', '2025-01-01']);
  });
});
