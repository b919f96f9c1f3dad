/**
 * The NATS wire format, version 1: the one definition of the subjects, stream names, stream
 * settings, message ids and bodies that the publisher writes (and a reader reads). Documented for
 * readers in docs/nats-format.md; a change of anything here is a new version there.
 *
 * ```
 *   JetStream stream CANDLES_UM_1m             subjects candles.UM.1m.*  (one per market and interval)
 *     candles.UM.1m.BTCUSDT   closed and repaired candles, max LENGTH messages per subject
 *     candles.UM.1m.ETHUSDT   Nats-Msg-Id: ETHUSDT:<openTime>:<hash of the 12 values>
 *   core NATS (not stored)
 *     candles.live.UM.1m.BTCUSDT   the newest candle at each update (x: false while forming)
 *     candles.status.UM.1m         every second: the publisher's exchange time, per symbol its
 *                                  state and confirmation time
 * ```
 *
 * Bodies are JSON; numbers are JSON numbers (JavaScript's shortest form round-trips a float64).
 *
 * @example
 * ```ts
 * streamName('candles', 'UM', '1m');            // 'CANDLES_UM_1m'
 * candleSubject('candles', 'UM', '1m', 'BTCUSDT'); // 'candles.UM.1m.BTCUSDT'
 * ```
 */
import { createHash } from 'node:crypto';
import type { Interval, MarketType } from '../binance/markets.js';

/** The version of this format, carried in every body as `v`. */
export const WIRE_VERSION = 1;

/** JetStream's de-duplication window of the streams: a candle published twice within it is stored once. */
export const DUPLICATE_WINDOW_MS = 120_000;

/** The name of the JetStream stream of a market and interval: the prefix upper-cased, other characters than [A-Za-z0-9_-] as '_'. */
export function streamName(prefix: string, market: MarketType, interval: Interval): string {
  return `${prefix.toUpperCase()}_${market}_${interval}`.replace(/[^A-Za-z0-9_-]/g, '_');
}

/** The subjects of the stream of a market and interval: one token per symbol after them. */
export function streamSubjects(prefix: string, market: MarketType, interval: Interval): string[] {
  return [`${prefix}.${market}.${interval}.*`];
}

/** The stored subject of a symbol's closed and repaired candles. */
export function candleSubject(prefix: string, market: MarketType, interval: Interval, symbol: string): string {
  return `${prefix}.${market}.${interval}.${symbol}`;
}

/** The core NATS subject of a symbol's newest candle, at each update. */
export function liveSubject(prefix: string, market: MarketType, interval: Interval, symbol: string): string {
  return `${prefix}.live.${market}.${interval}.${symbol}`;
}

/** The core NATS subject of the heartbeat of a market and interval. */
export function statusSubject(prefix: string, market: MarketType, interval: Interval): string {
  return `${prefix}.status.${market}.${interval}`;
}

/** The settings of a stream that the publisher creates, and checks when the stream exists. */
export interface StreamSettings {
  readonly name: string;
  readonly subjects: readonly string[];
  /** LENGTH: the stream holds a ring per symbol. */
  readonly maxMsgsPerSubject: number;
  readonly discard: 'old';
  readonly storage: 'file';
  readonly duplicateWindowMs: number;
}

/** The stream settings of a market and interval for rings of `length` candles. */
export function streamSettings(prefix: string, market: MarketType, interval: Interval, length: number): StreamSettings {
  return {
    name: streamName(prefix, market, interval),
    subjects: streamSubjects(prefix, market, interval),
    maxMsgsPerSubject: length,
    discard: 'old',
    storage: 'file',
    duplicateWindowMs: DUPLICATE_WINDOW_MS,
  };
}

/**
 * The `Nats-Msg-Id` of a candle: symbol, open time and a hash of its 12 values. The same candle
 * published twice has the same id (stored once); a repair with other values has another.
 *
 * @example
 * ```ts
 * candleMsgId('BTCUSDT', row); // 'BTCUSDT:1700000000000:9f2c4e1a0b7d3c55'
 * ```
 */
