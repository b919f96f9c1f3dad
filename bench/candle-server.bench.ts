/**
 * CandleServer benchmark against the simulated exchange, which runs in a child process
 * (`bench/lib/sim-process.ts`) so that its CPU is not counted in this process's event-loop delay
 * or latency. Real Binance weight limits (6000 spot, 2400 futures, 60 s windows) and the default
 * SERVER_WEIGHT 0.75, so the weight floors are real ones.
 *
 * Run: `npx tsx bench/candle-server.bench.ts [--quick] [--sizes=1,100,1000]`
 * (also `npm run bench:server`). Results: `bench/results/candle-server.json`; recorded in
 * BENCHMARKS.md.
 *
 * Parts:
 * - live (UM, 1m, LENGTH 2880, 250 ms cadence): each size starts from a seeded snapshot (a cold
 *   start of 1000 UM symbols × 2880 would take ~7 minutes of weight), streams for a while, and
 *   reports event → ring latency, added latency, event-loop delay, getCandleSecurity time,
 *   memory, steady-state weight, freshness, then the final snapshot's write and load.
 * - cold/warm (SPOT, 1m): cold start with an empty cache beside the weight floor, close (final
 *   snapshot), then a warm restart from it: time to ready and weight.
 * - closes (SPOT, 1s): steady state with a candle closing every second for every symbol: weight
 *   per symbol-hour, freshness and 429s.
 *
 * Targets (live-candle-map issue): added latency p99 < 5 ms; getCandleSecurity < 2 µs without a
 * copy at LENGTH 2880; memory within 15% of the raw size; 1000 symbols kept fresh with no 429.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CandleServer } from '../src/candle-server.js';
import { planKlinePages, planWeight } from '../src/exchange/kline-pages.js';
import { KLINE_WIDTH } from '../src/binance/kline.js';
import { MARKETS, type Interval } from '../src/binance/markets.js';
import { loadSnapshot } from '../src/files/snapshot.js';
import { generateSymbols } from '../src/sim/index.js';
import { instrumentMessages } from './lib/instrument.js';
import { memoryNow, pause, printTable, quantile, startLoopDelay, writeResults, type LoopDelay } from './lib/measure.js';
import { startSimProcess } from './lib/sim-child.js';
import { BENCH_LENGTH, SERVER_WEIGHT, benchRule, cleanUp, seedSnapshot, weightOf } from './lib/bench-server.js';
import { weightFloorMs, windowFloorMs } from './lib/weight-floor.js';

const QUICK = process.argv.includes('--quick');
const SIZES = (process.argv.find((a) => a.startsWith('--sizes='))?.slice(8) ?? '1,100,1000').split(',').map(Number);
const LENGTH = BENCH_LENGTH;
const LIVE_SECONDS = QUICK ? 10 : 25;
const CLOSES_SECONDS = QUICK ? 20 : 60;
// A cold start of 1000 spot symbols × 2880 needs 6000 weight, more than one window's 4500.
const COLD_LENGTH = QUICK ? 1440 : 2880;
const SECURITY_SECONDS = 180;
const PARTS = (process.argv.find((a) => a.startsWith('--parts='))?.slice(8) ?? 'live,cold,closes').split(',');
// Derived intervals the closes part keeps beside its 1s rings (e.g. --intervals=1m,5m): their cost in weight must stay 0.
const CLOSES_INTERVALS = (process.argv.find((a) => a.startsWith('--intervals='))?.slice(12) ?? '')
  .split(',')
  .filter((i) => i !== '') as Interval[];

// Keeps results alive so the JIT cannot drop the measured work.
let sink = 0;

/** ns per call of `fn`, after a warm-up. */
function nsPerCall(iterations: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(iterations, 10_000); i += 1) fn(i);
  const start = performance.now();
  for (let i = 0; i < iterations; i += 1) fn(i);
  return ((performance.now() - start) * 1e6) / iterations;
}

function freshCount(server: CandleServer, symbols: readonly string[]): number {
  return symbols.filter((s) => server.status(s, SECURITY_SECONDS).state === 'fresh').length;
}

