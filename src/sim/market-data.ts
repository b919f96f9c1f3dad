/**
 * Deterministic candles for the simulated exchange, with random access: the candle at any open
 * time is computed directly from the seed, never by replaying history.
 *
 * The price is a sum of value-noise octaves over time (hashed knots, smooth interpolation), so
 * p(t) is a pure function of (seed, symbol, t). A candle of length D is built from SUB_STEPS
 * sub-steps of D / SUB_STEPS; at time `now` the forming candle aggregates the sub-steps that have
 * begun, and the last one ends exactly on the next open, so `close(n) === open(n + 1)`:
 *
 * ```
 * open ──┬── s0 ── s1 ── ... ── s59 ──┬── next open
 *        t                            t + D
 *  p(t) = open          p(t + D) = close = next candle's open
 * ```
 *
 * Replayed symbols play recorded 1m OHLCV rows instead (see `ReplaySeries`).
 *
 * @example
 * ```ts
 * const profile = symbolProfile(1, 'SPOT', 'BTCUSDT');
 * const { bar } = syntheticBar(profile, openTime, openTime + 60_000, Date.now());
 * const row = formatBar(profile, openTime, openTime + 60_000, bar);
 * ```
 */
import type { KlineValues, RawKline } from '../binance/kline.js';
import type { MarketType } from '../binance/markets.js';

/** Sub-steps per candle: the granularity at which a forming candle grows. */
export const SUB_STEPS = 60;

const MINUTE = 60_000;

/** A candle in numbers, before formatting into Binance's strings; the simulator grows it in place. */
export type Bar = { -readonly [K in keyof KlineValues]: KlineValues[K] };

/** How a symbol's numbers look: starting price, decimals, typical activity. */
export interface SymbolProfile {
  readonly market: MarketType;
  /** Hash of seed and symbol: the key of every noise lookup for this symbol. */
  readonly key: number;
  readonly basePrice: number;
  /** Decimals of the tick size (prices are rounded to these). */
  readonly priceDecimals: number;
  /** Decimals shown in the strings (spot always shows 8). */
  readonly priceDisplayDecimals: number;
  readonly qtyDecimals: number;
  readonly qtyDisplayDecimals: number;
  /** Typical base volume per minute (contracts on CM). */
  readonly volumePerMinute: number;
  /** CM only: USD value of one contract. */
  readonly contractSize: number;
}

/** 32-bit integer hash of up to four integers (murmur3-style finaliser over a mix). */
export function hash32(a: number, b: number, c = 0, d = 0): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ b, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16) ^ c, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 15) ^ d, 0x165667b1);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash of a string (FNV-1a), to key symbols. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Uniform in [0, 1) from a hash. */
function unit(h: number): number {
  return h / 4294967296;
}

/** Hash of a (possibly > 2^32) integer index under a key. */
function hashIndex(key: number, salt: number, index: number): number {
  return hash32(key, salt, index >>> 0, Math.floor(index / 4294967296));
}

// Octaves of the log-price noise: period (ms) and amplitude (log units).
const OCTAVES: ReadonlyArray<readonly [period: number, amplitude: number]> = [
  [5_000, 0.0004],
  [60_000, 0.0012],
  [15 * MINUTE, 0.003],
  [4 * 60 * MINUTE, 0.012],
  [3 * 1440 * MINUTE, 0.045],
  [60 * 1440 * MINUTE, 0.22],
];

function valueNoise(key: number, salt: number, x: number): number {
  const i = Math.floor(x);
  const f = x - i;
  const a = unit(hashIndex(key, salt, i)) * 2 - 1;
  const b = unit(hashIndex(key, salt, i + 1)) * 2 - 1;
  const u = f * f * (3 - 2 * f);
  return a + (b - a) * u;
}

/** The synthetic price of a symbol at time `t` (epoch ms): a pure function of key and t. */
export function priceAt(profile: SymbolProfile, t: number): number {
  let log = 0;
  for (let o = 0; o < OCTAVES.length; o += 1) {
    const [period, amplitude] = OCTAVES[o] as readonly [number, number];
    log += amplitude * valueNoise(profile.key, o + 1, t / period);
  }
  return profile.basePrice * Math.exp(log);
}

/**
 * The profile of a symbol: derived from the seed and the name, or from `basePrice` when given.
 */
