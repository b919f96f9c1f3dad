/**
 * Binance's klines path on candle-server's HTTP API under many identical bots: the simulator (a
 * child process, 200 UM symbols, 250 ms stream cadence, real weight limits), one CandleServer
 * following all 200 (BAR 1m, LENGTH 1000) with its HTTP API in this process, and autocannon in a
 * the bots in a process or worker of their own: 50 connections, each polling
 * `GET /fapi/v1/klines?symbol=S&interval=1m&limit=500` for its 200 symbols in turn.
 *
 * Run: `npm run bench:api [-- --quick] [-- --bots=50 --symbols=200 --every=5 --seconds=30]`.
 * Results: `bench/results/binance-api.json`; recorded in BENCHMARKS.md.
 *
 * Phases:
 * - paced: the load of the issue, bots × symbols / every requests per second (2000/s), each bot
 *   sending one request every 25 ms, the bots spread over those 25 ms (bench/lib/paced-bots.ts;
 *   latency from when each request was due);
 * - bursts: the same 2000/s as autocannon's rate limit sends it: each bot its 40 requests of the
 *   second back to back at the start of every second, all bots at once (like bots that all wake
 *   on the same clock tick);
 * - maximum: the same requests as fast as 50 connections go (autocannon): the most req/s.
 * In each: the exchange weight spent (the simulator's own count: must be 0), the rings' freshness
 * sampled every second (every symbol fresh, no 503), event-loop delay and the server's own
 * exchange-event-to-ring latency (the rings stay current while the API is busy).
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { CandleServer } from '../src/candle-server.js';
import { binanceRoutes, type BinanceRouteStats } from '../src/service/binance-routes.js';
import { startHttpApi } from '../src/service/http-api.js';
import { generateSymbols } from '../src/sim/index.js';
import { benchRule, cleanUp, weightOf } from './lib/bench-server.js';
import { pause, printTable, startLoopDelay, writeResults, type LoopDelay } from './lib/measure.js';
import { runPacedBots } from './lib/paced-bots.js';
import { startSimProcess } from './lib/sim-child.js';

const QUICK = process.argv.includes('--quick');
const option = (name: string, fallback: number): number => {
  const value = process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  return value === undefined ? fallback : Number(value);
};
const BOTS = option('bots', 50);
const SYMBOLS = option('symbols', 200);
const EVERY_SECONDS = option('every', 5);
const SECONDS = option('seconds', QUICK ? 10 : 30);
const LIMIT = 500;
const LENGTH = 1000;
// What the API uses for BAR 1m: one bar plus 180 s.
const SECURITY_SECONDS = 240;

/** What a load generator measured. */
interface Load {
  readonly requests: number;
  readonly requestsPerSecond: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number; readonly mean: number };
  /** Replies other than 2xx, errors and time-outs. */
  readonly failed: number;
  readonly megabytesPerSecond: number;
}

interface Phase extends Load {
  readonly name: string;
  readonly offeredPerSecond: number | undefined;
  readonly seconds: number;
  readonly exchange: { readonly weight: number; readonly requests: number; readonly count429: number };
  readonly fresh: { readonly min: number; readonly symbols: number; readonly samples: number };
  readonly api: BinanceRouteStats;
  readonly loop: LoopDelay;
  readonly eventToRingMs: { readonly p50: number | undefined; readonly p99: number | undefined };
}