interface LiveRow {
  symbols: number;
  connections: number;
  messagesPerSecond: number;
  seededStartMs: number;
  seededStartWeight: number;
  eventToRingHistogram: { p50: number | undefined; p99: number | undefined };
  eventToRing: { p50: number; p99: number; max: number };
  added: { p50: number; p99: number; max: number; count: number };
  handler: { p50: number; p99: number; max: number };
  loop: LoopDelay;
  getCandleSecurityNs: number;
  getCandleSecurityCopyNs: number;
  memory: { accountedPerSymbol: number; measuredPerSymbol: number; rawPerSymbol: number; accountedRatio: number; measuredRatio: number };
  steady: { seconds: number; weight: number; weightPerSymbolHour: number; fresh: number; count429: number };
  snapshot: { writeMs: number | undefined; writeLoopMaxMs: number; loadMs: number; loadLoopMaxMs: number; bytesPerSymbol: number };
}

async function live(size: number, timing: ReturnType<typeof instrumentMessages>): Promise<LiveRow> {
  const symbols = generateSymbols('UM', size);
  const sim = await startSimProcess({ markets: ['UM'], symbolCount: { UM: size } });
  const dir = await mkdtemp(join(tmpdir(), 'candle-server-bench-'));
  let server: CandleServer | undefined;
  try {
    // Read before seeding: buffers the seeding leaves behind then count against the server (an over- rather than an under-estimate).
    const before = memoryNow();
    await seedSnapshot(join(dir, 'cache'), 'UM', '1m', symbols, LENGTH);
    await sim.resetStats();
    server = new CandleServer({ instType: 'UM', rule: benchRule(sim, 'UM', dir, {}) });
    let start = performance.now();
    await server.runCandleMap();
    const seededStartMs = performance.now() - start;
    const seededStartWeight = weightOf(await sim.stats(), 'UM');
    const after = memoryNow();
    // Warm-up: every connection up, first events in, the JIT settled.
    await pause(3000);

    await sim.resetStats();
    server.stats().latency.reset();
    timing.added.clear();
    timing.handler.clear();
    timing.eventToRing.clear();
    const messagesBefore = server.stats().streams?.messages ?? 0;
    const loop = startLoopDelay();
    timing.isMeasuring = true;
    start = performance.now();
    await pause(LIVE_SECONDS * 1000);
    timing.isMeasuring = false;
    const loopDelay = loop.stop();
    const seconds = (performance.now() - start) / 1000;
    const stats = server.stats();
    // Read now: the histogram keeps recording, and the blocking loops below would add their stalls.
    const eventToRingHistogram = { p50: stats.latency.quantile(0.5), p99: stats.latency.quantile(0.99) };
    const simStats = await sim.stats();
    const steadyWeight = weightOf(simStats, 'UM');
    const fresh = freshCount(server, symbols);

    const gcsNs = nsPerCall(2_000_000, (i) => {
      sink += server?.getCandleSecurity(symbols[i % size] as string, SECURITY_SECONDS).length ?? 0;
    });
    const gcsCopyNs = nsPerCall(2000, (i) => {
      sink += server?.getCandleSecurity(symbols[i % size] as string, SECURITY_SECONDS, { copy: true }).length ?? 0;
    });
    const rawPerSymbol = LENGTH * KLINE_WIDTH * 8;
    const measured = after.arrayBuffers + after.heapUsed - before.arrayBuffers - before.heapUsed;

    const closing = startLoopDelay();
    await server.close();
    const closeLoop = closing.stop();
    const snapshots = server.stats().snapshots;
    const loading = startLoopDelay();
    start = performance.now();
    const loaded = await loadSnapshot(snapshots.lastFile as string, { market: 'UM', bar: '1m', length: LENGTH });
    const loadMs = performance.now() - start;
    const loadLoop = loading.stop();
    const { size: fileBytes } = await import('node:fs/promises').then((fs) => fs.stat(snapshots.lastFile as string));
    sink += loaded.map.size;

    const added = timing.added.summary();
    const handler = timing.handler.summary();
    const eventToRing = timing.eventToRing.summary();
    return {
      symbols: size,
      connections: stats.streams?.connections ?? 0,
      messagesPerSecond: ((stats.streams?.messages ?? 0) - messagesBefore) / seconds,
      seededStartMs,
      seededStartWeight,
      eventToRingHistogram,
      eventToRing: { p50: eventToRing.p50, p99: eventToRing.p99, max: eventToRing.max },
      added: { p50: added.p50, p99: added.p99, max: added.max, count: added.count },
      handler: { p50: handler.p50, p99: handler.p99, max: handler.max },
      loop: loopDelay,
      getCandleSecurityNs: gcsNs,
      getCandleSecurityCopyNs: gcsCopyNs,
      memory: {
        accountedPerSymbol: stats.memoryBytes / size,
        measuredPerSymbol: measured / size,
        rawPerSymbol,
        accountedRatio: stats.memoryBytes / size / rawPerSymbol,
        measuredRatio: measured / size / rawPerSymbol,
      },
      steady: {
        seconds,
        weight: steadyWeight,
        weightPerSymbolHour: steadyWeight / size / (seconds / 3600),
        fresh,
        count429: simStats.count429,
      },
      snapshot: {
        writeMs: snapshots.lastDurationMs,
        writeLoopMaxMs: closeLoop.max,
        loadMs,
        loadLoopMaxMs: loadLoop.max,
        bytesPerSymbol: fileBytes / size,
      },
    };
  } finally {
    await cleanUp(server === undefined ? [] : [server], sim, dir);
  }
}

