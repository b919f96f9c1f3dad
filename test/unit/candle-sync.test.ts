/**
 * CandleSync's orchestration against a fake exchange (the small SyncExchange interface): which
 * ranges a warm start asks for, and what it serves afterwards. No network, no files.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closeTimeOf, openTimeOf } from '../../src/binance/intervals.js';
import type { RawKline } from '../../src/binance/kline.js';
import { silentLogger } from '../../src/log.js';
import { parseCandleRule } from '../../src/rule.js';
import { CandleMap } from '../../src/store/candle-map.js';
import { CandleSync, type CandleEvents, type SyncExchange } from '../../src/sync/candle-sync.js';
import { SafeEmitter } from '../../src/util/emitter.js';

const MINUTE = 60_000;
const LENGTH = 30;
// 40 s into a minute, so that the forming candle is well inside its minute.
const NOW = Date.UTC(2026, 0, 5, 12, 0) + 40_000;

function kline(openTime: number): RawKline {
  const price = String(100 + ((openTime / MINUTE) % 50));
  return [openTime, price, price, price, price, '1', closeTimeOf('1m', openTime), '100', 1, '0.5', '50', '0'];
}

/** An exchange with every 1m candle, answering klinesRange as Binance would at `now`. */
function fakeExchange(now: () => number): SyncExchange & { readonly calls: Array<{ from: number; to: number }> } {
  const calls: Array<{ from: number; to: number }> = [];
  return {
    calls,
    clock: { now, offsetMs: 0, rttMs: 1 },
    governor: { bannedUntil: undefined, usedWeight: 0, budget: 4500 },
    rest: {
      klinesRange: (_symbol, _interval, from, to) => {
        calls.push({ from, to });
        const rows: RawKline[] = [];
        for (let t = from; t <= Math.min(to, openTimeOf('1m', now())); t += MINUTE) rows.push(kline(t));
        return Promise.resolve(rows);
      },
    },
  };
}

describe('CandleSync warm start', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'candle-sync-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function setup(): { sync: CandleSync; map: CandleMap; exchange: ReturnType<typeof fakeExchange> } {
    const rule = parseCandleRule({
      MARKET: 'SPOT',
      BAR: '1m',
      LENGTH,
      LOCAL_CANDLE_DAYS: 0,
      CANDLE_DIR: join(dir, 'candles'),
      CACHE_DIR: join(dir, 'cache'),
    });
    const map = new CandleMap(LENGTH);
    const exchange = fakeExchange(() => NOW);
    const events = new SafeEmitter<CandleEvents>(() => undefined);
    const sync = new CandleSync({ rule, exchange, map, events, logger: silentLogger() });
    return { sync, map, exchange };
  }

  const current = openTimeOf('1m', NOW);
  const start = current - (LENGTH - 1) * MINUTE;

  it('fetches the window in one range on a cold start and serves it', async () => {
    const { sync, exchange } = setup();
    await sync.warm(['BTCUSDT'], { useStreams: false });
    expect(exchange.calls).toEqual([{ from: start, to: current }]);
    const ring = sync.servable('BTCUSDT', 120_000);
    expect(ring?.count).toBe(LENGTH);
    expect(ring?.oldestOpenTime).toBe(start);
  });

  it('forgets a snapshot older than the window instead of fetching from its end', async () => {
    const { sync, map, exchange } = setup();
    // A snapshot taken three hours ago: every row is outside today's window.
    const old = map.add('BTCUSDT');
    for (let i = 0; i < LENGTH; i += 1) old.upsert(kline(current - 180 * MINUTE + i * MINUTE));
    await sync.warm(['BTCUSDT'], { useStreams: false });
    // One range, the window: not the 150 candles between the snapshot and the window.
    expect(exchange.calls).toEqual([{ from: start, to: current }]);
    const ring = sync.servable('BTCUSDT', 120_000);
    expect(ring?.oldestOpenTime).toBe(start);
    expect(ring?.gaps('1m')).toEqual([]);
  });

  it('keeps the part of a snapshot inside the window and fetches only from its newest row', async () => {
    const { sync, map, exchange } = setup();
    // A snapshot ten minutes old: twenty of its rows are still inside the window.
    const snapshot = map.add('BTCUSDT');
    for (let i = 0; i < LENGTH; i += 1) snapshot.upsert(kline(current - 10 * MINUTE - (LENGTH - 1 - i) * MINUTE));
    await sync.warm(['BTCUSDT'], { useStreams: false });
    expect(exchange.calls).toEqual([{ from: current - 10 * MINUTE, to: current }]);
    expect(sync.servable('BTCUSDT', 120_000)?.gaps('1m')).toEqual([]);
  });
});
