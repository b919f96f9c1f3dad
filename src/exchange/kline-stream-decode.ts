/**
 * Decoding of kline stream frames, synchronous and without allocation beyond `JSON.parse`: one
 * decoder owns one reused result and one reused `Float64Array(12)` of candle values, in the REST
 * column order (see `KLINE_COLUMNS`).
 *
 * ```
 * {"stream":"btcusdt@kline_1m","data":{"e":"kline","E":..,"s":"BTCUSDT","k":{"t":..,"o":"1.5",..}}}
 *                                         │
 *   values: [t, o, h, l, c, v, T, q, n, V, Q, B]   isClosed: k.x   eventTime: E   symbol: s
 * ```
 *
 * @example
 * ```ts
 * const decoder = new KlineFrameDecoder('1m');
 * const frame = decoder.decode(text);
 * if (frame.kind === 'kline') console.log(frame.symbol, frame.values[4]); // close price
 * ```
 */
import type { Interval } from '../binance/markets.js';
import { SYMBOL_PATTERN } from '../binance/markets.js';

/**
 * What one text frame turned out to be. The object is reused by the next `decode` call: read it
 * before decoding again, and copy `values` if it must outlive the call.
 *
 * @example
 * ```ts
 * const frame: DecodedFrame = decoder.decode('{"result":null,"id":1}'); // frame.kind === 'reply'
 * ```
 */
export interface DecodedFrame {
  kind: 'kline' | 'reply' | 'serverShutdown' | 'malformed';
  /** Combined stream name of a kline frame ('' on raw connections). */
  stream: string;
  /** Exchange symbol of a kline frame (upper case). */
  symbol: string;
  /** The 12 candle columns of a kline frame, in REST order; reused from frame to frame. */
  readonly values: Float64Array;
  isClosed: boolean;
  /** Exchange time of the event (`E`), epoch ms. */
  eventTime: number;
  /** Request id of a reply (`null` when absent). */
  id: unknown;
  /** Error of a reply (`{code, msg}`), or of a malformed frame (what was wrong), else ''. */
  detail: string;
}

// Positions of the string fields of `k` in the 12 REST columns (ignore, B, is last).
const STRING_FIELDS = [
  ['o', 1],
  ['h', 2],
  ['l', 3],
  ['c', 4],
  ['v', 5],
  ['q', 7],
  ['V', 9],
  ['Q', 10],
] as const;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A decimal string as Binance writes prices and volumes; NaN when it is not one. */
function decimal(value: unknown): number {
  if (typeof value !== 'string' || value.length === 0) return Number.NaN;
  return Number(value);
}

function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * Decodes the frames of kline streams of one interval, raw or combined.
 *
 * @example
 * ```ts
 * const decoder = new KlineFrameDecoder('1s');
 * decoder.decode('{"e":"serverShutdown","E":1770000000000}').kind; // 'serverShutdown'
 * decoder.decode('{"stream":"x"').kind; // 'malformed'
 * ```
 */
export class KlineFrameDecoder {
  readonly #interval: Interval;
  readonly #frame: DecodedFrame = {
    kind: 'malformed',
    stream: '',
    symbol: '',
    values: new Float64Array(12),
    isClosed: false,
    eventTime: 0,
    id: null,
    detail: '',
  };

  constructor(interval: Interval) {
    this.#interval = interval;
  }

  /** Decodes one text frame; never throws. The result is reused by the next call. */
  decode(text: string): DecodedFrame {
    const frame = this.#frame;
    frame.stream = '';
    frame.detail = '';
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (error) {
      return this.#malformed(`not JSON (${error instanceof Error ? error.message : String(error)}): ${quote(text)}`);
    }
    if (!isRecord(body)) return this.#malformed(`expected a JSON object, got ${quote(body)}`);
    let event: Record<string, unknown> = body;
    if ('stream' in body) {
      const { stream, data } = body;
      if (typeof stream !== 'string') return this.#malformed(`stream must be a string, got ${quote(stream)}`);
      if (!isRecord(data)) return this.#malformed(`data of stream ${quote(stream)} must be an object, got ${quote(data)}`);
      frame.stream = stream;
      event = data;
    } else if ('id' in body && ('result' in body || 'error' in body)) {
      frame.kind = 'reply';
      frame.id = body['id'];
      if (body['error'] !== undefined) frame.detail = quote(body['error']);
      return frame;
    }
    const type = event['e'];
    if (type === 'serverShutdown') {
      frame.kind = 'serverShutdown';
      frame.eventTime = typeof event['E'] === 'number' ? event['E'] : 0;
      return frame;
    }
    if (type !== 'kline') return this.#malformed(`expected e "kline" or "serverShutdown", got ${quote(type)}`);
    return this.#kline(event);
  }

  #kline(event: Record<string, unknown>): DecodedFrame {
    const frame = this.#frame;
    const { E: eventTime, s: symbol, k } = event;
    if (typeof eventTime !== 'number' || !Number.isFinite(eventTime)) return this.#malformed(`E must be a number, got ${quote(eventTime)}`);
    if (typeof symbol !== 'string' || !SYMBOL_PATTERN.test(symbol))
      return this.#malformed(`s must be a Binance symbol, got ${quote(symbol)}`);
    if (!isRecord(k)) return this.#malformed(`k of ${symbol} must be an object, got ${quote(k)}`);
    if (k['s'] !== symbol) return this.#malformed(`k.s ${quote(k['s'])} differs from s "${symbol}"`);
    if (k['i'] !== this.#interval) return this.#malformed(`k.i of ${symbol} is ${quote(k['i'])}, expected "${this.#interval}"`);
    const { t, T, n, x } = k;
    if (!isCount(t) || !isCount(T) || T < t)
      return this.#malformed(`k.t and k.T of ${symbol} must be times with T >= t, got ${quote(t)} and ${quote(T)}`);
    if (!isCount(n)) return this.#malformed(`k.n of ${symbol} must be a trade count, got ${quote(n)}`);
    if (typeof x !== 'boolean') return this.#malformed(`k.x of ${symbol} must be a boolean, got ${quote(x)}`);
    const values = frame.values;
    for (const [key, column] of STRING_FIELDS) {
      const value = decimal(k[key]);
      if (!Number.isFinite(value)) return this.#malformed(`k.${key} of ${symbol} must be a decimal string, got ${quote(k[key])}`);
      values[column] = value;
    }
    const ignore = decimal(k['B']);
    values[0] = t;
    values[6] = T;
    values[8] = n;
    values[11] = Number.isFinite(ignore) ? ignore : 0;
    frame.kind = 'kline';
    frame.symbol = symbol;
    frame.isClosed = x;
    frame.eventTime = eventTime;
    return frame;
  }

  #malformed(detail: string): DecodedFrame {
    this.#frame.kind = 'malformed';
    this.#frame.detail = detail;
    return this.#frame;
  }
}

/**
 * The combined stream name of a symbol's klines: `<lowercase symbol>@kline_<interval>`.
 *
 * @example
 * ```ts
 * klineStreamName('BTCUSDT', '1m'); // 'btcusdt@kline_1m'
 * ```
 */
export function klineStreamName(symbol: string, interval: Interval): string {
  return `${symbol.toLowerCase()}@kline_${interval}`;
}
