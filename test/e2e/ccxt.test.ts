/**
 * The real ccxt, unmodified, pointed at candle-server through its URL options, against ccxt pointed
 * straight at the simulator: `loadMarkets` and `fetchOHLCV` give the same markets and candles for
 * spot (`binance`), USD-M (`binanceusdm`) and COIN-M (`binancecoinm`). Candles in memory cost the
 * exchange nothing; a `since` older than what the server holds is forwarded and shows in its
 * weight accounting. A derived interval (INTERVALS ['5m'] beside BAR '1m') is compared on closed
 * candles.
 */
import ccxt, { type Exchange } from 'ccxt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MARKETS, type MarketType } from '../../src/binance/markets.js';
import { DAY, FIRST_SYMBOL, MINUTE, startFacade, todayStart, type Facade } from '../helpers/facade.js';

/** The ccxt class of each market, the ccxt API whose URL points at the market's REST paths, and its fetchMarkets type. */
const CCXT: Readonly<
  Record<
    MarketType,
    { readonly id: 'binance' | 'binanceusdm' | 'binancecoinm'; readonly api: string; readonly type: string; readonly symbol: string }
  >
> = {
  SPOT: { id: 'binance', api: 'public', type: 'spot', symbol: 'BTC/USDT' },
  UM: { id: 'binanceusdm', api: 'fapiPublic', type: 'linear', symbol: 'BTC/USDT:USDT' },
  CM: { id: 'binancecoinm', api: 'dapiPublic', type: 'inverse', symbol: 'BTC/USD:BTC' },
};

/** A ccxt exchange of `market` whose market-data API is at `base` (e.g. http://127.0.0.1:8080/fapi/v1). */
function ccxtAt(market: MarketType, base: string): Exchange {
  const { id, api, type } = CCXT[market];
  // What a freqtrade config's `ccxt_config` holds: only the market's own API moved, only its markets loaded.
  return new ccxt[id]({ urls: { api: { [api]: base } }, options: { fetchMarkets: { types: [type] } } });
}

/** The candles that closed before the current one of `timeframeMs` (ccxt rows: [time, o, h, l, c, v]). */
function closed(rows: readonly (readonly (number | undefined)[])[], timeframeMs: number): (readonly (number | undefined)[])[] {
  const current = Math.floor(Date.now() / timeframeMs) * timeframeMs;
  return rows.filter((row) => (row[0] ?? Infinity) < current);
}

describe.each(['SPOT', 'UM', 'CM'] as const)('ccxt %s through candle-server', (market: MarketType) => {
  const id = FIRST_SYMBOL[market];
  let facade: Facade;
  let viaServer: Exchange;
  let direct: Exchange;
  const symbol = CCXT[market].symbol;

  beforeAll(async () => {
    facade = await startFacade(market, { rule: { INTERVALS: ['5m'] } });
    viaServer = ccxtAt(market, facade.base);
    direct = ccxtAt(market, facade.simBase);
  }, 60_000);

  afterAll(async () => {
    await viaServer?.close();
    await direct?.close();
    await facade?.close();
  });

  it('loadMarkets gives the same markets, read from the server at no weight', async () => {
    const before = facade.sim.stats.totalRequests;
    const ours = await viaServer.loadMarkets();
    expect(facade.sim.stats.totalRequests).toBe(before);
    const theirs = await direct.loadMarkets();
    expect(Object.keys(ours).sort()).toEqual(Object.keys(theirs).sort());
    // SPOT's document is the shrunk one the server reads: its symbols carry no permission sets.
    const comparable = (markets: typeof ours) =>
      Object.fromEntries(
        Object.entries(markets).map(([name, m]) => [name, { ...m, info: { ...(m?.info as object), permissionSets: [] } }]),
      );
    expect(comparable(ours)).toEqual(comparable(theirs));
    if (market !== 'SPOT') expect(ours).toEqual(theirs);
    expect(viaServer.market(symbol).id).toBe(id);
  });

  it('fetchOHLCV with the default limit and with a since in the ring gives the same candles, at no weight', async () => {
    await viaServer.loadMarkets();
    await direct.loadMarkets();
    await facade.heldStill(async () => {
      for (const [since, limit] of [
        [undefined, undefined],
        [Date.now() - 30 * MINUTE, 10],
        [Date.now() - 95 * MINUTE, undefined],
      ] as const) {
        const before = facade.sim.stats.requestsTo(MARKETS[market].paths.klines);
        const ours = await viaServer.fetchOHLCV(symbol, '1m', since, limit);
        expect(facade.sim.stats.requestsTo(MARKETS[market].paths.klines), `since ${since}`).toBe(before);
        const theirs = await direct.fetchOHLCV(symbol, '1m', since, limit);
        expect(ours.length).toBeGreaterThan(0);
        expect(ours, `since ${since}`).toEqual(theirs);
      }
    });
    expect(facade.binance.stats().fromMemory).toBeGreaterThanOrEqual(3);
  });

  it('fetchOHLCV with a since older than the server holds is forwarded, and counted in its weight', async () => {
    await viaServer.loadMarkets();
    await direct.loadMarkets();
    const since = todayStart() - 3 * DAY + 5 * 60 * MINUTE;
    const path = MARKETS[market].paths.klines;
    const counted = facade.server.stats().requests.get(`${path} 200`) ?? 0;
    const forwarded = facade.binance.stats().forwarded;
    const ours = await viaServer.fetchOHLCV(symbol, '1m', since, 20);
    const theirs = await direct.fetchOHLCV(symbol, '1m', since, 20);
    expect(ours).toHaveLength(20);
    expect(ours[0]?.[0]).toBe(since);
    expect(ours).toEqual(theirs);
    expect(facade.server.stats().requests.get(`${path} 200`)).toBe(counted + 1);
    expect(facade.binance.stats().forwarded).toBe(forwarded + 1);
    expect(facade.server.stats().weight.used).toBeGreaterThan(0);
  });

  it('fetchOHLCV of a derived interval (5m from the 1m stream) gives the same closed candles, at no weight', async () => {
    await viaServer.loadMarkets();
    await direct.loadMarkets();
    const since = Math.floor((Date.now() - 3 * 60 * MINUTE) / (5 * MINUTE)) * 5 * MINUTE;
    const before = facade.sim.stats.requestsTo(MARKETS[market].paths.klines);
    const ours = await viaServer.fetchOHLCV(symbol, '5m', since, 30);
    expect(facade.sim.stats.requestsTo(MARKETS[market].paths.klines)).toBe(before);
    const theirs = await direct.fetchOHLCV(symbol, '5m', since, 30);
    expect(ours[0]?.[0]).toBe(since);
    expect(closed(ours, 5 * MINUTE).length).toBeGreaterThanOrEqual(30 - 1);
    expect(closed(ours, 5 * MINUTE)).toEqual(closed(theirs, 5 * MINUTE));
  });
});
