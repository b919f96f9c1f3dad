/**
 * Daily-file back-fill benchmark: symbol-days written per minute against the simulated exchange
 * (in a child process, see `bench/lib/sim-process.ts`), REST-only and from the daily archives,
 * beside the floor that the weight budget allows. Real limits: UM 2400 weight per 60 s window,
 * SERVER_WEIGHT 0.75 (1800 per minute); archives cost no weight, so their floor is bandwidth and
 * CPU (here: the simulator zipping the files and the back-fill unzipping, checking and writing).
 *
 * Run: `npx tsx bench/backfill.bench.ts [--quick] [--symbols=N] [--days=D]` (also
 * `npm run bench:backfill`). Results: `bench/results/backfill.json`; recorded in BENCHMARKS.md.
 *
 * The workload is N symbols × D local days (America/New_York, 1m), the days ending two days
 * before today so that the archives of every UTC day they touch exist (`archiveDelayMs: 0`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ArchiveClient } from '../src/exchange/archive-client.js';
import { planKlinePages, planWeight } from '../src/exchange/kline-pages.js';
import { MARKETS } from '../src/binance/markets.js';
import { BinanceRestClient } from '../src/exchange/rest-client.js';
import { WeightGovernor } from '../src/exchange/weight-governor.js';
import { lastFullLocalDays, localDayBounds } from '../src/files/daily-layout.js';
import { generateSymbols } from '../src/sim/index.js';
import { DailyBackfill, type DaySummary } from '../src/sync/daily-backfill.js';
import { printTable, startLoopDelay, writeResults, type LoopDelay } from './lib/measure.js';
import { startSimProcess } from './lib/sim-child.js';
import { weightFloorMs, windowFloorMs } from './lib/weight-floor.js';

const QUICK = process.argv.includes('--quick');
const arg = (name: string, fallback: number): number =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback);
const SYMBOLS = arg('symbols', QUICK ? 20 : 100);
const DAYS = arg('days', QUICK ? 3 : 4);
const MARKET = 'UM';
const BAR = '1m';
const TZ = 'America/New_York';
const SERVER_WEIGHT = 0.75;
const DAY_MS = 86_400_000;

interface BackfillRow {
  mode: 'rest' | 'archives';
  symbolDays: number;
  ms: number;
  symbolDaysPerMinute: number;
  weight: number;
  plannedWeight: number;
  floorSymbolDaysPerMinute: number;
  floorMs: number;
  windowFloorMs: number;
  maxWindowWeight: number;
  count429: number;
  requests: Record<string, Record<string, number>>;
  outcomes: { success: number; warn: number; error: number; skip: number };
  loop: LoopDelay;
}

async function run(mode: 'rest' | 'archives', symbols: readonly string[], days: readonly string[]): Promise<BackfillRow> {
  const sim = await startSimProcess({ markets: [MARKET], symbolCount: { [MARKET]: symbols.length }, archiveDelayMs: 0 });
  const dir = await mkdtemp(join(tmpdir(), 'backfill-bench-'));
  const urls = sim.urls[MARKET];
  if (urls === undefined) throw new Error(`the simulator serves no ${MARKET}`);
  const spec = MARKETS[MARKET];
  const governor = new WeightGovernor({ name: spec.budgetGroup, serverWeight: SERVER_WEIGHT });
  const rest = new BinanceRestClient({ market: MARKET, baseUrl: urls.rest, governor });
  const archives = mode === 'archives' ? new ArchiveClient({ market: MARKET, baseUrl: urls.archive }) : undefined;
  try {
    const plannedPerDay = days.map((day) => {
      const { start, end } = localDayBounds(day, TZ);
      return planWeight(planKlinePages({ market: MARKET, interval: BAR, from: start, to: end - 60_000 }));
    });
    const plannedRest = symbols.length * plannedPerDay.reduce((a, b) => a + b, 0);
    const budget = spec.fallbackWeightLimit * SERVER_WEIGHT;
    const backfill = new DailyBackfill({ market: MARKET, bar: BAR, timezone: TZ, candleDir: dir, rest, archives, now: () => Date.now() });
    const loop = startLoopDelay();
    const startedAt = Date.now();
    const start = performance.now();
    const summaries: DaySummary[] = await backfill.run(days, symbols);
    const ms = performance.now() - start;
    const loopDelay = loop.stop();
    const stats = await sim.stats();
    const weight = stats.weightByWindow[spec.budgetGroup].reduce((sum, [, w]) => sum + w, 0);
    const symbolDays = symbols.length * days.length;
    const plannedWeight = mode === 'rest' ? plannedRest : 0;
    const sum = (key: 'success' | 'warn' | 'error' | 'skip') => summaries.reduce((total, s) => total + s[key], 0);
    return {
      mode,
      symbolDays,
      ms,
      symbolDaysPerMinute: symbolDays / (ms / 60_000),
      weight,
      plannedWeight,
      floorSymbolDaysPerMinute: mode === 'rest' ? budget / (plannedRest / symbolDays) : Number.POSITIVE_INFINITY,
      floorMs: weightFloorMs(plannedWeight, budget),
      windowFloorMs: windowFloorMs(plannedWeight, budget, startedAt),
      maxWindowWeight: stats.maxWindowWeight[spec.budgetGroup],
      count429: stats.count429,
      requests: stats.requests,
      outcomes: { success: sum('success'), warn: sum('warn'), error: sum('error'), skip: sum('skip') },
      loop: loopDelay,
    };
  } finally {
    await rest.close();
    await archives?.close();
    governor.close();
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const symbols = generateSymbols(MARKET, SYMBOLS);
const days = lastFullLocalDays(Date.now() - 2 * DAY_MS, TZ, DAYS);
console.log(
  `back-fill bench${QUICK ? ' (quick)' : ''}: ${MARKET} ${BAR}, ${SYMBOLS} symbols × ${DAYS} days (${days[0]} .. ${days[days.length - 1]}, ${TZ}); budget ${SERVER_WEIGHT} × ${MARKETS[MARKET].fallbackWeightLimit}/min`,
);
const rows = [await run('rest', symbols, days), await run('archives', symbols, days)];
const f = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : '-');
printTable([
  [
    'mode',
    'symbol-days',
    'seconds',
    'symbol-days/min',
    'floor symbol-days/min',
    'weight',
    'planned',
    'floor s',
    'window floor s',
    'max window',
    '429',
    'ok/warn/error',
    'loop p99 ms',
    'loop max ms',
  ],
  ...rows.map((r) => [
    r.mode,
    r.symbolDays,
    f(r.ms / 1000),
    f(r.symbolDaysPerMinute),
    f(r.floorSymbolDaysPerMinute),
    r.weight,
    r.plannedWeight,
    f(r.floorMs / 1000),
    f(r.windowFloorMs / 1000),
    r.maxWindowWeight,
    r.count429,
    `${r.outcomes.success}/${r.outcomes.warn}/${r.outcomes.error}`,
    f(r.loop.p99, 2),
    f(r.loop.max, 1),
  ]),
]);
const file = await writeResults('backfill', { quick: QUICK, market: MARKET, bar: BAR, timezone: TZ, symbols: SYMBOLS, days, rows });
console.log(`results: ${file}`);