const symbols = generateSymbols('UM', SYMBOLS);
const sim = await startSimProcess({ markets: ['UM'], symbolCount: { UM: SYMBOLS } });
const dir = await mkdtemp(join(tmpdir(), 'binance-api-bench-'));
const server = new CandleServer({ instType: 'UM', rule: benchRule(sim, 'UM', dir, { LENGTH, CACHE_DELAY_SECONDS: null }) });
let api: Awaited<ReturnType<typeof startHttpApi>> | undefined;
try {
  let started = performance.now();
  await server.runCandleMap();
  console.log(`${SYMBOLS} UM symbols ready in ${Math.round(performance.now() - started)} ms`);
  const binance = binanceRoutes(server);
  api = await startHttpApi({ server, extraRoutes: [binance.route] });
  const requests = symbols.map((symbol) => ({
    method: 'GET' as const,
    path: `/fapi/v1/klines?symbol=${symbol}&interval=1m&limit=${LIMIT}`,
  }));
  const probe = await fetch(`${api.url}${requests[0]?.path ?? ''}`);
  const probeRows = ((await probe.json()) as unknown[]).length;
  if (probe.status !== 200 || probeRows !== LIMIT)
    throw new Error(`probe answered ${probe.status} with ${probeRows} rows; expected 200 with ${LIMIT}`);
  // The streams settled and the JIT warm before measuring.
  await pause(3000);

  /** autocannon in a worker thread: `overallRate` as its rate limit (bursts each second), or none. */
  const cannon = async (seconds: number, overallRate: number | undefined): Promise<Load> => {
    const result = await autocannon({
      url: api?.url ?? '',
      connections: BOTS,
      duration: seconds,
      requests,
      workers: 1,
      timeout: 10,
      ...(overallRate === undefined ? {} : { overallRate }),
    });
    return {
      requests: result.requests.total,
      requestsPerSecond: result.requests.total / result.duration,
      latencyMs: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max, mean: result.latency.average },
      failed: result.non2xx + result.errors + result.timeouts,
      megabytesPerSecond: result.throughput.average / 1e6,
    };
  };
  const paced = async (seconds: number): Promise<Load> => {
    const result = await runPacedBots({
      url: api?.url ?? '',
      bots: BOTS,
      paths: requests.map((r) => r.path),
      everyMs: EVERY_SECONDS * 1000,
      seconds,
    });
    return { ...result, failed: result.non2xx + result.errors };
  };

  const run = async (name: string, offeredPerSecond: number | undefined, load: () => Promise<Load>): Promise<Phase> => {
    await sim.resetStats();
    server.stats().latency.reset();
    const apiBefore = binance.stats();
    const loop = startLoopDelay();
    let minFresh = SYMBOLS;
    let samples = 0;
    const sampler = setInterval(() => {
      samples += 1;
      minFresh = Math.min(minFresh, symbols.filter((s) => server.status(s, SECURITY_SECONDS).state === 'fresh').length);
    }, 1000);
    started = performance.now();
    const measured = await load();
    const elapsed = (performance.now() - started) / 1000;
    clearInterval(sampler);
    const loopDelay = loop.stop();
    const stats = await sim.stats();
    const latency = server.stats().latency;
    const apiAfter = binance.stats();
    const counted = (key: Exclude<keyof BinanceRouteStats, 'cache'>) => apiAfter[key] - apiBefore[key];
    return {
      name,
      offeredPerSecond,
      seconds: elapsed,
      ...measured,
      exchange: { weight: weightOf(stats, 'UM'), requests: stats.totalRequests, count429: stats.count429 },
      fresh: { min: minFresh, symbols: SYMBOLS, samples },
      api: {
        fromMemory: counted('fromMemory'),
        fromFiles: counted('fromFiles'),
        info: counted('info'),
        forwarded: counted('forwarded'),
        refused429: counted('refused429'),
        refused418: counted('refused418'),
        stale503: counted('stale503'),
        notHeld: counted('notHeld'),
        invalid: counted('invalid'),
        cache: {
          hits: apiAfter.cache.hits - apiBefore.cache.hits,
          misses: apiAfter.cache.misses - apiBefore.cache.misses,
          printedRows: apiAfter.cache.printedRows - apiBefore.cache.printedRows,
          bytes: apiAfter.cache.bytes,
        },
      },
      loop: loopDelay,
      eventToRingMs: { p50: latency.quantile(0.5), p99: latency.quantile(0.99) },
    };
  };

  const offered = (BOTS * SYMBOLS) / EVERY_SECONDS;
  const phases = [
    await run('paced', offered, () => paced(SECONDS)),
    await run('bursts', offered, () => cannon(SECONDS, offered)),
    await run('maximum', undefined, () => cannon(Math.max(5, Math.round(SECONDS / 2)), undefined)),
  ];
  printTable([
    [
      'phase',
      'offered/s',
      'req/s',
      'p50 ms',
      'p99 ms',
      'max ms',
      'failed',
      'MB/s',
      'weight',
      'exch. req',
      'min fresh',
      'cache hit %',
      'loop p99 ms',
      'E→ring p99',
    ],
    ...phases.map((p) => [
      p.name,
      p.offeredPerSecond ?? '-',
      p.requestsPerSecond,
      p.latencyMs.p50,
      p.latencyMs.p99,
      p.latencyMs.max,
      p.failed,
      p.megabytesPerSecond,
      p.exchange.weight,
      p.exchange.requests,
      `${p.fresh.min}/${p.fresh.symbols}`,
      (100 * p.api.cache.hits) / Math.max(1, p.api.cache.hits + p.api.cache.misses),
      p.loop.p99,
      p.eventToRingMs.p99 === undefined ? '-' : `≤${p.eventToRingMs.p99}`,
    ]),
  ]);
  const file = await writeResults('binance-api', {
    bots: BOTS,
    symbols: SYMBOLS,
    everySeconds: EVERY_SECONDS,
    limit: LIMIT,
    length: LENGTH,
    phases,
  });
  console.log(`results: ${file}`);
  const broken = phases.filter((p) => p.exchange.weight !== 0 || p.fresh.min !== SYMBOLS || p.failed > 0);
  if (broken.length > 0) {
    console.error(`FAILED: ${broken.map((p) => p.name).join(', ')}: weight spent, a ring not fresh, or failed replies`);
    process.exitCode = 1;
  }
} finally {
  await api?.close();
  await cleanUp([server], sim, dir);
}
