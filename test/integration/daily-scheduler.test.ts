import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatInTimeZone } from 'date-fns-tz';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyDailyFile } from '../../src/files/daily-file.js';
import { dailyFilePath, lastFullLocalDays } from '../../src/files/daily-layout.js';
import { parseCandleRule, type CandleRuleInput } from '../../src/rule.js';
import type { SimulatedBinance } from '../../src/sim/index.js';
import { DailyScheduler } from '../../src/sync/daily-scheduler.js';
import { MarketConnection } from '../../src/sync/market-connection.js';
import { captureLog } from '../helpers/log.js';
import { startSim } from '../helpers/sim.js';

const TZ = 'Asia/Tokyo';

describe('daily files of a running service', () => {
  let sim: SimulatedBinance;
  let dir: string;

  beforeAll(async () => {
    sim = await startSim({ markets: ['UM', 'CM'], archiveDelayMs: 0 });
    dir = await mkdtemp(join(tmpdir(), 'candle-daily-files-'));
  });
  afterAll(async () => {
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  });

  function rule(overrides: CandleRuleInput) {
    return parseCandleRule({
      MARKET: 'UM',
      SYMBOLS: ['BTCUSDT'],
      BAR: '1h',
      TIMEZONE: TZ,
      CANDLE_DIR: join(dir, 'candles'),
      CACHE_DIR: join(dir, 'cache'),
      REST_BASE_URL: sim.urls('UM').rest,
      ARCHIVE_BASE_URL: sim.urls('UM').archive,
      ...overrides,
    });
  }

  it('back-fills the last LOCAL_CANDLE_DAYS full local days at start', async () => {
    const connection = new MarketConnection({ rule: rule({ LOCAL_CANDLE_DAYS: 3 }), budgetScope: 'daily-files-1' });
    const files = new DailyScheduler({ connection, symbols: () => ['BTCUSDT', 'ETHUSDT'] });
    try {
      await connection.start();
      const summaries = await files.backfillRecent();
      const days = lastFullLocalDays(sim.world.now(), TZ, 3);
      expect(summaries.map((s) => s.day)).toEqual(days);
      for (const summary of summaries) expect(summary).toMatchObject({ all: 2, error: 0 });
      for (const day of days) {
        const key = { market: 'UM', timezone: TZ, bar: '1h', day, symbol: 'ETHUSDT' } as const;
        const report = await verifyDailyFile(dailyFilePath(join(dir, 'candles'), 'UM', TZ, '1h', day, 'ETHUSDT'), key);
        expect(report).toMatchObject({ status: 'complete', rows: 24 });
      }
    } finally {
      await files.close();
      await connection.close();
    }
  });

  it('writes yesterday at DOWNLOAD_TIME in TIMEZONE', async () => {
    // Two seconds from now on the local clock of TIMEZONE; cron fires on whole seconds.
    const at = Date.now() + 2_000;
    const downloadTime = formatInTimeZone(at, TZ, 'HH:mm:ss');
    const log = captureLog();
    const connection = new MarketConnection({
      rule: rule({
        DOWNLOAD_TIME: downloadTime,
        MARKET: 'CM',
        SYMBOLS: ['BTCUSD_PERP'],
        REST_BASE_URL: sim.urls('CM').rest,
        ARCHIVE_BASE_URL: sim.urls('CM').archive,
      }),
      budgetScope: 'daily-files-2',
      logger: log.logger,
    });
    const files = new DailyScheduler({ connection, symbols: () => ['BTCUSD_PERP'], logger: log.logger });
    try {
      await connection.start();
      files.startSchedule();
      files.startSchedule();
      const next = files.nextScheduledRun();
      expect(next && Math.abs(next.getTime() - at)).toBeLessThan(1000);
      const [yesterday] = lastFullLocalDays(sim.world.now(), TZ, 1);
      const deadline = Date.now() + 10_000;
      while (!log.messages().some((m) => m.startsWith('COMPLETE DOWNLOAD')) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const [y, m, d] = (yesterday as string).split('-');
      expect(log.messages()).toContain(`COMPLETE DOWNLOAD ${d}/${m}/${y} (ALL:1 SKIP:0 SUC:1 WARN:0 ERROR:0)`);
      const key = { market: 'CM', timezone: TZ, bar: '1h', day: yesterday as string, symbol: 'BTCUSD_PERP' } as const;
      const report = await verifyDailyFile(dailyFilePath(join(dir, 'candles'), 'CM', TZ, '1h', key.day, key.symbol), key);
      expect(report.status).toBe('complete');
    } finally {
      await files.close();
      await connection.close();
    }
  });

  it('schedules nothing when DOWNLOAD_TIME is null', async () => {
    const connection = new MarketConnection({ rule: rule({ DOWNLOAD_TIME: null }), budgetScope: 'daily-files-3' });
    const files = new DailyScheduler({ connection, symbols: () => ['BTCUSDT'] });
    files.startSchedule();
    expect(files.nextScheduledRun()).toBeUndefined();
    await files.close();
    await connection.close();
  });

  it('gives UM and CM one weight budget, closed with its last user', async () => {
    const um = new MarketConnection({ rule: rule({}), budgetScope: 'daily-files-4' });
    const cm = new MarketConnection({ rule: rule({ MARKET: 'CM', SYMBOLS: ['BTCUSD_PERP'] }), budgetScope: 'daily-files-4' });
    expect(um.governor).toBe(cm.governor);
    await um.close();
    expect(cm.governor.isClosed).toBe(false);
    await cm.close();
    expect(cm.governor.isClosed).toBe(true);
  });
});
