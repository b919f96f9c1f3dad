/**
 * A simulator, a CandleServer of one market following it, and the HTTP API with Binance's paths in
 * front: what a bot on the host talks to. The simulator's clock can be held still for a moment, so
 * that the server's forming candle and the simulator's are the same and replies compare exactly.
 *
 * The ring reaches back past today's UTC midnight, and yesterday's daily file is on disk (TIMEZONE
 * UTC, LOCAL_CANDLE_DAYS 1, archives published at once): a range can come from the files, from the
 * ring, or from both.
 *
 * @example
 * ```ts
 * const facade = await startFacade('UM', { symbols: ['BTCUSDT'] });
 * const reply = await facade.heldStill(() => getJson(`${facade.api.url}/fapi/v1/klines?symbol=BTCUSDT&interval=1m`));
 * await facade.close();
 * ```
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CandleServer } from '../../src/candle-server.js';
import type { MarketType } from '../../src/binance/markets.js';
import type { CandleRuleInput } from '../../src/rule.js';
import { binanceRoutes, type BinanceRoutes } from '../../src/service/binance-routes.js';
import { startHttpApi, type HttpApi } from '../../src/service/http-api.js';
import type { SimulatedBinance, SimulatedBinanceOptions } from '../../src/sim/index.js';
import { simRule, startSim } from './sim.js';
import { pause } from './wait.js';

export const MINUTE = 60_000;
export const DAY = 86_400_000;

/** Options of {@link startFacade}. */
export interface FacadeOptions {
  /** Symbols the server follows (default the market's first simulated one). */
  readonly symbols?: string[];
  /** Rule fields over the defaults below. */
  readonly rule?: CandleRuleInput;
  /** Simulator options over the defaults below. */
  readonly sim?: SimulatedBinanceOptions;
  /** A simulator already running (then it is not closed with the facade). */
  readonly reuseSim?: SimulatedBinance;
}

/** A running simulator + server + HTTP API. */
export interface Facade {
  readonly market: MarketType;
  readonly sim: SimulatedBinance;
  readonly server: CandleServer;
  readonly api: HttpApi;
  readonly binance: BinanceRoutes;
  /** Base URL of the Binance paths on the server: `http://127.0.0.1:port/fapi/v1`. */
  readonly base: string;
  /** The same paths on the simulator. */
  readonly simBase: string;
  /**
   * Runs `work` with the simulator's clock held still, away from 1m and 5m boundaries, after the
   * streams have pushed the held candle: both sides then show the same forming candle.
   */
  heldStill<T>(work: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** The first symbol the simulator lists on each market. */
export const FIRST_SYMBOL: Readonly<Record<MarketType, string>> = { SPOT: 'BTCUSDT', UM: 'BTCUSDT', CM: 'BTCUSD_PERP' };
/** A second simulated symbol per market. */
export const SECOND_SYMBOL: Readonly<Record<MarketType, string>> = { SPOT: 'ETHUSDT', UM: 'ETHUSDT', CM: 'ETHUSD_PERP' };

/** Starts a simulator (unless given), a CandleServer with BAR 1m following it, and its HTTP API. */
export async function startFacade(market: MarketType, options: FacadeOptions = {}): Promise<Facade> {
  let heldAt: number | undefined;
  const sim =
    options.reuseSim ??
    (await startSim({
      markets: [market],
      archiveDelayMs: 0,
      streams: { cadenceMs: 100, pingIntervalMs: 1000, pongTimeoutMs: 5000 },
      ...options.sim,
      clock: () => heldAt ?? Date.now(),
    }));
  const dir = await mkdtemp(join(tmpdir(), `facade-${market}-`));
  const minutesToday = Math.floor((Date.now() % DAY) / MINUTE);
  const server = new CandleServer({
    instType: market,
    register: false,
    budgetScope: `facade-${market}-${dir}`,
    streams: { staleAfterMs: 1500 },
    rule: simRule(sim, market, dir, {
      SYMBOLS: options.symbols ?? [FIRST_SYMBOL[market]],
      BAR: '1m',
      // Two hours before today's UTC midnight: ranges join yesterday's daily file and the ring.
      LENGTH: minutesToday + 120,
      LOCAL_CANDLE_DAYS: 1,
      TIMEZONE: 'UTC',
      UPDATE_INTERVAL_SECONDS: 1,
      CACHE_DELAY_SECONDS: null,
      ...options.rule,
    }),
  });
  let api: HttpApi | undefined;
  const close = async (): Promise<void> => {
    await api?.close();
    await server.close();
    if (options.reuseSim === undefined) await sim.close();
    // Retried: a ban may still be being saved under CACHE_DIR as the server closes.
    await rm(dir, { recursive: true, force: true, maxRetries: 5 });
  };
  try {
    await server.runCandleMap();
    const binance = binanceRoutes(server);
    api = await startHttpApi({ server, extraRoutes: [binance.route] });
    const heldStill = async <T>(work: () => Promise<T>): Promise<T> => {
      // Inside a 1m and a 5m candle, seconds from either end: nothing closes while held.
      const isQuiet = (t: number): boolean => t % MINUTE >= 3000 && t % MINUTE <= 50_000 && t % (5 * MINUTE) >= 3000;
      while (!isQuiet(Date.now())) await pause(200);
      heldAt = Date.now();
      try {
        // Three stream pushes of the held candle.
        await pause(400);
        return await work();
      } finally {
        heldAt = undefined;
      }
    };
    const facadeApi = api;
    return {
      market,
      sim,
      server,
      api: facadeApi,
      binance,
      base: `${facadeApi.url}${binance.prefix}`,
      simBase: `${sim.urls(market).rest}${binance.prefix}`,
      heldStill,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Epoch ms of today's UTC midnight. */
export function todayStart(now = Date.now()): number {
  return Math.floor(now / DAY) * DAY;
}
