import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MarketType } from '../../src/binance/markets.js';
import { BinanceRestClient } from '../../src/exchange/rest-client.js';
import { ServerClock } from '../../src/exchange/server-clock.js';
import { WeightGovernor, sharedGovernor } from '../../src/exchange/weight-governor.js';
import { SimulatedBinance } from '../../src/sim/index.js';
import { sleep } from '../../src/util/abort.js';

const LIMIT = 100;
const SERVER_WEIGHT = 0.5;
const BUDGET = LIMIT * SERVER_WEIGHT;
const WINDOW_MS = 2_000;
// Not a multiple of the window: windows on the local clock would straddle the exchange's.
const SIM_OFFSET_MS = 1_234;

let sim: SimulatedBinance;
const open: Array<{ close(): unknown }> = [];

beforeAll(async () => {
  sim = await SimulatedBinance.start({
    markets: ['UM', 'CM'],
    clock: () => Date.now() + SIM_OFFSET_MS,
    weightLimits: { futures: LIMIT },
    weightWindowMs: WINDOW_MS,
    // Any overshoot would show as a 429, and a second request after it as a ban.
    ban: { requestsAfter429: 1, baseMs: 60_000 },
  });
});

afterAll(async () => {
  await sim.close();
});

afterEach(async () => {
  for (const thing of open.splice(0).reverse()) await thing.close();
});

/** A fresh futures budget shared by every client of one test, with a clock synced to the exchange. */
async function futuresBudget(scope: string): Promise<{ governor: WeightGovernor; client: (market: MarketType) => BinanceRestClient }> {
  let synced: ServerClock | undefined;
  const governor = sharedGovernor(
    { group: 'futures', scope },
    () =>
      new WeightGovernor({
        name: 'futures',
        limit: LIMIT,
        serverWeight: SERVER_WEIGHT,
        windowMs: WINDOW_MS,
        now: () => synced?.now() ?? Date.now(),
      }),
  );
  open.push(governor);
  const client = (market: MarketType): BinanceRestClient => {
    const made = new BinanceRestClient({ market, governor, baseUrl: sim.urls(market).rest, ...(synced ? { clock: synced } : {}) });
    open.push(made);
    return made;
  };
  synced = client('UM').clock;
  await synced.sync();
  sim.resetWeights();
  sim.stats.reset();
  return { governor, client };
}

function windowsOver(limit: number): Array<[number, number]> {
  return [...sim.stats.weightByWindow('futures')].filter(([, weight]) => weight > limit);
}

describe('the weight budget against the simulated exchange', () => {
  it('three clients of UM and CM competing never exceed the shared budget in any window', async () => {
    const { client } = await futuresBudget('competing');
    const callers = [
      { rest: client('UM'), symbol: 'BTCUSDT' },
      { rest: client('UM'), symbol: 'ETHUSDT' },
      { rest: client('CM'), symbol: 'BTCUSD_PERP' },
    ];
    let spent = 0;
    await Promise.all(
      callers.map(async ({ rest, symbol }) => {
        await rest.exchangeInfo();
        spent += 1;
        // Four requests in flight per caller: 10 at weight 2 and 5 at weight 1 each.
        const limits = [...Array<number>(10).fill(499), ...Array<number>(5).fill(10)];
        const lanes = Array.from({ length: 4 }, async () => {
          for (let limit = limits.shift(); limit !== undefined; limit = limits.shift()) {
            const rows = await rest.klines({ symbol, interval: '1m', limit }, { priority: 'backfill' });
            expect(rows).toHaveLength(limit);
            spent += limit < 100 ? 1 : 2;
          }
        });
        await Promise.all(lanes);
      }),
    );

    const byWindow = sim.stats.weightByWindow('futures');
    expect([...byWindow.values()].reduce((a, b) => a + b, 0)).toBe(spent);
    expect(spent).toBe(3 * 26);
    // The work needed more than one window: the budget really held callers back.
    expect(byWindow.size).toBeGreaterThanOrEqual(2);
    expect(windowsOver(BUDGET)).toEqual([]);
    expect(sim.stats.count429).toBe(0);
    expect(sim.stats.count418).toBe(0);
  });

  it('serves live requests before back-fill queued earlier', async () => {
    const { governor, client } = await futuresBudget('priority');
    const um = client('UM');
    const cm = client('CM');
    // Spend the whole window so that everything below has to queue.
    (await governor.acquire(BUDGET))();
    const finished: string[] = [];
    const request = (rest: BinanceRestClient, symbol: string, priority: 'live' | 'backfill', label: string) =>
      rest.klines({ symbol, interval: '1m', limit: 500 }, { priority }).then(() => {
        finished.push(label);
      });
    // Weight 5 each: ten live requests fill one whole window.
    const backfill = Array.from({ length: 10 }, (_, i) => request(cm, 'BTCUSD_PERP', 'backfill', `b${i}`));
    const live = Array.from({ length: 10 }, (_, i) => request(um, 'BTCUSDT', 'live', `l${i}`));
    for (let i = 0; i < 100 && governor.queued < 20; i += 1) await sleep(5);
    expect(governor.queued).toBe(20);
    await Promise.all([...backfill, ...live]);

    expect(finished.slice(0, 10).every((label) => label.startsWith('l'))).toBe(true);
    expect(finished.slice(10).every((label) => label.startsWith('b'))).toBe(true);
    expect(windowsOver(BUDGET)).toEqual([]);
    expect(sim.stats.count429).toBe(0);
  });
});
