/**
 * What the CandleServer benchmarks share: the rule of a server pointed at the simulator process
 * (real weight limits, SERVER_WEIGHT 0.75, no daily files, no archives, silent logs), the weight
 * the simulator counted, and the clean-up after a run.
 *
 * @example
 * ```ts
 * const server = new CandleServer({ instType: 'SPOT', rule: benchRule(sim, 'SPOT', dir, { LENGTH: 1440 }) });
 * await server.runCandleMap();
 * const weight = weightOf(await sim.stats(), 'SPOT');
 * await cleanUp([server], sim, dir);
 * ```
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { CandleServer } from '../../src/candle-server.js';
import { intervalMs, openTimeOf } from '../../src/binance/intervals.js';
import { writeSnapshot } from '../../src/files/snapshot.js';
import { CandleMap } from '../../src/store/candle-map.js';
import { MARKETS, type Interval, type MarketType } from '../../src/binance/markets.js';
import type { CandleRuleInput } from '../../src/rule.js';
import type { SimProcess } from './sim-child.js';
import type { SimProcessStats } from './sim-process.js';

/** The default share of the weight limit, as in production. */
export const SERVER_WEIGHT = 0.75;
/** Two days of 1m bars. */
export const BENCH_LENGTH = 2880;

/** Weight the simulator counted, all windows of the market's budget group. */
export function weightOf(stats: SimProcessStats, market: MarketType): number {
  return stats.weightByWindow[MARKETS[market].budgetGroup].reduce((sum, [, weight]) => sum + weight, 0);
}

/** A rule for every symbol of `market` on the simulator, 1m, LENGTH 2880, files under `dir`; `extra` overrides. */
export function benchRule(sim: SimProcess, market: MarketType, dir: string, extra: CandleRuleInput): CandleRuleInput {
  const urls = sim.urls[market];
  if (urls === undefined) throw new Error(`the simulator serves no ${market}`);
  return {
    SYMBOLS: 'all',
    BAR: '1m',
    LENGTH: BENCH_LENGTH,
    SERVER_WEIGHT,
    LOCAL_CANDLE_DAYS: 0,
    DOWNLOAD_TIME: null,
    USE_ARCHIVES: false,
    LOG_LEVEL: 'silent',
    CACHE_DIR: join(dir, 'cache'),
    CANDLE_DIR: join(dir, 'candles'),
    REST_BASE_URL: urls.rest,
    WS_BASE_URL: urls.ws,
    ARCHIVE_BASE_URL: urls.archive,
    ...extra,
  };
}

/** Stops the servers at once (no final snapshot), then the simulator, and removes the folder. */
export async function cleanUp(servers: readonly CandleServer[], sim: SimProcess, dir: string): Promise<void> {
  for (const server of servers) {
    server.destroy();
    await server.close();
  }
  await sim.close();
  await rm(dir, { recursive: true, force: true });
}

/**
 * A snapshot whose rings end at the forming candle, with synthetic values: the simulator's own
 * candles take ~50 s per 1000 symbols × 2880 to generate, and the values do not change the work.
 */
export async function seedSnapshot(
  cacheDir: string,
  market: MarketType,
  bar: Interval,
  symbols: readonly string[],
  length: number,
): Promise<void> {
  const map = new CandleMap(length);
  const step = intervalMs(bar);
  const newest = openTimeOf(bar, Date.now());
  for (const symbol of symbols) {
    const ring = map.add(symbol);
    for (let t = newest - (length - 1) * step; t <= newest; t += step)
      ring.upsertNumbers(t, 100, 101, 99, 100.5, 12, t + step - 1, 1200, 40, 6, 600);
  }
  await writeSnapshot(cacheDir, map, { market, bar });
}