interface ColdWarmRow {
  symbols: number;
  length: number;
  coldMs: number;
  coldWeight: number;
  plannedWeight: number;
  floorMs: number;
  windowFloorMs: number;
  maxWindowWeight: number;
  budgetPerWindow: number;
  count429: number;
  requests: Record<string, Record<string, number>>;
  closeMs: number;
  warmMs: number;
  warmWeight: number;
  warmCount429: number;
}

async function coldWarm(size: number): Promise<ColdWarmRow> {
  const sim = await startSimProcess({ markets: ['SPOT'], symbolCount: { SPOT: size } });
  const dir = await mkdtemp(join(tmpdir(), 'candle-server-bench-'));
  const servers: CandleServer[] = [];
  try {
    const spec = MARKETS.SPOT;
    const budget = spec.fallbackWeightLimit * SERVER_WEIGHT;
    const now = Date.now();
    const pages = planKlinePages({ market: 'SPOT', interval: '1m', from: now - (COLD_LENGTH - 1) * 60_000, to: now });
    // time and exchangeInfo, then every symbol's pages.
    const plannedWeight = spec.timeWeight + spec.exchangeInfoWeight + size * planWeight(pages);
    await sim.resetStats();
    const cold = new CandleServer({ instType: 'SPOT', rule: benchRule(sim, 'SPOT', dir, { LENGTH: COLD_LENGTH }) });
    servers.push(cold);
    const startedAt = Date.now();
    let start = performance.now();
    await cold.runCandleMap();
    const coldMs = performance.now() - start;
    const coldStats = await sim.stats();
    start = performance.now();
    await cold.close();
    const closeMs = performance.now() - start;

    await sim.resetStats();
    const warm = new CandleServer({ instType: 'SPOT', rule: benchRule(sim, 'SPOT', dir, { LENGTH: COLD_LENGTH }) });
    servers.push(warm);
    start = performance.now();
    await warm.runCandleMap();
    const warmMs = performance.now() - start;
    const warmStats = await sim.stats();
    return {
      symbols: size,
      length: COLD_LENGTH,
      coldMs,
      coldWeight: weightOf(coldStats, 'SPOT'),
      plannedWeight,
      floorMs: weightFloorMs(plannedWeight, budget),
      windowFloorMs: windowFloorMs(plannedWeight, budget, startedAt),
      maxWindowWeight: coldStats.maxWindowWeight.spot,
      budgetPerWindow: budget,
      count429: coldStats.count429,
      requests: coldStats.requests,
      closeMs,
      warmMs,
      warmWeight: weightOf(warmStats, 'SPOT'),
      warmCount429: warmStats.count429,
    };
  } finally {
    await cleanUp(servers, sim, dir);
  }
}

interface ClosesRow {
  symbols: number;
  seconds: number;
  closesPerSymbol: number;
  weight: number;
  weightPerSymbolHour: number;
  requests: Record<string, Record<string, number>>;
  fresh: number;
  freshAtEachCheck: number[];
  /** Symbols per state at each check. */
  statesAtEachCheck: Array<Record<string, number>>;
  newestAgeMsP99AtEachCheck: number[];
  /** Derived intervals kept (INTERVALS) and, per interval, the symbols served fresh at each check. */
  intervals: Interval[];
  derivedFreshAtEachCheck: Record<string, number[]>;
  count429: number;
  loop: LoopDelay;
}

