/**
 * What derived rings (INTERVALS) cost on the hot path. Run: `npx tsx bench/derived.bench.ts`
 * (also `npm run bench:derived`).
 *
 * One symbol's 1m base ring (LENGTH 2880) with 0 or 5 derived rings (5m, 1h, 4h, 1d, 1w) is fed
 * stream updates the way the exchange sends them: 240 forming updates per candle (UM's 250 ms
 * cadence), then the close. Reported: ns per stream update (rule + derived rings), ns per close,
 * the read of a derived view (`isServable` + view, what getCandleSecurity does), and the memory of
 * the derived rings per symbol.
 *
 * Target: derived rings add no more than a few hundred ns per update, so that 1000 symbols at 4
 * updates a second stay far below 1% of a core.
 */
import { performance } from 'node:perf_hooks';
import { closeTimeOf } from '../src/binance/intervals.js';
import { EIGHT_DECIMALS, formatKline } from '../src/binance/kline-format.js';
import type { Interval } from '../src/binance/markets.js';
import { CandleRing } from '../src/store/candle-ring.js';
import { DerivedSeries } from '../src/sync/derived-bars.js';
import { TrackedSymbol, type RuleClock } from '../src/sync/serve-rule.js';

const LENGTH = 2880;
const MIN = 60_000;
const T0 = Date.parse('2026-01-05T00:00:00Z');
const UPDATES_PER_CANDLE = 240;
const CANDLES = Number(process.argv.find((a) => a.startsWith('--candles='))?.slice(10) ?? 3000);
const INTERVALS: readonly Interval[] = ['5m', '1h', '4h', '1d', '1w'];

// Keeps results alive so the JIT cannot drop the measured work.
let sink = 0;

interface Setup {
  readonly base: TrackedSymbol;
  readonly series: readonly DerivedSeries[];
  readonly clock: RuleClock & { t: number };
}

function setup(intervals: readonly Interval[]): Setup {
  const clock = {
    t: T0,
    now() {
      return this.t;
    },
    marginMs: () => 100,
  };
  const base = new TrackedSymbol({ symbol: 'BTCUSDT', ring: new CandleRing(LENGTH), bar: '1m', clock, cadenceMs: 250 });
  const events = { closed: () => (sink += 1), hole: () => undefined };
  const series = intervals.map(
    (interval) => new DerivedSeries({ symbol: 'BTCUSDT', bar: '1m', interval, ring: new CandleRing(LENGTH), clock, events }),
  );
  // History: LENGTH final candles, the ready state, the folds seeded from the ring.
  const values = new Float64Array(12);
  for (let i = -LENGTH; i < 0; i += 1) {
    write(values, i, 0);
    base.applyStream(values, true, T0 + i * MIN + MIN - 1);
  }
  base.markReady();
  for (const s of series) {
    const bucket = s.interval === '1w' ? Date.parse('2025-12-29T00:00:00Z') : T0;
    // The week began before the ring: one tile stands for it, as the seed's coarser klines would.
    const tiles = s.interval === '1w' ? [formatKline(values, EIGHT_DECIMALS)] : [];
    if (!s.seed(bucket, tiles, s.interval === '1w' ? T0 - LENGTH * MIN : bucket, base, T0)) throw new Error(`seed ${s.interval}`);
  }
  return { base, series, clock };
}

function write(values: Float64Array, candle: number, update: number): void {
  const openTime = T0 + candle * MIN;
  const price = 40_000 + (candle % 97) + update / 1000;
  values[0] = openTime;
  values[1] = 40_000 + (candle % 97);
  values[2] = price + 5;
  values[3] = price - 5;
  values[4] = price;
  values[5] = 12.345 + update / 1000;
  values[6] = closeTimeOf('1m', openTime);
  values[7] = 493_800.12345678 + update;
  values[8] = 40 + update;
  values[9] = 6.172;
  values[10] = 246_900.06172839;
  values[11] = 0;
}

function run(s: Setup): { updateNs: number; closeNs: number } {
  const values = new Float64Array(12);
  let updateMs = 0;
  let closeMs = 0;
  for (let candle = 0; candle < CANDLES; candle += 1) {
    let started = performance.now();
    for (let u = 0; u < UPDATES_PER_CANDLE; u += 1) {
      write(values, candle, u);
      s.clock.t = T0 + candle * MIN + u * 250;
      s.base.applyStream(values, false, s.clock.t);
      for (const series of s.series) series.follow(s.base, s.clock.t);
    }
    updateMs += performance.now() - started;
    started = performance.now();
    write(values, candle, UPDATES_PER_CANDLE);
    s.clock.t = T0 + candle * MIN + MIN - 1;
    s.base.applyStream(values, true, s.clock.t);
    for (const series of s.series) series.follow(s.base, s.clock.t);
    closeMs += performance.now() - started;
  }
  return { updateNs: (updateMs * 1e6) / (CANDLES * UPDATES_PER_CANDLE), closeNs: (closeMs * 1e6) / CANDLES };
}

const without = setup([]);
const withDerived = setup(INTERVALS);
// Warm both up, then measure alternately.
run(without);
run(withDerived);
const plain = run(without);
const derived = run(withDerived);
for (const s of withDerived.series) {
  if (!s.isServable(withDerived.base, 180_000)) throw new Error(`${s.interval} not servable after the run`);
}
const reads = 2_000_000;
const hourly = withDerived.series[1] as DerivedSeries;
let started = performance.now();
for (let i = 0; i < reads; i += 1) {
  if (hourly.isServable(withDerived.base, 180_000)) sink += hourly.ring.view().length;
}
const readNs = ((performance.now() - started) * 1e6) / reads;
started = performance.now();
for (let i = 0; i < reads; i += 1) if (withDerived.base.isServable(180_000)) sink += withDerived.base.ring.view().length;
const baseReadNs = ((performance.now() - started) * 1e6) / reads;
const bytes = withDerived.series.reduce((total, s) => total + s.ring.byteLength, 0);

console.log(`1m base ring, LENGTH ${LENGTH}, ${CANDLES} candles × ${UPDATES_PER_CANDLE} updates each`);
console.log(`stream update, rule only                 ${plain.updateNs.toFixed(0).padStart(6)} ns`);
console.log(`stream update, rule + ${INTERVALS.length} derived rings     ${derived.updateNs.toFixed(0).padStart(6)} ns`);
console.log(`close, rule only                         ${plain.closeNs.toFixed(0).padStart(6)} ns`);
console.log(`close, rule + ${INTERVALS.length} derived rings            ${derived.closeNs.toFixed(0).padStart(6)} ns`);
console.log(`read: base isServable + view             ${baseReadNs.toFixed(0).padStart(6)} ns`);
console.log(`read: 1h isServable + view               ${readNs.toFixed(0).padStart(6)} ns`);
console.log(
  `derived ring memory per symbol           ${(bytes / 1024).toFixed(0).padStart(6)} KiB (${INTERVALS.length} × LENGTH ${LENGTH})`,
);
if (sink === 42) console.log('');