export function symbolProfile(seed: number, market: MarketType, symbol: string, basePrice?: number): SymbolProfile {
  const key = hash32(seed | 0, hashString(symbol), hashString(market));
  const price = basePrice ?? knownPrice(symbol) ?? 10 ** (-3 + unit(hash32(key, 7)) * 7);
  const magnitude = Math.floor(Math.log10(price));
  const priceDecimals = Math.max(0, Math.min(8, 5 - magnitude));
  const qtyDecimals = market === 'CM' ? 0 : Math.max(0, Math.min(market === 'SPOT' ? 8 : 3, magnitude + 1));
  // Roughly the same notional per minute whatever the price, varied per symbol.
  const notionalPerMinute = 20_000 + unit(hash32(key, 11)) * 400_000;
  const contractSize = symbol.startsWith('BTC') ? 100 : 10;
  const volumePerMinute = market === 'CM' ? notionalPerMinute / contractSize : notionalPerMinute / price;
  return {
    market,
    key,
    basePrice: price,
    priceDecimals,
    priceDisplayDecimals: market === 'SPOT' ? 8 : priceDecimals,
    qtyDecimals,
    qtyDisplayDecimals: market === 'SPOT' ? 8 : qtyDecimals,
    volumePerMinute,
    contractSize,
  };
}

// Plausible starting prices for well-known assets, so demos look familiar.
function knownPrice(symbol: string): number | undefined {
  if (symbol.startsWith('BTC')) return 43_000;
  if (symbol.startsWith('ETH')) return 2_300;
  if (symbol.startsWith('BNB')) return 310;
  return undefined;
}

/** Number of sub-steps of a candle [openTime, nextOpen) that have begun at `now` (0..SUB_STEPS). */
export function elapsedSubSteps(openTime: number, nextOpen: number, now: number): number {
  if (now < openTime) return 0;
  const step = (nextOpen - openTime) / SUB_STEPS;
  return Math.min(SUB_STEPS, Math.floor((now - openTime) / step) + 1);
}

/** An empty bar at `price`: what a candle looks like before any sub-step, or with no trades. */
export function flatBar(price: number): Bar {
  return { open: price, high: price, low: price, close: price, volume: 0, quoteVolume: 0, trades: 0, takerBuyBase: 0, takerBuyQuote: 0 };
}

/** A synthetic candle part-way through its sub-steps, so that a forming candle can be extended. */
export interface SyntheticProgress {
  readonly steps: number;
  readonly bar: Bar;
  // Volumes are summed in whole lots so that extending step by step gives the same strings.
  readonly volumeLots: number;
  readonly takerLots: number;
}

/**
 * The synthetic candle [openTime, nextOpen) as it stands at `now`. Prices are rounded to the
 * symbol's tick before aggregating, so the strings of open and the previous close are identical.
 * Pass the `progress` of an earlier call on the same candle to compute only the new sub-steps.
 */
export function syntheticBar(
  profile: SymbolProfile,
  openTime: number,
  nextOpen: number,
  now: number,
  progress?: SyntheticProgress,
): SyntheticProgress {
  const tick = 10 ** profile.priceDecimals;
  const lot = 10 ** profile.qtyDecimals;
  const round = (p: number) => Math.round(p * tick) / tick;
  const steps = elapsedSubSteps(openTime, nextOpen, now);
  const bar = progress === undefined ? flatBar(round(priceAt(profile, openTime))) : { ...progress.bar };
  const span = nextOpen - openTime;
  const step = span / SUB_STEPS;
  const minutes = span / MINUTE;
  const volumePerStep = (profile.volumePerMinute * minutes) / SUB_STEPS;
  let volumeLots = progress?.volumeLots ?? 0;
  let takerLots = progress?.takerLots ?? 0;
  for (let k = progress?.steps ?? 0; k < steps; k += 1) {
    const end = k === SUB_STEPS - 1 ? nextOpen : openTime + (k + 1) * step;
    const price = round(priceAt(profile, end));
    const h = hash32(profile.key, 97, Math.floor(end) >>> 0, Math.floor(end / 4294967296));
    // About one sub-step in twenty has no trades: quiet moments exist on every exchange.
    const activity = unit(h) < 0.05 ? 0 : 0.2 + 1.8 * unit(hash32(h, 1)) ** 2;
    const lots = Math.round(volumePerStep * activity * lot);
    const takerLotsStep = Math.round(lots * (0.3 + 0.4 * unit(hash32(h, 2))));
    if (price > bar.high) bar.high = price;
    if (price < bar.low) bar.low = price;
    bar.close = price;
    if (lots > 0) {
      volumeLots += lots;
      takerLots += takerLotsStep;
      const amount = lots / lot;
      const taker = takerLotsStep / lot;
      bar.quoteVolume += profile.market === 'CM' ? (amount * profile.contractSize) / price : amount * price;
      bar.takerBuyQuote += profile.market === 'CM' ? (taker * profile.contractSize) / price : taker * price;
      bar.trades += Math.max(1, Math.floor(activity * 15 * minutes + unit(hash32(h, 3))));
    }
  }
  bar.volume = volumeLots / lot;
  bar.takerBuyBase = takerLots / lot;
  return { steps, bar, volumeLots, takerLots };
}

