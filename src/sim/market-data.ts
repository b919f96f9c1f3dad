/**
 * Deterministic candles for the simulated exchange, with random access: any candle is computed
 * from the seed, the symbol and its time alone, never by replaying history.
 *
 * The minute is the unit. Every minute is a row of integers: open, high, low and close in ticks,
 * volume and taker volume in lots, quote and taker quote in units of 1e-8, trades. A candle of
 * any interval folds the minutes inside it (KlineFold, exactly), and the forming candle also the
 * seconds of the forming minute that have begun, the last of them up to its half-second steps
 * begun (MinuteSeconds splits a minute into its 60 seconds exactly). So every interval aggregates
 * the same seconds, as on Binance every interval aggregates the same trades:
 *
 * ```
 * 1M, 1w, 3d, 1d             fold days          (recent days' folds are kept)
 * 12h .. 1h                   fold hours         (recent hours' folds are kept)
 * 30m, 15m, 5m, 3m, 1m        fold minutes       (a synthetic hour's 60 rows are built at once)
 * forming minute, 1s          fold its seconds   (split from the minute's row)
 * forming second              fold its halves    (a share of the second)
 * ```
 *
 * Synthetic symbols: the price at each hour boundary is a sum of value-noise octaves over time
 * (`priceAt`, rounded to the tick), so an hour's close is the next hour's open. Inside the hour
 * the minute boundaries follow a random walk pinned to both ends (a bridge), each minute adds a
 * hashed excursion above and below its open and close, and a hashed activity sets its lots,
 * taker lots and trades; its quote amounts are lots x a price inside [low, high].
 *
 * Replayed symbols (`ReplaySeries`) take their minute rows from recorded 1m OHLCV rows instead.
 *
 * @example
 * ```ts
 * const series = new SyntheticSeries(symbolProfile(1, 'SPOT', 'BTCUSDT'));
 * const fold = new KlineFold(series.units.qtyDecimals);
 * foldSpan(series, fold, openTime, openTime + 3_600_000); // the 1h candle
 * formatKline(fold, series.units, openTime, openTime + 3_600_000 - 1);
 * ```
 */
import type { MarketType } from '../binance/markets.js';
import { hash32 as importedHash32, hashString, mix32 as importedMix32, unit as importedUnit } from './hash.js';
import {
  KlineFold,
  type KlineUnits,
  QUOTE_DECIMALS,
  ROW,
  ROW_FIELDS,
  mulDivFloor,
  roundHalfUp,
  writeRow as importedWriteRow,
} from './kline-fold.js';
import { MinuteSeconds, STEPS_PER_SECOND } from './minute-seconds.js';

// Imports used in the hot loops, read once: loaders that compile modules to CommonJS (tsx,
// vitest) turn every use of an imported name into a getter call.
const hash32 = importedHash32;
const mix32 = importedMix32;
const unit = importedUnit;
const round = roundHalfUp;
const writeRow = importedWriteRow;
const MINUTE_FIELDS = ROW_FIELDS;

const SECOND_MS = 1000;
const STEP_MS = SECOND_MS / STEPS_PER_SECOND;
const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
const MINUTES_PER_HOUR = 60;
const HOURS_PER_DAY = 24;
// Amounts of one minute stay below this, so that folds of them stay exact (see KlineFold).
const MAX_MINUTE_UNITS = 2 ** 50;

/** How a symbol's numbers look: starting price, decimals, typical activity. */
export interface SymbolProfile extends KlineUnits {
  readonly market: MarketType;
  /** Hash of seed and symbol: the key of every noise lookup for this symbol. */
  readonly key: number;
  readonly basePrice: number;
  /** Typical base volume per minute (contracts on CM). */
  readonly volumePerMinute: number;
  /** CM only: USD value of one contract. */
  readonly contractSize: number;
}

/** Hash of a (possibly > 2^32) integer index under a key. */
function hashIndex(key: number, salt: number, index: number): number {
  return hash32(key, salt, index >>> 0, Math.floor(index / 4294967296));
}