/** Steady state on 1s bars: every symbol closes a candle every second. */
async function closes(size: number): Promise<ClosesRow> {
  const symbols = generateSymbols('SPOT', size);
  const sim = await startSimProcess({ markets: ['SPOT'], symbolCount: { SPOT: size } });
  const dir = await mkdtemp(join(tmpdir(), 'candle-server-bench-'));
  let server: CandleServer | undefined;
  try {
    server = new CandleServer({
      instType: 'SPOT',
      rule: benchRule(sim, 'SPOT', dir, { BAR: '1s', LENGTH: 300, CACHE_DELAY_SECONDS: null, INTERVALS: CLOSES_INTERVALS }),
    });
    await server.runCandleMap();
    await pause(3000);
    await sim.resetStats();
    const loop = startLoopDelay();
    const start = performance.now();
    const freshAtEachCheck: number[] = [];
    const statesAtEachCheck: Array<Record<string, number>> = [];
    const newestAgeMsP99AtEachCheck: number[] = [];
    const derivedFreshAtEachCheck: Record<string, number[]> = Object.fromEntries(CLOSES_INTERVALS.map((i) => [i, []]));
    // Freshness every 5 s with a 5 s limit: every symbol must keep closing candles.
    while (performance.now() - start < CLOSES_SECONDS * 1000) {
      await pause(5000);
      const states: Record<string, number> = {};
      const ages: number[] = [];
      for (const symbol of symbols) {
        const status = server.status(symbol, 5);
        states[status.state] = (states[status.state] ?? 0) + 1;
        ages.push(status.newestAgeMs ?? Number.POSITIVE_INFINITY);
      }
      statesAtEachCheck.push(states);
      newestAgeMsP99AtEachCheck.push(
        quantile(
          ages.sort((a, b) => a - b),
          0.99,
        ),
      );
      freshAtEachCheck.push(states['fresh'] ?? 0);
      for (const interval of CLOSES_INTERVALS) {
        derivedFreshAtEachCheck[interval]?.push(
          symbols.filter((symbol) => server?.status(symbol, 5, { interval }).state === 'fresh').length,
        );
      }
    }
    const seconds = (performance.now() - start) / 1000;
    const loopDelay = loop.stop();
    const simStats = await sim.stats();
    const weight = weightOf(simStats, 'SPOT');
    return {
      symbols: size,
      seconds,
      closesPerSymbol: Math.floor(seconds),
      weight,
      weightPerSymbolHour: weight / size / (seconds / 3600),
      requests: simStats.requests,
      fresh: Math.min(...freshAtEachCheck),
      freshAtEachCheck,
      statesAtEachCheck,
      newestAgeMsP99AtEachCheck,
      intervals: CLOSES_INTERVALS,
      derivedFreshAtEachCheck,
      count429: simStats.count429,
      loop: loopDelay,
    };
  } finally {
    await cleanUp(server === undefined ? [] : [server], sim, dir);
  }
}

const f = (n: number | undefined, digits = 2): string => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits));

console.log(`candle-server bench${QUICK ? ' (quick)' : ''}: sizes ${SIZES.join(', ')}; simulator in a child process; real weight limits`);
const timing = instrumentMessages(200_000);
const liveRows: LiveRow[] = [];
try {
  if (PARTS.includes('live')) for (const size of SIZES) liveRows.push(await live(size, timing));
} finally {
  timing.restore();
}
console.log(`\nlive: UM 1m, LENGTH ${LENGTH}, ${LIVE_SECONDS} s of streaming per size (ms unless stated)`);
printTable([
  [
    'symbols',
    'conns',
    'msg/s',
    'E→ring p50',
    'p99',
    'hist p50',
    'hist p99',
    'added p50',
    'added p99',
    'added max',
    'handler p99',
    'loop p99',
    'loop max',
  ],
  ...liveRows.map((r) => [
    r.symbols,
    r.connections,
    Math.round(r.messagesPerSecond),
    f(r.eventToRing.p50, 0),
    f(r.eventToRing.p99, 0),
    f(r.eventToRingHistogram.p50),
    f(r.eventToRingHistogram.p99),
    f(r.added.p50, 3),
    f(r.added.p99, 3),
    f(r.added.max),
    f(r.handler.p99, 3),
    f(r.loop.p99),
    f(r.loop.max),
  ]),
]);
console.log('');
printTable([
  [
    'symbols',
    'gCS ns',
    'gCS copy µs',
    'mem/raw accounted',
    'mem/raw measured',
    'steady weight/sym-h',
    'fresh',
    '429',
    'snap write ms',
    'write loop max',
    'load ms',
    'load loop max',
    'seeded start ms',
    'weight',
  ],
  ...liveRows.map((r) => [
    r.symbols,
    f(r.getCandleSecurityNs, 0),
    f(r.getCandleSecurityCopyNs / 1000, 1),
    f(r.memory.accountedRatio, 3),
    f(r.memory.measuredRatio, 3),
    f(r.steady.weightPerSymbolHour, 2),
    `${r.steady.fresh}/${r.symbols}`,
    r.steady.count429,
    f(r.snapshot.writeMs, 0),
    f(r.snapshot.writeLoopMaxMs, 1),
    f(r.snapshot.loadMs, 0),
    f(r.snapshot.loadLoopMaxMs, 1),
    f(r.seededStartMs, 0),
    r.seededStartWeight,
  ]),
]);

