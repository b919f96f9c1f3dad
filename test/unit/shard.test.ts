import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { shardOf } from '../../src/sync/shard.js';

/** 2000 distinct symbol-like names: base-26 letter stems ('A', 'B', ..., 'BA', ...) + 'USDT'. */
const GENERATED = Array.from({ length: 2000 }, (_, i) => {
  let stem = '';
  let rest = i;
  do {
    stem += String.fromCharCode(65 + (rest % 26));
    rest = Math.floor(rest / 26);
  } while (rest > 0);
  return `${stem}USDT`;
});

describe('shardOf', () => {
  it('keeps the assignments of the deployment contract (a change here moves symbols between running servers)', () => {
    // [symbol, shard of 2, of 3, of 4, of 1024]: fmix32(fnv1a32(symbol)) mod N + 1.
    const pinned: Array<[string, number, number, number, number]> = [
      ['BTCUSDT', 2, 2, 4, 476],
      ['ETHUSDT', 2, 1, 2, 1006],
      ['SOLUSDT', 1, 1, 3, 515],
      ['BNBUSDT', 2, 1, 2, 918],
      ['XRPUSDT', 2, 1, 4, 364],
      ['DOGEUSDT', 2, 2, 2, 686],
      ['ETHBTC', 2, 3, 2, 698],
      ['BTCUSD_PERP', 1, 3, 1, 333],
      ['ETHUSD_PERP', 2, 3, 2, 1022],
      ['BTCUSDT_261225', 1, 1, 3, 127],
    ];
    for (const [symbol, ...shards] of pinned) expect([2, 3, 4, 1024].map((count) => shardOf(symbol, count))).toEqual(shards);
  });

  it('puts every symbol on exactly one shard in 1..N, the same whatever else is listed and in whatever order', () => {
    for (const count of [1, 2, 3, 4, 7, 1024]) {
      const alone = GENERATED.map((symbol) => shardOf(symbol, count));
      expect(alone.every((shard) => Number.isInteger(shard) && shard >= 1 && shard <= count)).toBe(true);
      const reversed = [...GENERATED].reverse().map((symbol) => shardOf(symbol, count));
      expect(reversed.reverse()).toEqual(alone);
      // Splitting by shard and joining the parts gives the universe back, nothing twice.
      const parts = Array.from({ length: count }, (_, k) => GENERATED.filter((symbol) => shardOf(symbol, count) === k + 1));
      expect(parts.flat().sort()).toEqual([...GENERATED].sort());
    }
    expect(GENERATED.every((symbol) => shardOf(symbol, 1) === 1)).toBe(true);
  });

  it('spreads 2000 symbols over 4 shards within 10% of an even share', () => {
    const counts = [0, 0, 0, 0];
    for (const symbol of GENERATED) {
      const index = shardOf(symbol, 4) - 1;
      counts[index] = (counts[index] ?? 0) + 1;
    }
    for (const count of counts) {
      expect(count).toBeGreaterThanOrEqual(450);
      expect(count).toBeLessThanOrEqual(550);
    }
  });

  it('refuses a count that is not an integer from 1 to 1024', () => {
    for (const count of [0, -1, 1.5, 1025, Number.NaN]) {
      expect(() => shardOf('BTCUSDT', count)).toThrow(InvalidArgumentError);
    }
    expect(() => shardOf('BTCUSDT', 0)).toThrow('shard count 0 is invalid: expected an integer from 1 to 1024');
  });
});