export function candleMsgId(symbol: string, values: ArrayLike<number>): string {
  const bytes = new Float64Array(12);
  for (let c = 0; c < 12; c += 1) bytes[c] = values[c] ?? Number.NaN;
  const hash = createHash('sha256').update(new Uint8Array(bytes.buffer)).digest('hex').slice(0, 16);
  return `${symbol}:${String(bytes[0])}:${hash}`;
}

/** The body of a candle message (stored and live). */
export interface CandleMessage {
  /** Format version: 1. */
  readonly v: typeof WIRE_VERSION;
  /** Market: 'SPOT', 'UM' or 'CM'. */
  readonly m: MarketType;
  /** Interval. */
  readonly i: Interval;
  /** Symbol. */
  readonly s: string;
  /** The 12 columns in Binance's kline order (open time ... ignore), as numbers. */
  readonly k: readonly number[];
  /** True when the candle is final (closed); false for the forming one. */
  readonly x: boolean;
  /** Exchange time (epoch ms) at which the exchange last vouched for the symbol; 0 if never. */
  readonly c: number;
  /** The publisher's exchange time at publishing (epoch ms). */
  readonly t: number;
}

/** The JSON body of a candle. */
export function encodeCandle(message: Omit<CandleMessage, 'v' | 'k'> & { readonly k: ArrayLike<number> }): string {
  // Hand-written to skip an array copy per row; JSON.stringify of a number is its shortest form.
  let k = '';
  for (let c = 0; c < 12; c += 1) k += (c === 0 ? '' : ',') + JSON.stringify(message.k[c] ?? null);
  return `{"v":${WIRE_VERSION},"m":"${message.m}","i":"${message.i}","s":"${message.s}","k":[${k}],"x":${String(message.x)},"c":${message.c},"t":${message.t}}`;
}

/** One symbol in a heartbeat. */
export interface SymbolHeartbeat {
  /** State as the publisher sees it for 180 s: fresh, stale, warming, repairing, overdue, banned, unknown. */
  readonly st: string;
  /** Exchange time at which the exchange last vouched for the symbol (epoch ms); 0 if never. */
  readonly c: number;
  /** Open time of the newest (forming) candle; 0 if none. */
  readonly n: number;
}

/** The body of a heartbeat on the status subject. */
export interface StatusMessage {
  readonly v: typeof WIRE_VERSION;
  readonly m: MarketType;
  readonly i: Interval;
  /** The publisher's exchange time (epoch ms). */
  readonly t: number;
  /** Per symbol. */
  readonly s: Readonly<Record<string, SymbolHeartbeat>>;
}

/** The JSON body of a heartbeat. */
export function encodeStatus(message: Omit<StatusMessage, 'v'>): string {
  return JSON.stringify({ v: WIRE_VERSION, m: message.m, i: message.i, t: message.t, s: message.s });
}

/**
 * A candle or heartbeat body read back, or undefined when it is not version 1 of this format.
 *
 * @example
 * ```ts
 * const candle = decodeCandle(new TextDecoder().decode(msg.data));
 * if (candle?.x) console.log(candle.s, candle.k[4]); // close
 * ```
 */
export function decodeCandle(text: string): CandleMessage | undefined {
  const body = JSON.parse(text) as Partial<CandleMessage> | null;
  if (body?.v !== WIRE_VERSION || !Array.isArray(body.k) || body.k.length !== 12 || typeof body.s !== 'string') return undefined;
  return body as CandleMessage;
}

/** A heartbeat body read back, or undefined when it is not version 1 of this format. */
export function decodeStatus(text: string): StatusMessage | undefined {
  const body = JSON.parse(text) as Partial<StatusMessage> | null;
  if (body?.v !== WIRE_VERSION || typeof body.s !== 'object' || typeof body.t !== 'number') return undefined;
  return body as StatusMessage;
}
