/**
 * The wire protocol of Binance's kline streams, as pure functions: which upgrade URLs are
 * accepted, which stream names exist, how live control messages (SUBSCRIBE, UNSUBSCRIBE,
 * LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY) are parsed and answered, and how a kline event
 * is written. The socket handling lives in `streams.ts`.
 *
 * ```
 * raw       /ws/btcusdt@kline_1m          -> {"e":"kline","E":...,"s":"BTCUSDT","k":{...}}
 * combined  /stream?streams=a/b           -> {"stream":"a","data":{"e":"kline",...}}
 * reply     {"method":"SUBSCRIBE","params":["a"],"id":1}  -> {"result":null,"id":1}
 * error     {"method":"SUBSCRIBE","params":["?"],"id":2}  -> {"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":2}
 * ```
 *
 * @example
 * ```ts
 * parseStreamName('btcusdt@kline_1m', 'SPOT'); // { symbol: 'BTCUSDT', interval: '1m' }
 * routeUpgradeUrl('/market/ws/btcusdt@kline_1m', 'UM'); // { ok: true, isRouted: true, ... }
 * ```
 */
import type { RawKline } from '../binance/kline.js';
import { MARKETS, type Interval, type MarketType } from '../binance/markets.js';

/**
 * A kline stream name split into the exchange symbol (upper case) and the interval.
 *
 * @example
 * ```ts
 * const ref: KlineStreamRef = { symbol: 'BTCUSDT', interval: '1m' }; // from 'btcusdt@kline_1m'
 * ```
 */
export interface KlineStreamRef {
  readonly symbol: string;
  readonly interval: Interval;
}

// Stream names carry the symbol in lower case: `btcusdt@kline_1m`, `btcusd_perp@kline_1M`.
const STREAM_NAME = /^([a-z0-9_]{1,40})@kline_([0-9]{1,2}[smhdwM])$/;

/**
 * Parses `<lowercase symbol>@kline_<interval>`. Returns undefined when the name is not a kline
 * stream of `market` (bad syntax, upper-case symbol, or an interval the market does not offer).
 * A well-formed name of a symbol the exchange does not list is valid: Binance accepts it and
 * simply never sends anything on it.
 *
 * @example
 * ```ts
 * parseStreamName('ethusdt@kline_1s', 'UM'); // undefined: futures have no 1s klines
 * ```
 */
export function parseStreamName(name: string, market: MarketType): KlineStreamRef | undefined {
  const match = STREAM_NAME.exec(name);
  if (match === null) return undefined;
  const interval = MARKETS[market].intervals.find((i) => i === match[2]);
  if (interval === undefined) return undefined;
  return { symbol: (match[1] ?? '').toUpperCase(), interval };
}

/**
 * Where an upgrade request leads: a connection, or an HTTP refusal.
 *
 * @example
 * ```ts
 * const refused: UpgradeRoute = { ok: false, status: 404, message: 'no stream route at "/x"' };
 * ```
 */
export type UpgradeRoute =
  | {
      readonly ok: true;
      /** Events wrapped as `{"stream","data"}` (the `/stream` path). */
      readonly isCombined: boolean;
      /** False on UM URLs outside `/market`: they connect but never carry klines. */
      readonly isRouted: boolean;
      readonly streams: readonly string[];
    }
  | { readonly ok: false; readonly status: 400 | 404; readonly message: string };

/**
 * Decides what an upgrade request URL (path and query) opens on `market`, given the maximum
 * number of streams a connection may carry.
 *
 * @example
 * ```ts
 * routeUpgradeUrl('/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m', 'SPOT', 1024);
 * // { ok: true, isCombined: true, isRouted: true, streams: ['btcusdt@kline_1m', 'ethusdt@kline_1m'] }
 * ```
 */
