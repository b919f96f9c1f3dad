/**
 * Cold start with exchange latency: does the warm-up hide the round trip? A SPOT cold start
 * (empty cache, no daily files, no archives, default UPDATE_MODE) of N symbols × LENGTH 1m bars
 * against the simulated exchange in its child process (`bench/lib/sim-process.ts`), once as it
 * is and once with the simulator's `restDelayMs` fault holding every REST reply back, alternating
 * the two (the order flips every round so drift of a noisy machine falls on both), several rounds.
 *
 * Run: `npx tsx bench/cold-start.bench.ts [--symbols=300] [--length=2880] [--delay-ms=100] [--rounds=3] [--warmup-symbols=20]`
 * (also `npm run bench:cold`). Results: `bench/results/cold-start.json`; recorded in BENCHMARKS.md.
 *
 * Per run: time to ready (`runCandleMap()` resolved, which in WebSocket mode includes each
 * symbol's first stream update), REST requests and weight as the simulator counted them, the
 * most and the mean REST requests in flight as the simulator saw them (arrival to end of reply, the
 * delay included) and as the REST client's undici pool saw them (created to complete response,
 * undici's diagnostics channels: `bench/lib/in-flight.ts`), the client sockets they came on, the most acquire calls the weight governor
 * had queued (sampled every 20 ms), the REST span (first request arrival to last reply, simulator
 * clock), and the CPU time of both processes. Then medians over the rounds and the ratio
 * delayed / undelayed: of each round's pair (their median is the figure to quote: a pair runs
 * back to back, so a machine that slows down for a while weighs on both), of the medians, and the
 * time the delay added per pair. A small uncounted cold start first warms this process's JIT
 * (the first start of a process is otherwise the slowest).
 *
 * In flight at the simulator counts what it has taken from its sockets: while it is busy building
 * a reply (about 20-30 ms of its CPU for a page of 1000 candles), further requests wait in its
 * socket buffers uncounted, so without a delay it reads 1 whatever the client sends. In flight at
 * the client is how many requests the warm-up keeps outstanding.
 *
 * Target (issue): with 100 ms added to every reply a 300-symbol cold start takes at most 1.1 × as
 * long as without. The weight (about 1800 for 300 × 2880) fits in one window's 0.75 × 6000, so the
 * weight budget does not bound it: only how many requests are kept in flight does.
 */
import { mkdtemp } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CandleServer } from '../src/candle-server.js';
import { MARKETS } from '../src/binance/markets.js';
import { planKlinePages, planWeight } from '../src/exchange/kline-pages.js';
import { SERVER_WEIGHT, benchRule, cleanUp, weightOf } from './lib/bench-server.js';
import { printTable, quantile, startLoopDelay, writeResults, type LoopDelay } from './lib/measure.js';
import { startSimProcess } from './lib/sim-child.js';
import { countUndiciRequests, type InFlightSummary } from './lib/in-flight.js';
import type { RestConcurrency } from './lib/sim-process.js';

const arg = (name: string, fallback: number): number =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback);
const SYMBOLS = arg('symbols', 300);
const LENGTH = arg('length', 2880);
const DELAY_MS = arg('delay-ms', 100);
const ROUNDS = arg('rounds', 3);
const WARMUP_SYMBOLS = arg('warmup-symbols', 20);
const MARKET = 'SPOT';
// A run that is not ready by then is a failure, not a measurement (the weight floor of 300 × 2880 is ~25 s).
const RUN_TIMEOUT_MS = 300_000;
const SAMPLE_MS = 20;

interface ColdRun {
  round: number;
  delayMs: number;
  /** 1-minute load average when the run started: on a shared machine, how noisy it was. */
  load: number;
  readyMs: number;
  /** First REST arrival to last reply end at the simulator, ms. */
  restSpanMs: number;
  /** From the start to the first REST arrival (process start-up, connection), ms. */
  firstRequestMs: number;
  /** From the last REST reply to ready (the wait for the streams), ms. */
  afterRestMs: number;
  requests: number;
  klinesRequests: number;
  weight: number;
  plannedWeight: number;
  maxWindowWeight: number;
  count429: number;
  rest: RestConcurrency;
  /** Requests the REST client had handed to undici (queued for a connection or sent), this process's side. */
  client: InFlightSummary;
  maxQueued: number;
  serverCpuMs: number;
  simCpuMs: number;
  loop: LoopDelay;
}

