import { describe, expect, it } from 'vitest';
import { marketDataWeight, weighedPaths } from '../../src/binance/market-data-weights.js';

const weight = (market: 'SPOT' | 'UM' | 'CM', path: string, query = ''): number | undefined =>
  marketDataWeight(market, path, new URLSearchParams(query));

describe('marketDataWeight', () => {
  it('prices the order book by limit, as each market documents it', () => {
    expect([
      weight('SPOT', 'depth'),
      weight('SPOT', 'depth', 'limit=500'),
      weight('SPOT', 'depth', 'limit=1000'),
      weight('SPOT', 'depth', 'limit=5000'),
    ]).toEqual([5, 25, 50, 250]);
    expect([
      weight('UM', 'depth', 'limit=50'),
      weight('UM', 'depth', 'limit=100'),
      weight('UM', 'depth'),
      weight('CM', 'depth', 'limit=1000'),
    ]).toEqual([2, 5, 10, 20]);
  });

  it('prices tickers by how many symbols they cover', () => {
    expect(weight('SPOT', 'ticker/24hr', 'symbol=BTCUSDT')).toBe(2);
    expect(weight('SPOT', 'ticker/24hr', `symbols=${JSON.stringify(Array.from({ length: 30 }, (_, i) => `S${i}`))}`)).toBe(40);
    expect(weight('SPOT', 'ticker/24hr')).toBe(80);
    expect([weight('UM', 'ticker/price', 'symbol=BTCUSDT'), weight('UM', 'ticker/price')]).toEqual([1, 2]);
    expect(weight('UM', 'markPriceKlines', 'limit=1500')).toBe(10);
  });

  it('has no weight for paths it does not list, nor for inherited names', () => {
    expect(weight('SPOT', 'order')).toBeUndefined();
    expect(weight('UM', 'constructor')).toBeUndefined();
    expect(weighedPaths('SPOT')).toContain('ticker/bookTicker');
    expect(weighedPaths('SPOT')).not.toContain('premiumIndex');
  });
});