/** Formats a bar as Binance's 12-value kline row with the symbol's decimals. */
export function formatBar(
  profile: Pick<SymbolProfile, 'priceDisplayDecimals' | 'qtyDisplayDecimals'>,
  openTime: number,
  nextOpen: number,
  bar: Bar,
): RawKline {
  const p = profile.priceDisplayDecimals;
  const q = profile.qtyDisplayDecimals;
  return [
    openTime,
    bar.open.toFixed(p),
    bar.high.toFixed(p),
    bar.low.toFixed(p),
    bar.close.toFixed(p),
    bar.volume.toFixed(q),
    nextOpen - 1,
    bar.quoteVolume.toFixed(8),
    bar.trades,
    bar.takerBuyBase.toFixed(q),
    bar.takerBuyQuote.toFixed(8),
    '0',
  ];
}

/** Adds `next` (a later candle) into `into`, as a longer interval aggregates shorter ones. */
export function mergeBar(into: Bar | undefined, next: Bar): Bar {
  if (into === undefined) return { ...next };
  into.high = Math.max(into.high, next.high);
  into.low = Math.min(into.low, next.low);
  into.close = next.close;
  into.volume += next.volume;
  into.quoteVolume += next.quoteVolume;
  into.trades += next.trades;
  into.takerBuyBase += next.takerBuyBase;
  into.takerBuyQuote += next.takerBuyQuote;
  return into;
}

/** One recorded row: `[openTimeMs, open, high, low, close, volume]`. */
export type OhlcvRow = [number, number, number, number, number, number];

/**
 * Recorded 1m OHLCV rows re-based to start at `startTime`, with the minutes the source skipped
 * filled as zero-volume candles at the previous close (as Binance emits them). After the last row
 * the price stays flat with no volume.
 *
 * The forming minute walks a fixed path open → high → low → close (or open → low → high → close
 * on a rising minute) over SUB_STEPS sub-steps, so it converges to the recorded row at its close.
 *
 * @example
 * ```ts
 * const series = new ReplaySeries(rows, Date.parse('2024-01-01T00:00:00Z'));
 * series.minuteBar(Date.parse('2024-01-01T00:05:00Z'), Date.now());
 * ```
 */
export class ReplaySeries {
  readonly startTime: number;
  readonly length: number;
  // Dense per-minute columns: index i is the minute startTime + i * 60 s.
  readonly #open: Float64Array;
  readonly #high: Float64Array;
  readonly #low: Float64Array;
  readonly #close: Float64Array;
  readonly #volume: Float64Array;