/** One cold start of `symbols` against a fresh simulator process with `delayMs` added to every REST reply. */
async function coldStart(round: number, delayMs: number, symbols = SYMBOLS): Promise<ColdRun> {
  const sim = await startSimProcess({ markets: [MARKET], symbolCount: { [MARKET]: symbols } });
  const dir = await mkdtemp(join(tmpdir(), 'cold-start-bench-'));
  let server: CandleServer | undefined;
  let sampler: NodeJS.Timeout | undefined;
  let timeout: NodeJS.Timeout | undefined;
  const client = countUndiciRequests();
  try {
    const spec = MARKETS[MARKET];
    const now = Date.now();
    const pages = planKlinePages({ market: MARKET, interval: '1m', from: now - (LENGTH - 1) * 60_000, to: now });
    const plannedWeight = spec.timeWeight + spec.exchangeInfoWeight + symbols * planWeight(pages);
    await sim.setFaults({ restDelayMs: delayMs });
    await sim.resetStats();
    client.counter.reset();
    server = new CandleServer({ instType: MARKET, rule: benchRule(sim, MARKET, dir, { LENGTH }) });
    const running = server;
    let maxQueued = 0;
    sampler = setInterval(() => {
      maxQueued = Math.max(maxQueued, running.stats().weight.queued);
    }, SAMPLE_MS);
    const load = loadavg()[0] ?? Number.NaN;
    const loop = startLoopDelay();
    const cpu = process.cpuUsage();
    const startedAt = Date.now();
    const start = performance.now();
    await Promise.race([
      running.runCandleMap(),
      new Promise((_, reject) => {
        timeout = setTimeout(() => reject(new Error(`not ready within ${RUN_TIMEOUT_MS} ms`)), RUN_TIMEOUT_MS);
      }),
    ]);
    const readyMs = performance.now() - start;
    const readyAt = Date.now();
    const serverCpu = process.cpuUsage(cpu);
    const loopDelay = loop.stop();
    const stats = await sim.stats();
    const { firstArrivalAt = startedAt, lastReplyAt = startedAt } = stats.rest;
    const count = (path: string) => Object.values(stats.requests[path] ?? {}).reduce((a, b) => a + b, 0);
    return {
      round,
      delayMs,
      load,
      readyMs,
      restSpanMs: lastReplyAt - firstArrivalAt,
      firstRequestMs: firstArrivalAt - startedAt,
      afterRestMs: readyAt - lastReplyAt,
      requests: Object.keys(stats.requests).reduce((sum, path) => sum + count(path), 0),
      klinesRequests: count(spec.paths.klines),
      weight: weightOf(stats, MARKET),
      plannedWeight,
      maxWindowWeight: stats.maxWindowWeight[spec.budgetGroup],
      count429: stats.count429,
      rest: stats.rest,
      client: client.counter.summary(),
      maxQueued,
      serverCpuMs: (serverCpu.user + serverCpu.system) / 1000,
      simCpuMs: stats.cpuMs.user + stats.cpuMs.system,
      loop: loopDelay,
    };
  } finally {
    clearInterval(sampler);
    clearTimeout(timeout);
    client.stop();
    await cleanUp(server === undefined ? [] : [server], sim, dir);
  }
}

const median = (values: readonly number[]): number =>
  quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
const f = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : '-');

console.log(
  `cold start with latency: ${MARKET} 1m, ${SYMBOLS} symbols × LENGTH ${LENGTH}, empty cache, REST delay 0 / ${DELAY_MS} ms, ${ROUNDS} rounds; ` +
    `budget ${SERVER_WEIGHT} × ${MARKETS[MARKET].fallbackWeightLimit}/min; simulator in a child process`,
);
if (WARMUP_SYMBOLS > 0) {
  const warmup = await coldStart(-1, 0, WARMUP_SYMBOLS);
  console.log(`warm-up (not counted): ${WARMUP_SYMBOLS} symbols ready in ${f(warmup.readyMs / 1000)} s`);
}
const runs: ColdRun[] = [];
for (let round = 0; round < ROUNDS; round += 1) {
  // 0, D | D, 0 | 0, D ...: each configuration runs first in half of the rounds.
  const order = round % 2 === 0 ? [0, DELAY_MS] : [DELAY_MS, 0];
  for (const delayMs of order) {
    const run = await coldStart(round, delayMs);
    runs.push(run);
    console.log(
      `round ${round} delay ${delayMs} ms: ready ${f(run.readyMs / 1000)} s, REST span ${f(run.restSpanMs / 1000)} s, ${run.requests} requests, ` +
        `weight ${run.weight}, in flight at the simulator max ${run.rest.maxInFlight} mean ${f(run.rest.meanInFlight, 1)}, ` +
        `at the client max ${run.client.maxInFlight} mean ${f(run.client.meanInFlight, 1)}, governor queue max ${run.maxQueued}`,
    );
  }
}

printTable([
  [
    'round',
    'delay ms',
    'load',
    'ready s',
    'to 1st req s',
    'REST span s',
    'after REST s',
    'requests',
    'klines',
    'weight',
    'planned',
    'max window',
    '429',
    'sim in flight max',
    'mean',
    'sockets',
    'reply ms',
    'client in flight max',
    'mean',
    'reply ms',
    'queued max',
    'server CPU s',
    'sim CPU s',
    'loop p99',
    'loop max',
  ],
  ...runs.map((r) => [
    r.round,
    r.delayMs,
    f(r.load, 1),
    f(r.readyMs / 1000),
    f(r.firstRequestMs / 1000),
    f(r.restSpanMs / 1000),
    f(r.afterRestMs / 1000),
    r.requests,
    r.klinesRequests,
    r.weight,
    r.plannedWeight,
    r.maxWindowWeight,
    r.count429,
    r.rest.maxInFlight,
    f(r.rest.meanInFlight, 1),
    r.rest.sockets,
    f(r.rest.meanReplyMs, 1),
    r.client.maxInFlight,
    f(r.client.meanInFlight, 1),
    f(r.client.meanReplyMs, 1),
    r.maxQueued,
    f(r.serverCpuMs / 1000),
    f(r.simCpuMs / 1000),
    f(r.loop.p99, 1),
    f(r.loop.max, 0),
  ]),
]);

