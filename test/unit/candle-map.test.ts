import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { KLINE_WIDTH } from '../../src/binance/kline.js';
import { CandleMap } from '../../src/store/candle-map.js';
import { CandleRing } from '../../src/store/candle-ring.js';

describe('CandleMap', () => {
  it('creates one ring per symbol of the map length, and returns the same ring on a second add', () => {
    const map = new CandleMap(30);
    const btc = map.add('BTCUSDT');
    expect(map.add('BTCUSDT')).toBe(btc);
    map.add('BTCUSD_PERP');
    expect(btc.length).toBe(30);
    expect(map.size).toBe(2);
    expect(map.symbols()).toEqual(['BTCUSDT', 'BTCUSD_PERP']);
    expect(map.has('BTCUSDT')).toBe(true);
    expect(map.get('ETHUSDT')).toBeUndefined();
  });

  it('refuses symbols that are not Binance symbols, naming what it got', () => {
    const map = new CandleMap(30);
    expect(() => map.add('btc/usdt')).toThrow(/"btc\/usdt" is not a Binance symbol/);
    expect(map.size).toBe(0);
    expect(() => new CandleMap(0)).toThrow(InvalidArgumentError);
  });

  it('removes delisted symbols and releases their memory from the accounting', () => {
    const map = new CandleMap(100);
    map.add('BTCUSDT');
    map.add('ETHUSDT');
    const both = map.byteLength;
    expect(both).toBeGreaterThanOrEqual(2 * 100 * KLINE_WIDTH * 8);
    expect(map.remove('ETHUSDT')).toBe(true);
    expect(map.remove('ETHUSDT')).toBe(false);
    expect(map.byteLength).toBe(both / 2);
    const seen: string[] = [];
    map.forEach((ring, symbol) => {
      expect(ring).toBeInstanceOf(CandleRing);
      seen.push(symbol);
    });
    expect(seen).toEqual(['BTCUSDT']);
  });

  it('accepts a restored ring only when its length matches', () => {
    const map = new CandleMap(10);
    const ring = new CandleRing(10);
    map.set('BTCUSDT', ring);
    expect(map.get('BTCUSDT')).toBe(ring);
    expect(() => map.set('ETHUSDT', new CandleRing(11))).toThrow(/length 11, expected 10/);
  });
});
