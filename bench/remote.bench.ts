/**
 * What the remote reader adds: how late its rings are behind the publisher's, and how long it takes
 * to read the rings from a stream at start. Run: `npx tsx bench/remote.bench.ts [--sizes=100,1000]
 * [--seconds=20] [--length=2880] [--cold-runs=3]` (also `npm run bench:remote`); needs Debian's
 * nats-server (or NATS_URL), which it starts on a free loopback port as the tests do.
 *
 * For each size: UM 1m, LENGTH `--length=`, 250 ms cadence, a seeded snapshot, the simulator in a
 * child process (as bench/nats.bench.ts); a publishing CandleServer and a remote reader in this one
 * process, so both stamp times with the same performance.now():
 *
 * ```
 *   exchange E ──► publisher ring ──(rows event: stamp per symbol + the 12 values)──► setImmediate flush
 *              ──► core NATS live subject ──► reader ring (RemoteSymbol.applyCandle wrapped: the values
 *                  found in the reader's ring are matched with the publisher's stamp)
 * ```
 *
 * (a) Live forming updates: "ring → remote ring" is the time from the publisher's ring write to the
 * moment the reader's ring holds the same 12 values. Updates the publisher superseded before its
 * live flush are never sent and have no sample (counted apart). Beside it, the publisher's own
 * event → ring latency (its `latency` histogram: exchange event time E to ring write, bucketed),
 * over the same time: the reader's event → ring is the sum of the two, so its p99 is within the
 * lag's p99 of the publisher's.
 *
 * (b) Cold start: after the first publish of the whole rings into the empty stream, the publisher is
 * closed (the stream stays) and `connectRemote` is timed to ready (every ring read) `--cold-runs`
 * times, each reader closed before the next.
 *
 * Targets (issue "Past one machine"): the remote ring's p99 within 10 ms of the publisher's; a
 * remote cold start of 1000 symbols × 2880 under 10 s.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CandleServer } from '../src/candle-server.js';
import { KLINE_WIDTH } from '../src/binance/kline.js';
import { connectRemote, RemoteSymbol } from '../src/remote/index.js';
import type { CandleView } from '../src/store/candle-view.js';
import { generateSymbols } from '../src/sim/index.js';
import { startNats } from '../test/helpers/nats.js';
import { pause, printTable, Samples, writeResults, type SampleSummary } from './lib/measure.js';
import { startSimProcess } from './lib/sim-child.js';
import { BENCH_LENGTH, benchRule, cleanUp, seedSnapshot } from './lib/bench-server.js';

const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const SIZES = (arg('sizes') ?? '100,1000').split(',').map(Number);
const SECONDS = Number(arg('seconds') ?? 20);
const LENGTH = Number(arg('length') ?? BENCH_LENGTH);
const COLD_RUNS = Number(arg('cold-runs') ?? 3);

interface Row {
  symbols: number;
  /** The first publish of the whole rings into the empty stream: seconds and messages. */
  firstPublishSeconds: number;
  firstPublishMessages: number;
  lag: SampleSummary;
  /** Publisher ring writes (forming) never matched in the reader's ring: superseded before the live flush, or lost. */
  unmatched: number;
  publisherP50: number;
  publisherP99: number;
  coldStartSeconds: number[];
  coldStartRows: number;
}

/** The 12 values of a view's newest row, as a key. */
const buffer = new Float64Array(KLINE_WIDTH);
function newestKey(symbol: string, view: CandleView): string | undefined {
  if (view.isEmpty) return undefined;
  view.at(view.length - 1, buffer);
  return `${symbol}|${buffer.join(',')}`;
}

// Publisher ring writes not yet seen in the reader's ring: key → performance.now() of the write.
const written = new Map<string, number>();
const lag = new Samples(2_000_000);
let isMeasuring = false;

// The reader's ring write, hooked from outside (src/remote is not changed): after each applied
// candle, the newest row of the reader's ring is looked up among the publisher's writes.
// eslint-disable-next-line @typescript-eslint/unbound-method
const applyCandle = RemoteSymbol.prototype.applyCandle;
RemoteSymbol.prototype.applyCandle = function (this: RemoteSymbol, ...args: Parameters<typeof applyCandle>) {
  const result = applyCandle.apply(this, args);
  if (isMeasuring) {
    const key = newestKey(this.symbol, this.ring.view());
    const at = key === undefined ? undefined : written.get(key);
    if (key !== undefined && at !== undefined) {
      lag.add(performance.now() - at);
      written.delete(key);
    }
  }
  return result;
};