// Octaves of the log-price noise: period (ms) and amplitude (log units). The price is read on
// hour boundaries only (the minutes walk between them), where the hourly octave is one hashed
// value per hour.
const OCTAVES: ReadonlyArray<readonly [period: number, amplitude: number]> = [
  [HOUR_MS, 0.004],
  [4 * HOUR_MS, 0.012],
  [72 * HOUR_MS, 0.045],
  [1440 * HOUR_MS, 0.22],
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

/**
 * Where a symbol's minutes come from: a synthetic path or a replay. Minute and hour indexes
 * count from the epoch (epoch ms / 60 000, / 3 600 000).
 */
export interface MinuteSource {
  readonly units: KlineUnits;
  /** The 60 minute rows of an hour (see ROW); read it before the next call. */
  hourMinutes(hour: number): Float64Array;
  /** The 60 minutes of an hour folded. Do not change it. */
  hourFold(hour: number): KlineFold;
  /** The 24 hours of a UTC day (epoch ms / 86 400 000) folded. Do not change it. */
  dayFold(day: number): KlineFold;
  /** A minute split into its seconds; read it before the next call. */
  seconds(minute: number): MinuteSeconds;
}

/**
 * Folds [from, to) of `source` into `fold`, `from` on a whole second and `to` on a whole step:
 * whole days and hours from their folds, whole minutes from their rows, the seconds of a minute
 * cut by `from` or `to` from its split, and the steps of a second cut by `to`.
 *
 * @example
 * ```ts
 * foldSpan(series, fold, minuteOpen, Math.floor(now / 500) * 500 + 500); // the forming minute
 * ```
 */
export function foldSpan(source: MinuteSource, fold: KlineFold, from: number, to: number): void {
  let t = from;
  while (t < to) {
    if (to - t < SECOND_MS) {
      const minute = Math.floor(t / MINUTE_MS);
      source.seconds(minute).foldPartSecond(fold, (t - minute * MINUTE_MS) / SECOND_MS, (to - t) / STEP_MS);
      t = to;
    } else if (t % MINUTE_MS !== 0 || to - t < MINUTE_MS) {
      const minute = Math.floor(t / MINUTE_MS);
      const start = minute * MINUTE_MS;
      const end = Math.min(Math.floor(to / SECOND_MS) * SECOND_MS, start + MINUTE_MS);
      source.seconds(minute).foldInto(fold, (t - start) / SECOND_MS, (end - start) / SECOND_MS);
      t = end;
    } else if (t % DAY_MS === 0 && to - t >= DAY_MS) {
      fold.addFold(source.dayFold(t / DAY_MS));
      t += DAY_MS;
    } else if (t % HOUR_MS === 0 && to - t >= HOUR_MS) {
      fold.addFold(source.hourFold(t / HOUR_MS));
      t += HOUR_MS;
    } else {
      const hour = Math.floor(t / HOUR_MS);
      const rows = source.hourMinutes(hour);
      const end = Math.min(to - ((to - t) % MINUTE_MS), (hour + 1) * HOUR_MS);
      for (let i = ((t - hour * HOUR_MS) / MINUTE_MS) * MINUTE_FIELDS; t < end; t += MINUTE_MS, i += MINUTE_FIELDS) {
        fold.addRow(rows, i);
      }
    }
  }
}

/** The 60 rows of an hour folded. */
function foldHour(units: KlineUnits, rows: Float64Array): KlineFold {
  const fold = new KlineFold(units.qtyDecimals);
  for (let i = 0; i < MINUTES_PER_HOUR * MINUTE_FIELDS; i += MINUTE_FIELDS) fold.addRow(rows, i);
  return fold;
}

/** The 24 hours of `day` folded, each from `hourFold`. */
function foldDay(units: KlineUnits, day: number, hourFold: (hour: number) => KlineFold): KlineFold {
  const fold = new KlineFold(units.qtyDecimals);
  for (let hour = day * HOURS_PER_DAY; hour < (day + 1) * HOURS_PER_DAY; hour += 1) fold.addFold(hourFold(hour));
  return fold;
}

/** Keeps `value` under `key`, forgetting the oldest entry once `map` holds `limit`. */
function remember<V>(map: Map<number, V>, key: number, value: V, limit: number): V {
  if (map.size >= limit) map.delete(map.keys().next().value as number);
  map.set(key, value);
  return value;
}

// What a synthetic symbol keeps: hour rows for a page of minutes crossing hours, and the folds
// a forming month needs again at every push (its days, and the hours of its last day).
const TABLES_KEPT = 3;
const HOUR_FOLDS_KEPT = 48;
const DAY_FOLDS_KEPT = 64;
// Scratch space shared by all synthetic symbols (rows for an hour only folded, the walk).
const scratchRows = new Float64Array(MINUTES_PER_HOUR * MINUTE_FIELDS);
const scratchWalk = new Float64Array(MINUTES_PER_HOUR + 1);

/**
 * The minutes of a synthetic symbol (see the file header), built an hour at a time.
 *
 * @example
 * ```ts
 * const series = new SyntheticSeries(symbolProfile(1, 'UM', 'BTCUSDT'));
 * series.hourFold(Math.floor(Date.now() / 3_600_000) - 1); // the last closed hour
 * ```
 */
export class SyntheticSeries implements MinuteSource {
  readonly units: KlineUnits;
  readonly #profile: SymbolProfile;
  // Ticks per unit of price, lots per minute on average, trades per minute on average.
  readonly #tickScale: number;
  readonly #lotsPerMinute: number;
  readonly #tradesPerMinute: number;
  // Quote units per lot x tick (lots x price), or per lot / tick (CM: lots x contract size / price).
  readonly #quoteFactor: number;
  readonly #isInverse: boolean;
  // Seeds of the per-minute hashes: the walk, the shape (excursions), the flow (volume, taker).
  readonly #walkSeed: number;
  readonly #shapeSeed: number;
  readonly #flowSeed: number;
  readonly #tables = new Map<number, Float64Array>();
  readonly #hourFolds = new Map<number, KlineFold>();
  readonly #dayFolds = new Map<number, KlineFold>();
  // Created on first use: most symbols of a large world never need their seconds.
  #seconds: MinuteSeconds | undefined;

  constructor(profile: SymbolProfile) {
    this.#profile = profile;
    this.units = profile;
    this.#tickScale = 10 ** profile.priceDecimals;
    this.#lotsPerMinute = profile.volumePerMinute * 10 ** profile.qtyDecimals;
    this.#tradesPerMinute = 300 + 800 * unit(hash32(profile.key, 13));
    this.#walkSeed = hash32(profile.key, 0x402);
    this.#shapeSeed = hash32(profile.key, 0x403);
    this.#flowSeed = hash32(profile.key, 0x404);
    this.#isInverse = profile.market === 'CM';
    this.#quoteFactor = this.#isInverse
      ? profile.contractSize * 10 ** QUOTE_DECIMALS * this.#tickScale
      : 10 ** (QUOTE_DECIMALS - profile.qtyDecimals - profile.priceDecimals);
  }

  hourMinutes(hour: number): Float64Array {
    const rows = this.#tables.get(hour);
    if (rows !== undefined) return rows;
    const built = new Float64Array(MINUTES_PER_HOUR * MINUTE_FIELDS);
    this.#fill(hour, built);
    return remember(this.#tables, hour, built, TABLES_KEPT);
  }

  hourFold(hour: number): KlineFold {
    return this.#hourFolds.get(hour) ?? remember(this.#hourFolds, hour, this.#foldHour(hour), HOUR_FOLDS_KEPT);
  }

  dayFold(day: number): KlineFold {
    const kept = this.#dayFolds.get(day);
    if (kept !== undefined) return kept;
    // Hours already folded are reused; the others are folded without being kept.
    const fold = foldDay(this.units, day, (hour) => this.#hourFolds.get(hour) ?? this.#foldHour(hour));
    return remember(this.#dayFolds, day, fold, DAY_FOLDS_KEPT);
  }

  #foldHour(hour: number): KlineFold {
    let rows = this.#tables.get(hour);
    if (rows === undefined) {
      rows = scratchRows;
      this.#fill(hour, rows);
    }
    return foldHour(this.units, rows);
  }

  seconds(minute: number): MinuteSeconds {
    this.#seconds ??= new MinuteSeconds();
    if (this.#seconds.minute !== minute) {
      const rows = this.hourMinutes(Math.floor(minute / MINUTES_PER_HOUR));
      const offset = (minute - Math.floor(minute / MINUTES_PER_HOUR) * MINUTES_PER_HOUR) * MINUTE_FIELDS;
      this.#seconds.fill(this.#profile.key, minute, rows, offset, this.#profile.market === 'CM');
    }
    return this.#seconds;
  }

  #ticksAt(t: number): number {
    return Math.max(1, round(priceAt(this.#profile, t) * this.#tickScale));
  }

  /** Quote units (1e-8) of `lots` at `ticks`: lots x price, or lots x contract size / price on CM. */
  #quote(lots: number, ticks: number): number {
    return Math.min(MAX_MINUTE_UNITS, Math.floor(this.#isInverse ? (lots * this.#quoteFactor) / ticks : lots * ticks * this.#quoteFactor));
  }

  /** Writes the 60 minute rows of `hour` into `rows`. */
  #fill(hour: number, rows: Float64Array): void {
    const open = this.#ticksAt(hour * HOUR_MS);
    const close = this.#ticksAt((hour + 1) * HOUR_MS);
    const hourHash = hash32(this.#profile.key, 0x401, hour);
    // Typical move per minute (ticks) and trading activity, both varying from hour to hour.
    const sigma = ((open + close) / 2) * (0.00025 + 0.0006 * unit(hourHash));
    const perSigma = 1 / sigma;
    const lotsPerMinute = this.#lotsPerMinute * (0.6 + 0.8 * unit(mix32(hourHash, 1)));
    const tradesPerMinute = this.#tradesPerMinute * (lotsPerMinute / this.#lotsPerMinute);
    const first = hour * MINUTES_PER_HOUR;
    // A walk of steps with unit variance (three uniforms summed), pinned below to both ends.
    const walkSeed = this.#walkSeed;
    const walk = scratchWalk;
    walk[0] = 0;
    for (let j = 0; j < MINUTES_PER_HOUR; j += 1) {
      const h = mix32(walkSeed, first + j);
      walk[j + 1] = (walk[j] as number) + ((h & 1023) + ((h >>> 10) & 1023) + ((h >>> 20) & 1023)) / 511.5 - 3;
    }
    const driftPerMinute = (walk[MINUTES_PER_HOUR] as number) / MINUTES_PER_HOUR;
    const trendPerMinute = (close - open) / MINUTES_PER_HOUR;
    const shapeSeed = this.#shapeSeed;
    const flowSeed = this.#flowSeed;
    let o = open;
    for (let j = 0, i = 0; j < MINUTES_PER_HOUR; j += 1, i += MINUTE_FIELDS) {
      const k = j + 1;
      const c =
        k === MINUTES_PER_HOUR ? close : Math.max(1, round(open + trendPerMinute * k + sigma * ((walk[k] as number) - driftPerMinute * k)));
      const shape = mix32(shapeSeed, first + j);
      const up = (shape & 0xffff) / 0x10000;
      const down = (shape >>> 16) / 0x10000;
      const high = (o > c ? o : c) + Math.floor(sigma * 1.2 * up * up);
      const low = Math.max(1, (o < c ? o : c) - Math.floor(sigma * 1.2 * down * down));
      // The time-average of the seconds' path (open -> extremes -> close): where trades happen.
      const vwap = round((o + c + 2 * high + 2 * low) / 6);
      const flow = mix32(flowSeed, first + j);
      const burst = (flow & 0xffff) / 0x10000;
      const move = Math.abs(c - o) * perSigma;
      // About one minute in fifty trades three times as much.
      const activity = (0.25 + 1.5 * burst * burst) * (1 + 0.5 * (move < 2 ? move : 2)) * (flow >>> 24 < 5 ? 3 : 1);
      const volume = Math.min(MAX_MINUTE_UNITS, Math.max(1, round(lotsPerMinute * activity)));
      const trades = Math.min(volume, Math.max(1, round(tradesPerMinute * activity)));
      const taker = Math.floor(volume * (0.3 + (0.4 * ((flow >>> 16) & 0xff)) / 256 + (c > o ? 0.05 : c < o ? -0.05 : 0)));
      writeRow(rows, i, o, high, low, c, volume, taker, this.#quote(volume, vwap), this.#quote(taker, vwap), trades);
      o = c;
    }
  }
}

/** One recorded row: `[openTimeMs, open, high, low, close, volume]`. */
export type OhlcvRow = [number, number, number, number, number, number];

/** Recorded prices and volumes keep the source's 8 decimals whatever the market. */
export const REPLAY_UNITS: KlineUnits = { priceDecimals: 8, priceDisplayDecimals: 8, qtyDecimals: 8, qtyDisplayDecimals: 8 };

const REPLAY_SCALE = 10 ** 8;

/**
 * Recorded 1m OHLCV rows re-based to start at `startTime`, with the minutes the source skipped
 * filled as zero-volume candles at the previous close (as Binance emits them). After the last row
 * the price stays flat with no volume. A closed minute is the recorded row itself; trades and
 * the taker share are hashed, quote amounts are volume x a price inside [low, high]. Its seconds
 * walk open -> high -> low -> close (or open -> low -> high -> close on a rising minute).
 *
 * @example
 * ```ts
 * const series = new ReplaySeries(rows, Date.parse('2024-01-01T00:00:00Z'));
 * series.hourFold(Date.parse('2024-01-01T05:00:00Z') / 3_600_000); // the recorded 05:00 hour
 * ```
 */
export class ReplaySeries implements MinuteSource {
  readonly startTime: number;
  /** Minutes from the first recorded row to the last, skipped ones included. */
  readonly length: number;
  readonly units: KlineUnits = REPLAY_UNITS;
  readonly #key: number;
  readonly #firstHour: number;
  // Rows of whole hours from the first hour of the replay: minutes around it are flat.
  readonly #rows: Float64Array;
  readonly #folds: KlineFold[];
  // The hours before and after the recording: flat at its first open and its last close.
  readonly #before: Float64Array;
  readonly #after: Float64Array;
  readonly #beforeFold: KlineFold;
  readonly #afterFold: KlineFold;
  #seconds: MinuteSeconds | undefined;

  constructor(rows: readonly OhlcvRow[], startTime: number, key = 0) {
    const first = rows[0];
    const last = rows[rows.length - 1];
    if (first === undefined || last === undefined) throw new RangeError('replay rows: expected at least one row, got none');
    if (startTime % MINUTE_MS !== 0) throw new RangeError(`replay startTime ${startTime} is not aligned to a minute`);
    this.startTime = startTime;
    this.#key = key;
    const sourceStart = Math.floor(first[0] / MINUTE_MS) * MINUTE_MS;
    this.length = Math.floor((last[0] - sourceStart) / MINUTE_MS) + 1;
    const firstMinute = startTime / MINUTE_MS;
    this.#firstHour = Math.floor(firstMinute / MINUTES_PER_HOUR);
    const hours = Math.ceil((firstMinute + this.length) / MINUTES_PER_HOUR) - this.#firstHour;
    const lead = firstMinute - this.#firstHour * MINUTES_PER_HOUR;
    this.#rows = new Float64Array(hours * MINUTES_PER_HOUR * MINUTE_FIELDS);
    const recorded = new Uint8Array(this.length);
    for (const [time, open, high, low, close, volume] of rows) {
      const i = Math.floor((time - sourceStart) / MINUTE_MS);
      if (i < 0 || i >= this.length) throw new RangeError(`replay row at ${time} is not in time order`);
      recorded[i] = 1;
      this.#record(lead + i, i, time, [open, Math.max(high, open, close), Math.min(low, open, close), close], volume);
    }
    // Around and between the recorded rows, minutes without trades at the price before them.
    const firstOpen = toUnits(first[1]);
    let previousClose = firstOpen;
    for (let at = 0; at < lead; at += 1) setFlat(this.#rows, at, firstOpen);
    for (let i = 0; i < this.length; i += 1) {
      if (recorded[i] === 0) setFlat(this.#rows, lead + i, previousClose);
      previousClose = this.#rows[(lead + i) * MINUTE_FIELDS + ROW.close] as number;
    }
    for (let at = lead + this.length; at < hours * MINUTES_PER_HOUR; at += 1) setFlat(this.#rows, at, previousClose);
    this.#before = flatHour(firstOpen);
    this.#after = flatHour(previousClose);
    this.#beforeFold = foldHour(this.units, this.#before);
    this.#afterFold = foldHour(this.units, this.#after);
    this.#folds = [];
    for (let h = 0; h < hours; h += 1) this.#folds.push(foldHour(this.units, this.hourMinutes(this.#firstHour + h)));
  }

  /** Open time just after the last recorded minute. */
  get endTime(): number {
    return this.startTime + this.length * MINUTE_MS;
  }

  hourMinutes(hour: number): Float64Array {
    const h = hour - this.#firstHour;
    const size = MINUTES_PER_HOUR * MINUTE_FIELDS;
    if (h < 0) return this.#before;
    if (h * size >= this.#rows.length) return this.#after;
    return this.#rows.subarray(h * size, (h + 1) * size);
  }

  hourFold(hour: number): KlineFold {
    const h = hour - this.#firstHour;
    return h < 0 ? this.#beforeFold : (this.#folds[h] ?? this.#afterFold);
  }

  dayFold(day: number): KlineFold {
    return foldDay(this.units, day, (hour) => this.hourFold(hour));
  }

  seconds(minute: number): MinuteSeconds {
    this.#seconds ??= new MinuteSeconds();
    if (this.#seconds.minute !== minute) {
      const hour = Math.floor(minute / MINUTES_PER_HOUR);
      this.#seconds.fill(this.#key, minute, this.hourMinutes(hour), (minute - hour * MINUTES_PER_HOUR) * MINUTE_FIELDS, false);
    }
    return this.#seconds;
  }

  // Writes recorded row `index` (prices and volume as recorded) as padded row `at`.
  #record(at: number, index: number, time: number, prices: readonly [number, number, number, number], volume: number): void {
    const [open, high, low, close] = prices.map(toUnits) as [number, number, number, number];
    const lots = toUnits(volume);
    const h = hash32(this.#key, 0x501, index);
    const taker = Math.floor(lots * (0.3 + (0.4 * ((h >>> 8) & 0xff)) / 256));
    const vwap = round((open + close + 2 * high + 2 * low) / 6);
    const quote = mulDivFloor(lots, vwap, REPLAY_SCALE);
    if (lots > MAX_MINUTE_UNITS || quote > MAX_MINUTE_UNITS) {
      throw new RangeError(
        `replay row at ${time}: volume ${volume} is too large to keep exact (at most ${MAX_MINUTE_UNITS / REPLAY_SCALE})`,
      );
    }
    const trades = lots > 0 ? Math.min(lots, 1 + (h % 30)) : 0;
    writeRow(this.#rows, at * MINUTE_FIELDS, open, high, low, close, lots, taker, quote, mulDivFloor(taker, vwap, REPLAY_SCALE), trades);
  }
}

/** A recorded decimal (up to 8 places) in units of 1e-8. */
function toUnits(value: number): number {
  const whole = Math.floor(value);
  return whole * REPLAY_SCALE + round((value - whole) * REPLAY_SCALE);
}

/** Makes row `at` a minute without trades at `price`. */
function setFlat(rows: Float64Array, at: number, price: number): void {
  writeRow(rows, at * MINUTE_FIELDS, price, price, price, price, 0, 0, 0, 0, 0);
}

/** An hour of minutes with no trades at `price`. */
function flatHour(price: number): Float64Array {
  const rows = new Float64Array(MINUTES_PER_HOUR * MINUTE_FIELDS);
  for (let at = 0; at < MINUTES_PER_HOUR; at += 1) setFlat(rows, at, price);
  return rows;
}
