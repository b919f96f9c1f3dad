/**
 * What publishing to NATS JetStream costs the publisher. Run: `npx tsx bench/nats.bench.ts
 * [--sizes=100,1000] [--seconds=20]` (also `npm run bench:nats`); needs Debian's nats-server (or
 * NATS_URL), which it starts on a free loopback port as the tests do.
 *
 * For each size: UM 1m, LENGTH 2880 (`--length=`), 250 ms cadence, a seeded snapshot (as the live part of
 * candle-server.bench.ts), the simulator in a child process; the same server run twice, publishing
 * off then on. With publishing on, the first publish of the whole rings into empty streams is timed
 * first; then both runs are measured over the same streaming time: the process's CPU (user +
 * system, as a share of one core), event-loop delay, messages published and the symbols fresh.
 *
 * Target (issue "Past one machine"): publishing adds under 10% CPU to the publisher at 1000
 * symbols.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CandleServer } from '../src/candle-server.js';
import { generateSymbols } from '../src/sim/index.js';
import { startNats } from '../test/helpers/nats.js';
import { pause, printTable, startLoopDelay, writeResults, type LoopDelay } from './lib/measure.js';
import { startSimProcess } from './lib/sim-child.js';
import { BENCH_LENGTH, benchRule, cleanUp, seedSnapshot, weightOf } from './lib/bench-server.js';

const SIZES = (process.argv.find((a) => a.startsWith('--sizes='))?.slice(8) ?? '100,1000').split(',').map(Number);
const SECONDS = Number(process.argv.find((a) => a.startsWith('--seconds='))?.slice(10) ?? 20);
const LENGTH = Number(process.argv.find((a) => a.startsWith('--length='))?.slice(9) ?? BENCH_LENGTH);

interface Row {
  symbols: number;
  publishing: boolean;
  /** The first publish of the whole rings into empty streams: seconds until nothing was pending, and messages. */
  initialSeconds: number;
  initialMessages: number;
  seconds: number;
  cpuShare: number;
  loop: LoopDelay;
  stored: number;
  live: number;
  errors: number;
  fresh: number;
  weight: number;
}

async function run(size: number, natsUrl: string | null): Promise<Row> {
  const symbols = generateSymbols('UM', size);
  const sim = await startSimProcess({ markets: ['UM'], symbolCount: { UM: size } });
  const dir = await mkdtemp(join(tmpdir(), 'nats-bench-'));
  let server: CandleServer | undefined;
  try {
    await seedSnapshot(join(dir, 'cache'), 'UM', '1m', symbols, LENGTH);
    server = new CandleServer({
      instType: 'UM',
      rule: benchRule(sim, 'UM', dir, { LENGTH, NATS_URL: natsUrl, NATS_SUBJECT_PREFIX: `bench${size}`, CACHE_DELAY_SECONDS: null }),
    });
    await server.runCandleMap();
    // The first publish of the whole rings into empty streams; then the steady state is measured.
    const initialStart = performance.now();
    while (natsUrl !== null && (server.stats().nats?.backlog ?? 0) > 0) await pause(200);
    const initialSeconds = (performance.now() - initialStart) / 1000;
    const initialMessages = server.stats().nats?.stored ?? 0;
    await pause(3000);
    await sim.resetStats();
    const before = server.stats().nats;
    const cpu = process.cpuUsage();
    const loop = startLoopDelay();
    const start = performance.now();
    await pause(SECONDS * 1000);
    const elapsedMs = performance.now() - start;
    const loopDelay = loop.stop();
    const used = process.cpuUsage(cpu);
    const after = server.stats().nats;
    const fresh = symbols.filter((symbol) => server?.status(symbol, 180).state === 'fresh').length;
    return {
      symbols: size,
      publishing: natsUrl !== null,
      initialSeconds,
      initialMessages,
      seconds: elapsedMs / 1000,
      cpuShare: (used.user + used.system) / 1000 / elapsedMs,
      loop: loopDelay,
      stored: (after?.stored ?? 0) - (before?.stored ?? 0),
      live: (after?.live ?? 0) - (before?.live ?? 0),
      errors: (after?.errors ?? 0) - (before?.errors ?? 0),
      fresh,
      weight: weightOf(await sim.stats(), 'UM'),
    };
  } finally {
    await cleanUp(server === undefined ? [] : [server], sim, dir);
  }
}

const nats = await startNats();
const rows: Row[] = [];
try {
  for (const size of SIZES) {
    rows.push(await run(size, null));
    // A prefix per run: each publishing run starts from empty streams.
    rows.push(await run(size, nats.url));
  }
} finally {
  await nats.stop();
}

const f = (n: number, digits = 2): string => n.toFixed(digits);
console.log(`NATS publishing: UM 1m, LENGTH ${LENGTH}, 250 ms cadence, ${SECONDS} s per run; nats-server on loopback`);
printTable([
  [
    'symbols',
    'publishing',
    'first publish s',
    'messages',
    'CPU (core share)',
    'loop p99 ms',
    'loop max ms',
    'stored msg/s',
    'live msg/s',
    'errors',
    'fresh',
    'weight',
  ],
  ...rows.map((r) => [
    r.symbols,
    r.publishing ? 'on' : 'off',
    r.publishing ? f(r.initialSeconds, 1) : '-',
    r.publishing ? r.initialMessages : '-',
    f(r.cpuShare, 3),
    f(r.loop.p99),
    f(r.loop.max),
    f(r.stored / r.seconds, 1),
    f(r.live / r.seconds, 1),
    r.errors,
    `${r.fresh}/${r.symbols}`,
    r.weight,
  ]),
]);
for (const size of SIZES) {
  const off = rows.find((r) => r.symbols === size && !r.publishing);
  const on = rows.find((r) => r.symbols === size && r.publishing);
  if (off !== undefined && on !== undefined) {
    console.log(`${size} symbols: publishing adds ${f((on.cpuShare - off.cpuShare) * 100, 1)} points of one core's CPU`);
  }
}
const file = await writeResults('nats', { seconds: SECONDS, length: LENGTH, rows });
console.log(`results: ${file}`);