  constructor(rows: readonly OhlcvRow[], startTime: number) {
    const first = rows[0];
    const last = rows[rows.length - 1];
    if (first === undefined || last === undefined) throw new RangeError('replay rows: expected at least one row, got none');
    if (startTime % MINUTE !== 0) throw new RangeError(`replay startTime ${startTime} is not aligned to a minute`);
    this.startTime = startTime;
    const sourceStart = Math.floor(first[0] / MINUTE) * MINUTE;
    this.length = Math.floor((last[0] - sourceStart) / MINUTE) + 1;
    this.#open = new Float64Array(this.length).fill(Number.NaN);
    this.#high = new Float64Array(this.length);
    this.#low = new Float64Array(this.length);
    this.#close = new Float64Array(this.length);
    this.#volume = new Float64Array(this.length);
    for (const [time, open, high, low, close, volume] of rows) {
      const i = Math.floor((time - sourceStart) / MINUTE);
      if (i < 0 || i >= this.length) throw new RangeError(`replay row at ${time} is not in time order`);
      this.#open[i] = open;
      this.#high[i] = Math.max(high, open, close);
      this.#low[i] = Math.min(low, open, close);
      this.#close[i] = close;
      this.#volume[i] = volume;
    }
    let previousClose = first[1];
    for (let i = 0; i < this.length; i += 1) {
      if (Number.isNaN(this.#open[i])) {
        this.#open[i] = this.#high[i] = this.#low[i] = this.#close[i] = previousClose;
        this.#volume[i] = 0;
      }
      previousClose = this.#close[i] as number;
    }
  }

  /** Open time just after the last recorded minute. */
  get endTime(): number {
    return this.startTime + this.length * MINUTE;
  }

  /** The price path of a minute: SUB_STEPS prices, the last being the close. */
  #path(i: number): Float64Array {
    const open = this.#open[i] as number;
    const close = this.#close[i] as number;
    const rising = close >= open;
    const first = rising ? (this.#low[i] as number) : (this.#high[i] as number);
    const second = rising ? (this.#high[i] as number) : (this.#low[i] as number);
    const knots = [open, first, second, close];
    const path = new Float64Array(SUB_STEPS);
    const leg = SUB_STEPS / 3;
    for (let k = 0; k < SUB_STEPS; k += 1) {
      const x = (k + 1) / leg;
      const j = Math.min(2, Math.floor(x - 1e-9));
      const f = Math.min(1, x - j);
      const a = knots[j] as number;
      const b = knots[j + 1] as number;
      path[k] = a + (b - a) * f;
    }
    return path;
  }

  /** The 1m candle opening at `openTime` as it stands at `now`; undefined before the replay starts. */
  minuteBar(openTime: number, now: number): Bar | undefined {
    const i = Math.floor((openTime - this.startTime) / MINUTE);
    if (i < 0 || now < openTime) return undefined;
    if (i >= this.length) return flatBar(this.#close[this.length - 1] as number);
    return this.#partOfMinute(i, 0, elapsedSubSteps(openTime, openTime + MINUTE, now));
  }

  /** The 1s candle opening at `openTime`: one sub-step of its minute's path. */
  secondBar(openTime: number, now: number): Bar | undefined {
    const minuteOpen = Math.floor(openTime / MINUTE) * MINUTE;
    const i = Math.floor((minuteOpen - this.startTime) / MINUTE);
    if (i < 0 || now < openTime) return undefined;
    if (i >= this.length) return flatBar(this.#close[this.length - 1] as number);
    const k = Math.floor((openTime - minuteOpen) / 1000);
    return this.#partOfMinute(i, k, k + 1);
  }

  // Sub-steps [from, to) of minute i, with volume spread evenly over the sub-steps.
  #partOfMinute(i: number, from: number, to: number): Bar {
    let bar: Bar;
    if (from === 0 && to === SUB_STEPS) {
      // The closed minute is the recorded row itself, not an approximation of it.
      bar = flatBar(this.#open[i] as number);
      bar.high = this.#high[i] as number;
      bar.low = this.#low[i] as number;
      bar.close = this.#close[i] as number;
    } else {
      const path = this.#path(i);
      bar = flatBar(from === 0 ? (this.#open[i] as number) : (path[from - 1] as number));
      for (let k = from; k < to; k += 1) {
        const price = path[k] as number;
        bar.high = Math.max(bar.high, price);
        bar.low = Math.min(bar.low, price);
        bar.close = price;
      }
    }
    const volume = this.#volume[i] as number;
    const share = (to - from) / SUB_STEPS;
    bar.volume = volume * share;
    if (volume > 0) {
      const mid = ((this.#open[i] as number) + (this.#close[i] as number) + (this.#high[i] as number) + (this.#low[i] as number)) / 4;
      bar.quoteVolume = bar.volume * mid;
      const trades = 1 + (hash32(i, 5) % 30);
      bar.trades = Math.round(trades * share);
      bar.takerBuyBase = bar.volume / 2;
      bar.takerBuyQuote = bar.quoteVolume / 2;
    }
    return bar;
  }
}
