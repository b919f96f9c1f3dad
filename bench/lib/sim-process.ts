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
 *                     {"id":3,"cmd":"setFaults","args":{"restDelayMs":100}}
 *                     {"id":4,"cmd":"close"}             (the child closes the simulator and exits)
 * ```
 *
 * Besides the simulator's own counters, this process counts REST requests in flight (from the
 * request's arrival to the end of its reply, so a `restDelayMs` fault is inside it), the distinct
 * client sockets they came on, and its own CPU time: `RestRoutes.prototype.handle` is wrapped here,
 * the simulator itself is not modified. A request counts from the moment the simulator's event
 * loop takes it: requests waiting in the socket buffers while it builds another reply do not.
 *
 * @example
 * ```ts
 * // from a benchmark: see startSimProcess in ./sim-child.ts
 * const sim = await startSimProcess({ markets: ['UM'], symbolCount: { UM: 100 } });
 * ```
 */
import { createInterface } from 'node:readline';
import type { MarketType } from '../../src/binance/markets.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RestRoutes, SimulatedBinance, generateSymbols, type SimFaults, type SimulatedBinanceOptions } from '../../src/sim/index.js';
import { InFlightCounter, type InFlightSummary } from './in-flight.js';

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
  /** REST requests in flight (arrival to end of reply), since the last reset. */
  readonly rest: RestConcurrency;
  /** CPU time of the simulator process since the last reset, ms. */
  readonly cpuMs: { readonly user: number; readonly system: number };
}

/** REST concurrency as the simulator sees it. */
export type RestConcurrency = InFlightSummary;

const inFlight = new InFlightCounter();
// eslint-disable-next-line @typescript-eslint/unbound-method -- called below with .call(this)
const handle = RestRoutes.prototype.handle;
RestRoutes.prototype.handle = function handleCounted(this: RestRoutes, req: IncomingMessage, res: ServerResponse): void {
  res.once('close', inFlight.enter(req.socket));
  handle.call(this, req, res);
};
let cpuSince = process.cpuUsage();

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
    rest: inFlight.summary(),
    cpuMs: (({ user, system }) => ({ user: user / 1000, system: system / 1000 }))(process.cpuUsage(cpuSince)),
  };
}

function resetStats(): void {
  sim.stats.reset();
  inFlight.reset();
  cpuSince = process.cpuUsage();
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const { id, cmd, args } = JSON.parse(line) as { id: number; cmd: string; args?: unknown };
  let result: unknown = null;
  if (cmd === 'stats') result = stats();
  else if (cmd === 'resetStats') resetStats();
  else if (cmd === 'setFaults') Object.assign(sim.faults, args as Partial<SimFaults>);
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
