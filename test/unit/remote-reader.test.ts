/**
 * The remote reader's pure parts: the serve rule on a remote ring (final rows, holes, the
 * publisher's state, the clock), the exchange clock estimate, and the light import surface of
 * candle-server/remote (no server, exchange, simulator or NATS client loaded at import).
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ExchangeClockEstimate } from '../../src/remote/exchange-clock.js';
import { RemoteSymbol } from '../../src/remote/remote-symbol.js';
import { CandleRing } from '../../src/store/candle-ring.js';

const row = (openTime: number, close = 1): number[] => [openTime, 1, 2, 0.5, close, 10, openTime + 999, 15, 4, 5, 7.5, 0];

describe('RemoteSymbol', () => {
  const filled = (): RemoteSymbol => {
    const remote = new RemoteSymbol('BTCUSDT', '1s', new CandleRing(10));
    for (let t = 1000; t <= 5000; t += 1000) remote.applyCandle(row(t), true, t + 1000);
    return remote;
  };

  it('serves final consecutive rows with a forming newest, fresh on the exchange clock', () => {
    const remote = filled();
    expect(remote.applyCandle(row(6000), false, 6500)).toBe('written');
    expect(remote.isServable(3000, 7000)).toBe(true);
    expect(remote.state(3000, 7000, true)).toBe('fresh');
    // Too old on the clock: the newest opened, or the confirmation came, securityMs ago or more.
    expect(remote.isServable(3000, 9000)).toBe(false);
    expect(remote.state(3000, 9000, true)).toBe('stale');
  });

  it('refuses a hole, a non-final row before the newest, and the publisher repairing', () => {
    const hole = filled();
    hole.applyCandle(row(8000), false, 8500); // 6000 and 7000 not stored yet
    expect(hole.holeFrom()).toBe(6000);
    expect(hole.isServable(3000, 8600)).toBe(false);
    expect(hole.state(3000, 8600, true)).toBe('repairing');
    hole.applyCandle(row(6000), true, 8500);
    hole.applyCandle(row(7000), true, 8500);
    expect(hole.isServable(3000, 8600)).toBe(true);

    const forming = filled();
    forming.applyCandle(row(6000), false, 6500);
    forming.applyCandle(row(7000), false, 7100); // 6000's close not stored yet
    expect(forming.hasFinalRows()).toBe(false);
    expect(forming.isServable(3000, 7200)).toBe(false);

    const repairing = filled();
    repairing.publisherState = 'repairing';
    expect(repairing.isServable(3000, 5500)).toBe(false);
  });

  it('never lets a late forming update overwrite a final row; reports a close once', () => {
    const remote = filled();
    expect(remote.applyCandle(row(6000, 42), true, 7000)).toBe('closed');
    expect(remote.applyCandle(row(6000, 41), false, 6900)).toBe('ignored');
    expect(remote.ring.view().close(remote.ring.count - 1)).toBe(42);
    expect(remote.applyCandle(row(6000, 42), true, 7000)).toBe('written');
    expect(remote.confirmedAt).toBe(7000);
  });
});

describe('ExchangeClockEstimate', () => {
  it('takes the largest recent offset, and keeps the last estimate when the times stop', () => {
    let local = 100_000;
    const clock = new ExchangeClockEstimate(() => local);
    expect(clock.now()).toBe(100_000);
    clock.observe(100_800); // delayed by 200
    clock.observe(101_000);
    clock.observe(100_900);
    expect(clock.now()).toBe(101_000);
    local += 300_000; // nothing observed for five minutes: the clock goes on
    expect(clock.now()).toBe(401_000);
    clock.observe(400_500); // a smaller offset, once the old ones are out of the window
    expect(clock.now()).toBe(400_500);
  });
});

describe('candle-server/remote import surface', () => {
  it('loads only the store, binance, wire format, errors, log and util modules at import (the NATS client on start)', () => {
    const src = join(dirname(fileURLToPath(import.meta.url)), '../../src');
    const seen = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'utf8');
      // Static value imports and re-exports; `import type` and `export type` are erased.
      for (const match of text.matchAll(/^(?:import|export) (?!type )[^;]*? from '(\.[^']+)'/gms)) {
        visit(join(dirname(file), (match[1] as string).replace(/\.js$/, '.ts')));
      }
    };
    visit(join(src, 'remote/index.ts'));
    const loaded = [...seen].map((file) => relative(src, file)).sort();
    const allowed =
      /^(remote\/|store\/candle-(ring|view)\.ts|binance\/(intervals|kline|markets|symbols)\.ts|publish\/wire\.ts|errors\.ts|log\.ts|util\/(abort|emitter|nats-url)\.ts)/;
    expect(loaded.filter((file) => !allowed.test(file))).toEqual([]);
    expect(loaded).toContain('publish/wire.ts');
  });
});