const coldRows: ColdWarmRow[] = [];
if (PARTS.includes('cold')) for (const size of SIZES) coldRows.push(await coldWarm(size));
console.log(
  `\ncold start and warm restart: SPOT 1m, LENGTH ${COLD_LENGTH}, budget ${SERVER_WEIGHT} × ${MARKETS.SPOT.fallbackWeightLimit}/min`,
);
printTable([
  ['symbols', 'cold s', 'weight', 'floor s', 'window floor s', 'max window', '429', 'close s', 'warm s', 'warm weight', 'warm 429'],
  ...coldRows.map((r) => [
    r.symbols,
    f(r.coldMs / 1000),
    r.coldWeight,
    f(r.floorMs / 1000, 1),
    f(r.windowFloorMs / 1000, 1),
    r.maxWindowWeight,
    r.count429,
    f(r.closeMs / 1000),
    f(r.warmMs / 1000),
    r.warmWeight,
    r.warmCount429,
  ]),
]);

const closesSize = SIZES[SIZES.length - 1] ?? 1000;
const closesRow = PARTS.includes('closes') ? await closes(closesSize) : undefined;
if (closesRow !== undefined) {
  console.log(`\nsteady state with closes: SPOT 1s, ${closesSize} symbols, ${Math.round(closesRow.seconds)} s`);
  printTable([
    ['symbols', 'closes/sym', 'weight', 'weight/sym-h', 'fresh (min over checks)', '429', 'loop p99', 'loop max'],
    [
      closesRow.symbols,
      closesRow.closesPerSymbol,
      closesRow.weight,
      f(closesRow.weightPerSymbolHour),
      `${closesRow.fresh}/${closesRow.symbols}`,
      closesRow.count429,
      f(closesRow.loop.p99),
      f(closesRow.loop.max),
    ],
  ]);
  console.log('states at each check:', closesRow.statesAtEachCheck.map((s) => JSON.stringify(s)).join(' '));
  console.log('newest candle age p99 at each check (ms):', closesRow.newestAgeMsP99AtEachCheck.join(' '));
  for (const [interval, fresh] of Object.entries(closesRow.derivedFreshAtEachCheck)) {
    console.log(`derived ${interval}: fresh at each check:`, fresh.join(' '));
  }
}

const biggest = liveRows[liveRows.length - 1];
const targets = {
  addedP99Under5ms: liveRows.every((r) => r.added.p99 < 5),
  getCandleSecurityUnder2us: liveRows.every((r) => r.getCandleSecurityNs < 2000),
  // At one symbol the server's fixed cost (sockets, clients, buffers) dwarfs one ring: judged at the largest size.
  memoryWithin15Percent: biggest !== undefined && biggest.memory.accountedRatio <= 1.15 && biggest.memory.measuredRatio <= 1.15,
  // Judged on the live part (1m); the 1s closes part is reported beside it.
  freshWithNo429:
    biggest !== undefined &&
    biggest.steady.fresh === biggest.symbols &&
    biggest.steady.count429 === 0 &&
    (closesRow?.count429 ?? 0) === 0 &&
    coldRows.every((r) => r.count429 === 0 && r.warmCount429 === 0),
};
// Partial runs (--parts) judge only what they ran.
if (PARTS.length === 3)
  console.log(
    '\ntargets:',
    Object.entries(targets)
      .map(([name, met]) => `${name} ${met ? 'met' : 'MISSED'}`)
      .join('; '),
  );
const file = await writeResults('candle-server', { quick: QUICK, live: liveRows, coldWarm: coldRows, closes: closesRow, targets });
console.log(`results: ${file}${sink > 0 ? '' : ' ?'}`);
