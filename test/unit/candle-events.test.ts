/**
 * Event names are checked by the type system. The `@ts-expect-error` lines are the test: if a
 * misspelt name compiled, `npm run typecheck` (part of `npm test`) would fail on an unused directive.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { CandleServer } from '../../src/candle-server.js';
import type { CandleEvents } from '../../src/sync/candle-sync.js';
import { SafeEmitter } from '../../src/util/emitter.js';

describe('event names', () => {
  it('a server accepts its events and rejects a misspelt one at compile time', () => {
    const server = new CandleServer({ instType: 'SPOT', rule: { SYMBOLS: ['BTCUSDT'] } });
    const offClosed = server.on('candleClosed', (event) => {
      expectTypeOf(event.symbol).toEqualTypeOf<string>();
      expectTypeOf(event.openTime).toEqualTypeOf<number>();
    });
    // @ts-expect-error 'candleclosed' is not an event of CandleServer
    const offMisspelt = server.on('candleclosed', () => undefined);
    expect(typeof offClosed).toBe('function');
    expect(typeof offMisspelt).toBe('function');
    expectTypeOf<keyof CandleEvents>().toEqualTypeOf<'candleClosed' | 'gap' | 'stale' | 'rows' | 'reconnect'>();
  });

  it('an emitter accepts only the names and arguments of its map', () => {
    const emitter = new SafeEmitter<{ closed: (symbol: string) => void }>(() => undefined);
    const seen: string[] = [];
    emitter.on('closed', (symbol) => seen.push(symbol));
    emitter.emit('closed', 'BTCUSDT');
    // @ts-expect-error no such event
    emitter.emit('opened', 'BTCUSDT');
    // @ts-expect-error wrong argument type
    emitter.emit('closed', 42);
    expect(seen).toEqual(['BTCUSDT', 42]);
  });
});
