/**
 * The simulated exchange in a process of its own, for benchmarks: its CPU (candle generation,
 * JSON, socket writes) then runs on another core and does not show up in the event-loop delay or
 * the latency measured in the benchmark's process.
 *
 * Protocol (one JSON object per line): argv[2] holds the `SimulatedBinance.start` options (JSON,
 * without functions); once listening, the process prints `{"ready":true,"urls":{...}}`. It then
 * answers commands read from stdin, each `{"id":n,"cmd":...}` answered `{"id":n,"result":...}`:
 *
 * ```
 *   parent ──stdin──▶ {"id":1,"cmd":"stats"}            child ──stdout──▶ {"id":1,"result":{...}}
 *                     {"id":2,"cmd":"resetStats"}
 *                     {"id":3,"cmd":"close"}             (the child closes the simulator and exits)
 * ```
 *
 * @example
 * ```ts
 * // from a benchmark: see startSimProcess in ./sim-child.ts
 * const sim = await startSimProcess({ markets: ['UM'], symbolCount: { UM: 100 } });
 * ```
 */
import { createInterface } from 'node:readline';
import type { MarketType } from '../../src/binance/markets.js';
import { SimulatedBinance, generateSymbols, type SimulatedBinanceOptions } from '../../src/sim/index.js';

/** What the parent sends in argv[2]. */
export interface SimProcessOptions extends Omit<SimulatedBinanceOptions, 'clock' | 'symbols' | 'replay'> {
  /** Generated symbols per market (`generateSymbols(market, n)`). */
  readonly symbolCount?: Partial<Record<MarketType, number>>;
}

/** The simulator's counters, as the parent receives them. */
export interface SimProcessStats {
  readonly count429: number;
  readonly count418: number;
  readonly requestsWhileBanned: number;
  readonly totalRequests: number;
  /** Weight per window start, per budget group. */
  readonly weightByWindow: { readonly spot: Array<[number, number]>; readonly futures: Array<[number, number]> };
  readonly maxWindowWeight: { readonly spot: number; readonly futures: number };
  /** Requests per path and status. */
  readonly requests: Record<string, Record<string, number>>;
}

const options = JSON.parse(process.argv[2] ?? '{}') as SimProcessOptions;
const { symbolCount, ...simOptions } = options;
const symbols: Partial<Record<MarketType, string[]>> = {};
for (const [market, n] of Object.entries(symbolCount ?? {}) as Array<[MarketType, number]>) symbols[market] = generateSymbols(market, n);
const sim = await SimulatedBinance.start({ ...simOptions, symbols });
const markets = options.markets ?? (['SPOT', 'UM', 'CM'] as const);
const urls = Object.fromEntries(markets.map((m) => [m, sim.urls(m)]));
process.stdout.write(`${JSON.stringify({ ready: true, urls })}\n`);

function stats(): SimProcessStats {
  const s = sim.stats;
  return {
    count429: s.count429,
    count418: s.count418,
    requestsWhileBanned: s.requestsWhileBanned,
    totalRequests: s.totalRequests,
    weightByWindow: { spot: [...s.weightByWindow('spot')], futures: [...s.weightByWindow('futures')] },
    maxWindowWeight: { spot: s.maxWindowWeight('spot'), futures: s.maxWindowWeight('futures') },
    requests: Object.fromEntries([...s.requests()].map(([path, byStatus]) => [path, Object.fromEntries(byStatus)])),
  };
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const { id, cmd } = JSON.parse(line) as { id: number; cmd: string };
  let result: unknown = null;
  if (cmd === 'stats') result = stats();
  else if (cmd === 'resetStats') sim.stats.reset();
  else if (cmd === 'resetWeights') sim.resetWeights();
  else if (cmd === 'close') {
    await sim.close();
    process.stdout.write(`${JSON.stringify({ id, result })}\n`);
    break;
  }
  process.stdout.write(`${JSON.stringify({ id, result })}\n`);
}
lines.close();
// The parent closing stdin without "close" also ends the simulator.
await sim.close();
