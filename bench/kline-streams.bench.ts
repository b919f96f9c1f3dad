/**
 * Kline stream latency benchmark: from the exchange's event time (`E`) to the `onKline` call, on
 * loopback against the simulated exchange (UM, 250 ms cadence, 200 streams per connection).
 * Run: `npx tsx bench/kline-streams.bench.ts [seconds]` (default 5 s per size).
 *
 * The simulator stamps `E` just before it writes the frames, so the figure covers serialising,
 * the socket, `ws` framing, decoding and the handler; the simulator and the client share one
 * event loop here, so the larger sizes also include the simulator's own work per tick.
 *
 * Recorded on the development container (Node 20, x64, 2 cores shared with other work):
 *   symbols  connections  updates/s  p50    p99    max event-loop delay
 *         1            1          4  1 ms   1 ms     8 ms
 *       100            1        400  3 ms   8 ms     9 ms
 *      1000            5       4000  9 ms  32 ms    32 ms  (the simulator's ticks dominate the stalls)
 * (numbers vary by machine: re-run rather than trust them.)
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { KlineStreams } from '../src/exchange/kline-streams.js';
import { SimulatedBinance, generateSymbols } from '../src/sim/index.js';

const SECONDS = Number(process.argv[2] ?? 5);

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

async function measure(symbolCount: number): Promise<void> {
  const symbols = generateSymbols('UM', symbolCount);
  const sim = await SimulatedBinance.start({ markets: ['UM'], symbols: { UM: symbols } });
  const latencies = new Float64Array(symbolCount * 4 * (SECONDS + 5) + 1000);
  let count = 0;
  let isMeasuring = false;
  const streams = new KlineStreams({
    market: 'UM',
    interval: '1m',
    baseUrl: sim.urls('UM').ws,
    onKline: (_symbol, _values, _isClosed, eventTime) => {
      if (isMeasuring && count < latencies.length) latencies[count++] = Date.now() - eventTime;
    },
  });
  streams.setSymbols(symbols);
  streams.start();
  // Warm-up: every connection up and the JIT settled.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  isMeasuring = true;
  await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
  isMeasuring = false;
  loop.disable();
  const connections = streams.stats.connections;
  await streams.close();
  await sim.close();
  const sorted = latencies.slice(0, count).sort();
  console.log(
    `${String(symbolCount).padStart(8)} symbols  ${String(connections).padStart(3)} connections  ` +
      `${String(Math.round(count / SECONDS)).padStart(6)} updates/s  p50 ${quantile(sorted, 0.5)} ms  ` +
      `p99 ${quantile(sorted, 0.99)} ms  max event-loop delay ${(loop.max / 1e6).toFixed(1)} ms`,
  );
}

for (const size of [1, 100, 1000]) await measure(size);