export function routeUpgradeUrl(url: string, market: MarketType, maxStreams: number): UpgradeRoute {
  const parsed = new URL(url, 'http://sim.invalid');
  const prefix = MARKETS[market].wsRoutePrefix;
  let path = parsed.pathname;
  let isRouted = true;
  if (prefix !== '') {
    if (path === prefix || path.startsWith(`${prefix}/`)) path = path.slice(prefix.length);
    else isRouted = false;
  }
  let isCombined: boolean;
  let names: string[];
  if (path === '/ws' || path.startsWith('/ws/')) {
    isCombined = false;
    names = path.slice('/ws'.length).split('/');
  } else if (path === '/stream' || path === '/stream/') {
    isCombined = true;
    names = (parsed.searchParams.get('streams') ?? '').split('/');
  } else {
    return {
      ok: false,
      status: 404,
      message: `no stream route at ${JSON.stringify(parsed.pathname)}; expected ${prefix}/ws/<stream> or ${prefix}/stream?streams=<a>/<b>`,
    };
  }
  const streams = [...new Set(names.filter((n) => n !== ''))];
  const invalid = streams.find((n) => parseStreamName(n, market) === undefined);
  if (invalid !== undefined) {
    return {
      ok: false,
      status: 400,
      message: `invalid stream ${JSON.stringify(invalid)}; expected <lowercase symbol>@kline_<interval> with an interval of ${market}`,
    };
  }
  if (streams.length > maxStreams) {
    return { ok: false, status: 400, message: `${streams.length} streams requested; at most ${maxStreams} per connection` };
  }
  return { ok: true, isCombined, isRouted, streams };
}

/**
 * A request id as Binance accepts it: an integer, a short alphanumeric string, or null (the last
 * two on spot only).
 *
 * @example
 * ```ts
 * const ids: RequestId[] = [1, 'a7', null];
 * ```
 */
export type RequestId = number | string | null;

/**
 * A live control message, parsed; or the error reply it deserves.
 *
 * @example
 * ```ts
 * const message: ControlMessage = { kind: 'SUBSCRIBE', id: 1, streams: ['btcusdt@kline_1m'] };
 * ```
 */
export type ControlMessage =
  | { readonly kind: 'SUBSCRIBE' | 'UNSUBSCRIBE'; readonly id: RequestId; readonly streams: readonly string[] }
  | { readonly kind: 'LIST_SUBSCRIPTIONS'; readonly id: RequestId }
  | { readonly kind: 'SET_PROPERTY'; readonly id: RequestId; readonly value: boolean }
  | { readonly kind: 'GET_PROPERTY'; readonly id: RequestId }
  | { readonly kind: 'error'; readonly id: RequestId; readonly code: number; readonly msg: string };

const METHODS = ['SUBSCRIBE', 'UNSUBSCRIBE', 'LIST_SUBSCRIPTIONS', 'SET_PROPERTY', 'GET_PROPERTY'] as const;
const STRING_ID = /^[A-Za-z0-9]{1,36}$/;

function parseId(value: unknown, market: MarketType): RequestId | undefined {
  if (typeof value === 'number' && Number.isSafeInteger(value)) {
    // Spot takes any 64-bit signed integer; the futures docs say unsigned.
    return market === 'SPOT' || value >= 0 ? value : undefined;
  }
  if (market !== 'SPOT') return undefined;
  if (value === null) return null;
  if (typeof value === 'string' && STRING_ID.test(value)) return value;
  return undefined;
}

/**
 * Parses one text message sent by a client on a kline stream connection. Error replies use
 * Binance's codes: 0 unknown property, 1 bad value type, 2 invalid request, 3 invalid JSON.
 *
 * @example
 * ```ts
 * parseControlMessage('{"method":"LIST_SUBSCRIPTIONS","id":3}', 'SPOT'); // { kind: 'LIST_SUBSCRIPTIONS', id: 3 }
 * ```
 */
