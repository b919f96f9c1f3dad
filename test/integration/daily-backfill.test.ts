import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ArchiveClient } from '../../src/exchange/archive-client.js';
import { closeTimeOf } from '../../src/binance/intervals.js';
import { MARKETS, type MarketType } from '../../src/binance/markets.js';
import { BinanceRestClient } from '../../src/exchange/rest-client.js';
import { WeightGovernor } from '../../src/exchange/weight-governor.js';
import { parseKlineCsv } from '../../src/binance/kline-csv.js';
import { readManifest, verifyDailyFile } from '../../src/files/daily-file.js';
import { dailyFilePath, expectedOpenTimes, localDayBounds } from '../../src/files/daily-layout.js';
import type { SimulatedBinance } from '../../src/sim/index.js';
import { DailyBackfill, type BackfillProgress } from '../../src/sync/daily-backfill.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { startSim } from '../helpers/sim.js';

const TZ = 'America/New_York';

describe('daily back-fill against the simulated exchange', () => {
  let sim: SimulatedBinance;
  let dir: string;
  let rest: Map<MarketType, BinanceRestClient>;
  let archives: Map<MarketType, ArchiveClient>;
  let log: CapturedLog;

  beforeAll(async () => {
    sim = await startSim({ markets: ['SPOT', 'UM'], archiveDelayMs: 0 });
  });
  afterAll(async () => {
    await sim.close();
  });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'candle-backfill-'));
    log = captureLog();
    sim.stats.reset();
    rest = new Map();
    archives = new Map();
    for (const market of ['SPOT', 'UM'] as const) {
      const governor = new WeightGovernor({ name: MARKETS[market].budgetGroup, serverWeight: 0.75 });
      rest.set(market, new BinanceRestClient({ market, baseUrl: sim.urls(market).rest, governor, retries: 1, backoffBaseMs: 10 }));
      archives.set(market, new ArchiveClient({ market, baseUrl: sim.urls(market).archive, backoffBaseMs: 10 }));
    }
  });
  afterEach(async () => {
    for (const client of rest.values()) {
      await client.close();
      client.governor.close();
    }
    for (const client of archives.values()) await client.close();
    await rm(dir, { recursive: true, force: true });
  });

  function backfill(market: MarketType, bar: '1m' | '1h', useArchives: boolean, onProgress?: (p: BackfillProgress) => void): DailyBackfill {
    return new DailyBackfill({
      market,
      bar,
      timezone: TZ,
      candleDir: dir,
      rest: rest.get(market) as BinanceRestClient,
      archives: useArchives ? archives.get(market) : undefined,
      now: () => sim.world.now(),
      logger: log.logger,
      ...(onProgress ? { onProgress } : {}),
    });
  }

  /** The exchange's final candles of a local day, as REST strings. */
  function exchangeDay(market: MarketType, symbol: string, bar: '1m' | '1h', day: string): string[] {
    const now = sim.world.now();
    return expectedOpenTimes(day, TZ, bar)
      .map((openTime) => sim.world.kline(market, symbol, bar, openTime, now))
      .filter((row) => row !== undefined)
      .map((row) => row.join(','));
  }

  async function fileRows(market: MarketType, bar: '1m' | '1h', day: string, symbol: string): Promise<string[]> {
    const path = dailyFilePath(dir, market, TZ, bar, day, symbol);
    return parseKlineCsv(await readFile(path, 'utf8'), path).map((row) => row.join(','));
  }

  it('writes REST-only days that equal the exchange candle for candle, with the original log lines', async () => {
    const days = ['2024-03-09', '2024-03-10'];
    const summaries = await backfill('SPOT', '1m', false).run(days, ['BTCUSDT', 'ETHUSDT']);
    expect(summaries).toEqual([
      { day: '2024-03-09', all: 2, skip: 0, success: 2, warn: 0, error: 0 },
      { day: '2024-03-10', all: 2, skip: 0, success: 2, warn: 0, error: 0 },
    ]);
    // 2024-03-10 is the spring-forward day in New York: 23 hours.
    expect(await fileRows('SPOT', '1m', '2024-03-10', 'BTCUSDT')).toHaveLength(1380);
    expect(await fileRows('SPOT', '1m', '2024-03-09', 'BTCUSDT')).toHaveLength(1440);
    expect(await fileRows('SPOT', '1m', '2024-03-10', 'ETHUSDT')).toEqual(exchangeDay('SPOT', 'ETHUSDT', '1m', '2024-03-10'));
    const messages = log.messages();
    expect(messages).toContain('DOWNLOAD BTCUSDT 1m 10/03/2024');
    expect(messages).toContain('COMPLETE DOWNLOAD 10/03/2024 (ALL:2 SKIP:0 SUC:2 WARN:0 ERROR:0)');
    expect(sim.stats.requestsTo('/api/v3/klines')).toBeGreaterThanOrEqual(8);
  });

  it('takes archived UTC days from the archives and costs no klines request when they cover the day', async () => {
    const progress: BackfillProgress[] = [];
    const [summary] = await backfill('UM', '1m', true, (p) => progress.push(p)).run(['2024-11-03'], ['BTCUSDT']);
    expect(summary).toMatchObject({ success: 1, error: 0 });
    // The fall-back day: 25 hours.
    expect(await fileRows('UM', '1m', '2024-11-03', 'BTCUSDT')).toEqual(exchangeDay('UM', 'BTCUSDT', '1m', '2024-11-03'));
    expect(await fileRows('UM', '1m', '2024-11-03', 'BTCUSDT')).toHaveLength(1500);
    expect(progress).toEqual([{ symbol: 'BTCUSDT', day: '2024-11-03', outcome: 'success', fromArchive: 1500, fromRest: 0 }]);
    expect(sim.stats.requestsTo('/fapi/v1/klines')).toBe(0);
    const manifest = await readManifest(join(dir, 'UM-AmericaNew_York-1m', '2024-11', '2024-11-03'));
    expect(manifest?.symbols.BTCUSDT?.source).toBe('archive');
  });

  it('falls back to REST when an archive fails its checksum, and still writes the exchange candles', async () => {
    sim.faults.archiveCorrupt = true;
    try {
      const [summary] = await backfill('UM', '1h', true).run(['2024-01-24'], ['ETHUSDT']);
      expect(summary).toMatchObject({ success: 1, error: 0 });
    } finally {
      sim.faults.archiveCorrupt = false;
    }
    expect(await fileRows('UM', '1h', '2024-01-24', 'ETHUSDT')).toEqual(exchangeDay('UM', 'ETHUSDT', '1h', '2024-01-24'));
    expect(sim.stats.requestsTo('/fapi/v1/klines')).toBeGreaterThan(0);
    expect(log.messages()).toContain('archive unusable; REST fills that day');
  });

  it('records a trading suspension as a gap, counts the day as WARN, and skips it next time', async () => {
    const day = '2024-02-01';
    const { start } = localDayBounds(day, TZ);
    const from = start + 5 * 3_600_000;
    const to = from + 30 * 60_000;
    sim.suspend('SPOT', 'BNBUSDT', from, to);
    const [first] = await backfill('SPOT', '1m', true).run([day], ['BNBUSDT', 'BTCUSDT']);
    expect(first).toMatchObject({ all: 2, success: 1, warn: 1, error: 0 });
    const path = dailyFilePath(dir, 'SPOT', TZ, '1m', day, 'BNBUSDT');
    const report = await verifyDailyFile(path, { market: 'SPOT', timezone: TZ, bar: '1m', day, symbol: 'BNBUSDT' });
    expect(report).toMatchObject({ status: 'complete', rows: 1410, expected: 1440 });
    expect(report.gaps).toEqual([{ from, to: to - 60_000, candles: 30 }]);
    expect(log.messages()).toContain('COMPLETE DOWNLOAD 01/02/2024 (ALL:2 SKIP:0 SUC:1 WARN:1 ERROR:0)');
    sim.stats.reset();
    const [second] = await backfill('SPOT', '1m', true).run([day], ['BNBUSDT', 'BTCUSDT']);
    expect(second).toMatchObject({ skip: 2 });
    expect(sim.stats.totalRequests).toBe(0);
  });

  it('fetches a corrupt file again and leaves complete ones alone', async () => {
    const day = '2024-05-05';
    await backfill('SPOT', '1h', false).run([day], ['BTCUSDT', 'ETHUSDT']);
    const path = dailyFilePath(dir, 'SPOT', TZ, '1h', day, 'BTCUSDT');
    const text = await readFile(path, 'utf8');
    await writeFile(path, text.replace(/,(\d)/, ',9$1'));
    const [summary] = await backfill('SPOT', '1h', false).run([day], ['BTCUSDT', 'ETHUSDT']);
    expect(summary).toMatchObject({ skip: 1, success: 1 });
    expect(await readFile(path, 'utf8')).toBe(text);
    expect(log.lines().some((line) => line.msg === 'daily file not complete; fetching it again' && line.symbol === 'BTCUSDT')).toBe(true);
  });

  it('refuses a day that has not ended on the exchange and counts it as ERROR', async () => {
    const now = sim.world.now();
    const today = new Intl.DateTimeFormat('en-CA', { timeZone: TZ }).format(now);
    const [summary] = await backfill('SPOT', '1m', false).run([today], ['BTCUSDT']);
    expect(summary).toMatchObject({ error: 1, success: 0 });
    const last = expectedOpenTimes(today, TZ, '1m').at(-1) as number;
    expect(closeTimeOf('1m', last)).toBeGreaterThan(now);
  });
});