async function run(size: number, natsUrl: string): Promise<Row> {
  const symbols = generateSymbols('UM', size);
  const sim = await startSimProcess({ markets: ['UM'], symbolCount: { UM: size } });
  const dir = await mkdtemp(join(tmpdir(), 'remote-bench-'));
  const prefix = `remote${size}`;
  let server: CandleServer | undefined;
  try {
    await seedSnapshot(join(dir, 'cache'), 'UM', '1m', symbols, LENGTH);
    server = new CandleServer({
      instType: 'UM',
      rule: benchRule(sim, 'UM', dir, { LENGTH, NATS_URL: natsUrl, NATS_SUBJECT_PREFIX: prefix, CACHE_DELAY_SECONDS: null }),
    });
    await server.runCandleMap();
    const firstStart = performance.now();
    while ((server.stats().nats?.backlog ?? 0) > 0) await pause(200);
    const firstPublishSeconds = (performance.now() - firstStart) / 1000;
    const firstPublishMessages = server.stats().nats?.stored ?? 0;

    // (a) Live: publisher and reader in this process.
    const reader = await connectRemote({ servers: natsUrl, prefix, market: 'UM', bar: '1m' });
    await pause(3000);
    const publisher = server;
    let unmatched = 0;
    const offRows = publisher.on('rows', ({ symbol, kind }) => {
      if (!isMeasuring || kind !== 'forming') return;
      const key = newestKey(symbol, publisher.readRing(symbol));
      if (key !== undefined && !written.has(key)) written.set(key, performance.now());
    });
    // Writes older than 5 s were superseded before the flush (or lost): dropped, counted.
    const sweep = setInterval(() => {
      const old = performance.now() - 5000;
      for (const [key, at] of written) {
        if (at >= old) break;
        written.delete(key);
        unmatched += 1;
      }
    }, 1000);
    lag.clear();
    server.stats().latency.reset();
    isMeasuring = true;
    await pause(SECONDS * 1000);
    isMeasuring = false;
    clearInterval(sweep);
    offRows();
    unmatched += written.size;
    written.clear();
    const latency = server.stats().latency;
    const publisherP50 = latency.quantile(0.5) ?? Number.NaN;
    const publisherP99 = latency.quantile(0.99) ?? Number.NaN;
    const lagSummary = lag.summary();
    await reader.close();

    // (b) Cold start: the publisher gone, the stream kept.
    server.destroy();
    await server.close();
    server = undefined;
    const coldStartSeconds: number[] = [];
    let coldStartRows = 0;
    for (let k = 0; k < COLD_RUNS; k++) {
      const start = performance.now();
      const cold = await connectRemote({ servers: natsUrl, prefix, market: 'UM', bar: '1m' });
      coldStartSeconds.push((performance.now() - start) / 1000);
      coldStartRows = cold.symbols().reduce((sum, symbol) => sum + cold.readRing(symbol).length, 0);
      await cold.close();
    }
    return {
      symbols: size,
      firstPublishSeconds,
      firstPublishMessages,
      lag: lagSummary,
      unmatched,
      publisherP50,
      publisherP99,
      coldStartSeconds,
      coldStartRows,
    };
  } finally {
    await cleanUp(server === undefined ? [] : [server], sim, dir);
  }
}

const nats = await startNats();
const rows: Row[] = [];
try {
  for (const size of SIZES) rows.push(await run(size, nats.url));
} finally {
  await nats.stop();
}

const f = (n: number, digits = 2): string => n.toFixed(digits);
console.log(`Remote reader: UM 1m, LENGTH ${LENGTH}, 250 ms cadence, ${SECONDS} s live per size; publisher and reader in one process`);
printTable([
  [
    'symbols',
    'first publish s',
    'messages',
    'ring→remote p50 ms',
    'p99 ms',
    'max ms',
    'samples',
    'unmatched',
    'publisher E→ring p50 ms',
    'p99 ms',
    'cold start s',
    'rows read',
  ],
  ...rows.map((r) => [
    r.symbols,
    f(r.firstPublishSeconds, 1),
    r.firstPublishMessages,
    f(r.lag.p50),
    f(r.lag.p99),
    f(r.lag.max),
    r.lag.count,
    r.unmatched,
    f(r.publisherP50),
    f(r.publisherP99),
    r.coldStartSeconds.map((s) => f(s)).join(' / '),
    r.coldStartRows,
  ]),
]);
const file = await writeResults('remote', { seconds: SECONDS, length: LENGTH, coldRuns: COLD_RUNS, rows });
console.log(`results: ${file}`);