/** Medians (and spread) of one configuration's runs. */
function summarize(delayMs: number) {
  const of = runs.filter((r) => r.delayMs === delayMs);
  const spread = (pick: (r: ColdRun) => number) => {
    const values = of.map(pick);
    return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
  };
  return {
    delayMs,
    runs: of.length,
    readyMs: spread((r) => r.readyMs),
    restSpanMs: spread((r) => r.restSpanMs),
    afterRestMs: spread((r) => r.afterRestMs),
    requests: spread((r) => r.requests),
    weight: spread((r) => r.weight),
    maxInFlight: spread((r) => r.rest.maxInFlight),
    meanInFlight: spread((r) => r.rest.meanInFlight),
    meanReplyMs: spread((r) => r.rest.meanReplyMs),
    clientMaxInFlight: spread((r) => r.client.maxInFlight),
    clientMeanInFlight: spread((r) => r.client.meanInFlight),
    clientMeanReplyMs: spread((r) => r.client.meanReplyMs),
    maxQueued: spread((r) => r.maxQueued),
    serverCpuMs: spread((r) => r.serverCpuMs),
    simCpuMs: spread((r) => r.simCpuMs),
    count429: spread((r) => r.count429),
  };
}
const undelayed = summarize(0);
const delayed = summarize(DELAY_MS);
const pairs = Array.from({ length: ROUNDS }, (_, round) => {
  const a = runs.find((r) => r.round === round && r.delayMs === DELAY_MS);
  const b = runs.find((r) => r.round === round && r.delayMs === 0);
  return a === undefined || b === undefined
    ? { ratio: Number.NaN, addedMs: Number.NaN }
    : { ratio: a.readyMs / b.readyMs, addedMs: a.readyMs - b.readyMs };
});
const pairRatios = pairs.map((p) => p.ratio);
const ratio = {
  pairs: pairRatios,
  medianOfPairs: median(pairRatios),
  ofMedians: delayed.readyMs.median / undelayed.readyMs.median,
  restSpanOfMedians: delayed.restSpanMs.median / undelayed.restSpanMs.median,
  /** Time the delay added, per pair, ms. */
  addedMs: pairs.map((p) => p.addedMs),
  medianAddedMs: median(pairs.map((p) => p.addedMs)),
};

console.log('');
printTable([
  [
    'delay ms',
    'ready s median',
    'min',
    'max',
    'REST span s',
    'requests',
    'weight',
    'sim in flight max',
    'mean',
    'reply ms',
    'client in flight max',
    'mean',
    'reply ms',
    'queued max',
    'server CPU s',
    'sim CPU s',
  ],
  ...[undelayed, delayed].map((s) => [
    s.delayMs,
    f(s.readyMs.median / 1000),
    f(s.readyMs.min / 1000),
    f(s.readyMs.max / 1000),
    f(s.restSpanMs.median / 1000),
    s.requests.median,
    s.weight.median,
    s.maxInFlight.median,
    f(s.meanInFlight.median, 1),
    f(s.meanReplyMs.median, 1),
    s.clientMaxInFlight.median,
    f(s.clientMeanInFlight.median, 1),
    f(s.clientMeanReplyMs.median, 1),
    s.maxQueued.median,
    f(s.serverCpuMs.median / 1000),
    f(s.simCpuMs.median / 1000),
  ]),
]);
console.log(
  `\nready, delayed / undelayed: per round ${ratio.pairs.map((r) => f(r, 3)).join(', ')}, median ${f(ratio.medianOfPairs, 3)}; ` +
    `of the medians ${f(ratio.ofMedians, 3)}; REST span ${f(ratio.restSpanOfMedians, 3)}. ` +
    `Added by the delay: ${ratio.addedMs.map((ms) => f(ms / 1000, 1)).join(', ')} s, median ${f(ratio.medianAddedMs / 1000, 1)} s. ` +
    `Target ≤ 1.1 (median of the pairs): ${ratio.medianOfPairs <= 1.1 ? 'met' : 'MISSED'}`,
);
const file = await writeResults('cold-start', {
  market: MARKET,
  bar: '1m',
  symbols: SYMBOLS,
  length: LENGTH,
  delayMs: DELAY_MS,
  rounds: ROUNDS,
  warmupSymbols: WARMUP_SYMBOLS,
  runs,
  undelayed,
  delayed,
  ratio,
});
console.log(`results: ${file}`);
