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
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { RestRoutes, SimulatedBinance, generateSymbols, type SimFaults, type SimulatedBinanceOptions } from '../../src/sim/index.js';

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
export interface RestConcurrency {
  /** Requests that arrived. */
  readonly arrived: number;
  /** Most requests in flight at once. */
  readonly maxInFlight: number;
  /** Mean requests in flight between the first arrival and the last reply (time-weighted). */
  readonly meanInFlight: number;
  /** Distinct client sockets the requests came on. */
  readonly sockets: number;
  /** Epoch ms of the first arrival and the last reply end (undefined before any request). */
  readonly firstArrivalAt: number | undefined;
  readonly lastReplyAt: number | undefined;
  /** Mean time from arrival to the end of the reply, ms. */
  readonly meanReplyMs: number;
}

/** Counts REST requests in flight; `enter` on arrival, the returned function at the reply's end. */
class InFlightCounter {
  #inFlight = 0;
  #max = 0;
  #arrived = 0;
  // Integral of in-flight over time (request-ms) and the time of the last change.
  #area = 0;
  #changedAt = 0;
  #first: number | undefined;
  #last: number | undefined;
  #replyMsSum = 0;
  #replies = 0;
  #sockets = new WeakSet<Socket>();
  #socketCount = 0;

  enter(socket: Socket): () => void {
    const now = performance.now();
    this.#advance(now);
    this.#first ??= Date.now();
    this.#arrived += 1;
    this.#inFlight += 1;
    if (this.#inFlight > this.#max) this.#max = this.#inFlight;
    if (!this.#sockets.has(socket)) {
      this.#sockets.add(socket);
      this.#socketCount += 1;
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const end = performance.now();
      this.#advance(end);
      this.#inFlight -= 1;
      this.#replyMsSum += end - now;
      this.#replies += 1;
      this.#last = Date.now();
    };
  }

  #advance(now: number): void {
    if (this.#inFlight > 0) this.#area += this.#inFlight * (now - this.#changedAt);
    this.#changedAt = now;
  }

  reset(): void {
    // Requests in flight now stay counted as in flight; only the history is forgotten.
    this.#max = this.#inFlight;
    this.#arrived = 0;
    this.#area = 0;
    this.#changedAt = performance.now();
    this.#first = undefined;
    this.#last = undefined;
    this.#replyMsSum = 0;
    this.#replies = 0;
    this.#sockets = new WeakSet();
    this.#socketCount = 0;
  }

  summary(): RestConcurrency {
    const span = this.#first === undefined || this.#last === undefined ? 0 : this.#last - this.#first;
    return {
      arrived: this.#arrived,
      maxInFlight: this.#max,
      meanInFlight: span > 0 ? this.#area / span : 0,
      sockets: this.#socketCount,
      firstArrivalAt: this.#first,
      lastReplyAt: this.#last,
      meanReplyMs: this.#replies === 0 ? 0 : this.#replyMsSum / this.#replies,
    };
  }
}

const inFlight = new InFlightCounter();
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