export function parseControlMessage(text: string, market: MarketType): ControlMessage {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return { kind: 'error', id: null, code: 3, msg: `Invalid JSON: ${reason}` };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return {
      kind: 'error',
      id: null,
      code: 2,
      msg: `Invalid request: expected a JSON object, got ${Array.isArray(body) ? 'an array' : typeof body}`,
    };
  }
  const request = body as Record<string, unknown>;
  const method = request['method'];
  if (method === undefined) return { kind: 'error', id: null, code: 2, msg: 'Invalid request: missing field `method`' };
  const known = METHODS.find((m) => m === method);
  if (known === undefined) {
    return {
      kind: 'error',
      id: null,
      code: 2,
      msg: `Invalid request: unknown variant ${JSON.stringify(method)}, expected one of ${METHODS.map((m) => `\`${m}\``).join(', ')}`,
    };
  }
  const id = parseId(request['id'], market);
  if (id === undefined) {
    const expected = market === 'SPOT' ? 'an integer, an alphanumeric string of at most 36 characters, or null' : 'an unsigned integer';
    return {
      kind: 'error',
      id: null,
      code: 2,
      msg: `Invalid request: request ID must be ${expected}, got ${JSON.stringify(request['id']) ?? 'nothing'}`,
    };
  }
  const params = request['params'];
  switch (known) {
    case 'LIST_SUBSCRIPTIONS':
      return { kind: known, id };
    case 'SUBSCRIBE':
    case 'UNSUBSCRIBE': {
      if (!Array.isArray(params) || !params.every((p): p is string => typeof p === 'string')) {
        return {
          kind: 'error',
          id,
          code: 2,
          msg: `Invalid request: params must be an array of stream names, got ${JSON.stringify(params) ?? 'nothing'}`,
        };
      }
      if (params.some((p) => parseStreamName(p, market) === undefined)) {
        return { kind: 'error', id, code: 2, msg: 'Invalid request: invalid stream' };
      }
      return { kind: known, id, streams: [...new Set(params)] };
    }
    case 'SET_PROPERTY':
    case 'GET_PROPERTY': {
      const expectedLength = known === 'SET_PROPERTY' ? 2 : 1;
      if (!Array.isArray(params) || params.length === 0) {
        return { kind: 'error', id, code: 2, msg: 'Invalid request: property name must be a string' };
      }
      if (params.length > expectedLength) return { kind: 'error', id, code: 2, msg: 'Invalid request: too many parameters' };
      if (typeof params[0] !== 'string') return { kind: 'error', id, code: 2, msg: 'Invalid request: property name must be a string' };
      if (params[0] !== 'combined') return { kind: 'error', id, code: 0, msg: 'Unknown property' };
      if (known === 'GET_PROPERTY') return { kind: known, id };
      if (typeof params[1] !== 'boolean') return { kind: 'error', id, code: 1, msg: 'Invalid value type: expected Boolean' };
      return { kind: known, id, value: params[1] };
    }
  }
}

/**
 * The success reply to a control message.
 *
 * @example
 * ```ts
 * resultReply(null, 1); // '{"result":null,"id":1}'
 * ```
 */
export function resultReply(result: unknown, id: RequestId): string {
  return JSON.stringify({ result, id });
}

/**
 * The error reply to a control message.
 *
 * @example
 * ```ts
 * errorReply(2, 'Invalid request: invalid stream', 7); // '{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":7}'
 * ```
 */
export function errorReply(code: number, msg: string, id: RequestId): string {
  return JSON.stringify({ error: { code, msg }, id });
}

/**
 * First trade id of a candle. The simulator has no trades, so ids are derived from time: the
 * candle opening at `t` starts at `t * 100`, which keeps ids growing from candle to candle and
 * makes every interval agree on the trades they share.
 */
function firstTradeId(openTime: number): number {
  return openTime * 100;
}

/**
 * The kline event for one candle, as JSON text. `f`/`L` are -1 when the candle has no trades.
 *
 * @example
 * ```ts
 * klineEventJson('BTCUSDT', '1m', row, false, Date.now());
 * // '{"e":"kline","E":...,"s":"BTCUSDT","k":{"t":...,"T":...,"s":"BTCUSDT","i":"1m","f":...,...}}'
 * ```
 */
export function klineEventJson(symbol: string, interval: Interval, row: RawKline, isClosed: boolean, eventTime: number): string {
  const trades = row[8];
  const first = trades > 0 ? firstTradeId(row[0]) : -1;
  const last = trades > 0 ? first + trades - 1 : -1;
  return JSON.stringify({
    e: 'kline',
    E: eventTime,
    s: symbol,
    k: {
      t: row[0],
      T: row[6],
      s: symbol,
      i: interval,
      f: first,
      L: last,
      o: row[1],
      c: row[4],
      h: row[2],
      l: row[3],
      v: row[5],
      n: trades,
      x: isClosed,
      q: row[7],
      V: row[9],
      Q: row[10],
      B: row[11],
    },
  });
}

/**
 * Wraps an event for a combined-stream connection. `stream` must be a validated stream name (it
 * is not escaped).
 *
 * @example
 * ```ts
 * combinedFrame('btcusdt@kline_1m', '{"e":"kline"}'); // '{"stream":"btcusdt@kline_1m","data":{"e":"kline"}}'
 * ```
 */
export function combinedFrame(stream: string, dataJson: string): string {
  return `{"stream":"${stream}","data":${dataJson}}`;
}

/**
 * The `serverShutdown` event: bare on raw connections, under the `!serverShutdown` stream on
 * combined ones.
 *
 * @example
 * ```ts
 * serverShutdownJson(false, 1770123456789); // '{"e":"serverShutdown","E":1770123456789}'
 * ```
 */
export function serverShutdownJson(isCombined: boolean, eventTime: number): string {
  const event = `{"e":"serverShutdown","E":${eventTime}}`;
  return isCombined ? combinedFrame('!serverShutdown', event) : event;
}
