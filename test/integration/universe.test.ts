import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { MARKETS, type MarketType } from '../../src/binance/markets.js';
import { parseCandleRule, type CandleRuleInput } from '../../src/rule.js';
import { SimulatedBinance } from '../../src/sim/index.js';
import { SymbolUniverse, type ExchangeInfoSymbol, type SymbolUniverseEvents } from '../../src/sync/universe.js';

/** Reads exchangeInfo from the simulator the way the daemon would, with the market's query. */
function exchangeInfoFrom(sim: SimulatedBinance, market: MarketType) {
  const spec = MARKETS[market];
  const url = `${sim.urls(market).rest}${spec.paths.exchangeInfo}${spec.exchangeInfoQuery === '' ? '' : `?${spec.exchangeInfoQuery}`}`;
  return async (signal: AbortSignal): Promise<{ symbols: ExchangeInfoSymbol[] }> => {
    const response = await request(url, { signal });
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new Error(`exchangeInfo answered HTTP ${response.statusCode}`);
    }
    return (await response.body.json()) as { symbols: ExchangeInfoSymbol[] };
  };
}

/** Resolves with the next payload of `event`, or rejects after `ms`. */
function nextEvent(universe: SymbolUniverse, event: 'joined' | 'left', ms = 10_000): Promise<readonly string[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} event within ${ms} ms`));
    }, ms);
    const listener: SymbolUniverseEvents['joined'] = (symbols) => {
      clearTimeout(timer);
      off();
      resolve(symbols);
    };
    const off = universe.on(event, listener);
  });
}

const running: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  // Universes first, then the simulator they read from.
  for (const item of running.splice(0).reverse()) await item.close();
});

async function setup(
  market: MarketType,
  symbols: Array<string | { symbol: string; contractType?: string }>,
  input: Partial<CandleRuleInput> = {},
) {
  const sim = await SimulatedBinance.start({ markets: [market], symbols: { [market]: symbols } });
  running.push(sim);
  const universe = new SymbolUniverse({
    market,
    rule: parseCandleRule({ MARKET: market, ...input }),
    fetchExchangeInfo: exchangeInfoFrom(sim, market),
    refreshMs: 50,
  });
  running.push(universe);
  return { sim, universe };
}

describe('symbol universe against the simulated exchange', () => {
  it('UM: a new listing joins and a delisted contract leaves', async () => {
    const { sim, universe } = await setup('UM', ['BTCUSDT', 'ETHUSDT', { symbol: 'BTCUSDT_261225', contractType: 'NEXT_QUARTER' }]);
    expect(await universe.start()).toEqual(['BTCUSDT', 'BTCUSDT_261225', 'ETHUSDT']);

    const joined = nextEvent(universe, 'joined');
    sim.list('UM', 'SOLUSDT');
    expect(await joined).toEqual(['SOLUSDT']);

    const left = nextEvent(universe, 'left');
    sim.delist('UM', 'ETHUSDT');
    expect(await left).toEqual(['ETHUSDT']);
    expect(universe.current()).toEqual(['BTCUSDT', 'BTCUSDT_261225', 'SOLUSDT']);
  });

  it('CM: selection reads contractStatus and a settled contract leaves', async () => {
    const { sim, universe } = await setup('CM', ['BTCUSD_PERP', 'ETHUSD_PERP']);
    expect(await universe.start()).toEqual(['BTCUSD_PERP', 'ETHUSD_PERP']);
    const left = nextEvent(universe, 'left');
    sim.setStatus('CM', 'ETHUSD_PERP', 'SETTLING');
    expect(await left).toEqual(['ETHUSD_PERP']);
  });

  it('SPOT: a listed symbol the exchange does not know is reported and never followed', async () => {
    const { sim, universe } = await setup('SPOT', ['BTCUSDT', 'ETHUSDT'], { SYMBOLS: ['BTCUSDT', 'NOPEUSDT'] });
    expect(await universe.start()).toEqual(['BTCUSDT']);
    expect(universe.selection()?.unknown).toEqual(['NOPEUSDT']);

    // Once the exchange lists it, the named symbol joins.
    const joined = nextEvent(universe, 'joined');
    sim.list('SPOT', 'NOPEUSDT');
    expect(await joined).toEqual(['NOPEUSDT']);
  });

  it('keeps the last list while the exchange fails, then picks up changes', async () => {
    const { sim, universe } = await setup('UM', ['BTCUSDT', 'ETHUSDT']);
    await universe.start();
    const failed = new Promise<unknown>((resolve) => {
      const off = universe.on('refreshFailed', (error) => {
        off();
        resolve(error);
      });
    });
    sim.faults.restFailStatus = 503;
    sim.faults.restFailNext = 2;
    expect(String(await failed)).toContain('503');
    expect(universe.current()).toEqual(['BTCUSDT', 'ETHUSDT']);

    const joined = nextEvent(universe, 'joined');
    sim.list('UM', 'XRPUSDT');
    expect(await joined).toEqual(['XRPUSDT']);
  });
});
