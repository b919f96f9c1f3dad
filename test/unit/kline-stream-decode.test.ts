import { describe, expect, it } from 'vitest';
import { KlineFrameDecoder, klineStreamName } from '../../src/exchange/kline-stream-decode.js';
import { MessagePacer } from '../../src/exchange/kline-stream-pacer.js';

function event(overrides: Record<string, unknown> = {}, k: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    e: 'kline',
    E: 1_770_000_030_123,
    s: 'BTCUSDT',
    k: {
      t: 1_770_000_000_000,
      T: 1_770_000_059_999,
      s: 'BTCUSDT',
      i: '1m',
      f: 100,
      L: 200,
      o: '0.0010',
      c: '0.0020',
      h: '0.0025',
      l: '0.0015',
      v: '1000',
      n: 101,
      x: false,
      q: '1.0000',
      V: '500',
      Q: '0.500',
      B: '123456',
      ...k,
    },
    ...overrides,
  };
}

function combined(data: unknown, stream = 'btcusdt@kline_1m'): string {
  return JSON.stringify({ stream, data });
}

describe('KlineFrameDecoder', () => {
  it('decodes a combined kline frame into the 12 REST columns', () => {
    const frame = new KlineFrameDecoder('1m').decode(combined(event({}, { x: true })));
    expect(frame.kind).toBe('kline');
    expect(frame.stream).toBe('btcusdt@kline_1m');
    expect(frame.symbol).toBe('BTCUSDT');
    expect(frame.isClosed).toBe(true);
    expect(frame.eventTime).toBe(1_770_000_030_123);
    expect([...frame.values]).toEqual([1_770_000_000_000, 0.001, 0.0025, 0.0015, 0.002, 1000, 1_770_000_059_999, 1, 101, 500, 0.5, 123456]);
  });

  it('decodes a raw (uncombined) event and reuses one values array', () => {
    const decoder = new KlineFrameDecoder('1m');
    const first = decoder.decode(JSON.stringify(event()));
    const values = first.values;
    expect(first.stream).toBe('');
    const second = decoder.decode(JSON.stringify(event({ s: 'ETHUSDT' }, { s: 'ETHUSDT', c: '7.5' })));
    expect(second.symbol).toBe('ETHUSDT');
    expect(second.values).toBe(values);
    expect(values[4]).toBe(7.5);
  });

  it('recognises serverShutdown, raw and combined, and control replies', () => {
    const decoder = new KlineFrameDecoder('1m');
    expect(decoder.decode('{"e":"serverShutdown","E":5}')).toMatchObject({ kind: 'serverShutdown', eventTime: 5 });
    expect(decoder.decode('{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":6}}').kind).toBe('serverShutdown');
    expect(decoder.decode('{"result":null,"id":3}')).toMatchObject({ kind: 'reply', id: 3, detail: '' });
    const refused = decoder.decode('{"error":{"code":2,"msg":"Invalid request: too many streams"},"id":4}');
    expect(refused).toMatchObject({ kind: 'reply', id: 4 });
    expect(refused.detail).toMatch(/too many streams/);
  });

  it.each([
    ['half a frame', '{"stream":"btcusdt@kline_1m","data":{"e":"kl', /not JSON/],
    ['an array', '[1,2]', /expected a JSON object/],
    ['a non-string stream', combined(event(), 7 as unknown as string), /stream must be a string/],
    ['data not an object', '{"stream":"btcusdt@kline_1m","data":3}', /data of stream "btcusdt@kline_1m" must be an object/],
    ['another event type', combined(event({ e: 'trade' })), /expected e "kline" or "serverShutdown", got "trade"/],
    ['a missing E', combined(event({ E: 'now' })), /E must be a number, got "now"/],
    ['a lower-case symbol', combined(event({ s: 'btcusdt' })), /s must be a Binance symbol, got "btcusdt"/],
    ['k.s differing from s', combined(event({}, { s: 'ETHUSDT' })), /k.s "ETHUSDT" differs from s "BTCUSDT"/],
    ['another interval', combined(event({}, { i: '5m' })), /k.i of BTCUSDT is "5m", expected "1m"/],
    ['a string open time', combined(event({}, { t: '1770000000000' })), /k.t and k.T of BTCUSDT must be times/],
    ['a close before the open', combined(event({}, { T: 1 })), /T >= t/],
    ['a fractional trade count', combined(event({}, { n: 1.5 })), /k.n of BTCUSDT must be a trade count, got 1.5/],
    ['a string closed flag', combined(event({}, { x: 'true' })), /k.x of BTCUSDT must be a boolean/],
    ['a numeric price', combined(event({}, { c: 0.002 })), /k.c of BTCUSDT must be a decimal string, got 0.002/],
    ['an empty volume', combined(event({}, { v: '' })), /k.v of BTCUSDT must be a decimal string, got ""/],
    ['a word for a price', combined(event({}, { h: 'high' })), /k.h of BTCUSDT must be a decimal string, got "high"/],
  ])('reports %s as malformed, saying what was received', (_name, text, detail) => {
    const frame = new KlineFrameDecoder('1m').decode(text);
    expect(frame.kind).toBe('malformed');
    expect(frame.detail).toMatch(detail);
  });

  it('never throws, whatever the text', () => {
    const decoder = new KlineFrameDecoder('1s');
    for (const text of ['', 'null', '"x"', '{}', '{"stream":null}', '{"e":null}', '\u0000', '{"id":1}']) {
      expect(() => decoder.decode(text)).not.toThrow();
      expect(decoder.decode(text).kind).toBe('malformed');
    }
  });
});

describe('klineStreamName', () => {
  it('lower-cases the symbol and keeps the interval as is', () => {
    expect(klineStreamName('BTCUSD_PERP', '1M')).toBe('btcusd_perp@kline_1M');
  });
});

describe('MessagePacer', () => {
  it('lets limit - 2 messages through per window and keeps two free for pongs', () => {
    const pacer = new MessagePacer(5);
    for (let i = 0; i < 3; i += 1) {
      expect(pacer.delayMs(i)).toBe(0);
      pacer.record(i);
    }
    // The fourth waits until the first leaves the window (1 s plus a margin).
    const wait = pacer.delayMs(10);
    expect(wait).toBeGreaterThan(1000 - 10);
    expect(pacer.delayMs(10 + wait)).toBe(0);
  });

  it('counts pongs: a recorded pong delays the next control message', () => {
    const pacer = new MessagePacer(4);
    pacer.record(0); // a control
    pacer.record(1); // a pong
    expect(pacer.delayMs(2)).toBeGreaterThan(0);
  });

  it('never holds more than limit messages in any second, whatever the timing', () => {
    const limit = 5;
    const pacer = new MessagePacer(limit);
    const sent: number[] = [];
    let now = 0;
    for (let i = 0; i < 200; i += 1) {
      now += pacer.delayMs(now) + (i % 3);
      pacer.record(now);
      sent.push(now);
    }
    for (const at of sent) expect(sent.filter((t) => t >= at && t < at + 1000).length).toBeLessThanOrEqual(limit - 2);
  });
});
