import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CorruptFileError, InvalidArgumentError } from '../../src/errors.js';
import { KLINE_COLUMNS, type RawKline } from '../../src/binance/kline.js';
import { writeDailyFile } from '../../src/files/daily-file.js';
import { expectedOpenTimes } from '../../src/files/daily-layout.js';
import { writeSnapshot } from '../../src/files/snapshot.js';
import { inspectFile, type DailyFileInspection, type SnapshotInspection } from '../../src/cli/inspect-report.js';
import { CandleMap } from '../../src/store/candle-map.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Date.parse('2024-01-24T00:00:00Z');
const NY = 'America/New_York';
const DAY = '2024-01-24';
const AFTER = Date.parse('2025-01-01T00:00:00Z');

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'inspect-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function kline(openTime: number, barMs: number, close = '1.5'): RawKline {
  return [openTime, '1.0', '2.0', '0.5', close, '10', openTime + barMs - 1, '15', 4, '5', '7.5', '0'];
}

/** A snapshot of BTCUSDT (10 minutes, 3 missing after the 4th) and ETHUSDT (5 minutes, whole). */
async function snapshotWithGap(): Promise<string> {
  const map = new CandleMap(20);
  const btc = map.add('BTCUSDT');
  for (const m of [0, 1, 2, 3, 7, 8, 9]) btc.upsert(kline(T0 + m * MIN, MIN, String(100 + m)));
  const eth = map.add('ETHUSDT');
  for (let m = 0; m < 5; m += 1) eth.upsert(kline(T0 + m * MIN, MIN));
  const written = await writeSnapshot(dir, map, { market: 'UM', bar: '1m' }, { now: T0 + HOUR });
  return written.file;
}

describe('inspectFile on a snapshot', () => {
  it('reports the header and, per symbol, rows, first and last open time, coverage and gaps', async () => {
    const file = await snapshotWithGap();
    const report = JSON.parse(await inspectFile(file, { format: 'json' })) as SnapshotInspection;
    expect(report).toMatchObject({
      kind: 'snapshot',
      market: 'UM',
      bar: '1m',
      length: 20,
      createdAt: '2024-01-24T01:00:00.000Z',
      symbolCount: 2,
    });
    const [btc, eth] = report.symbols;
    expect(btc).toMatchObject({ symbol: 'BTCUSDT', rows: 7, firstOpenTime: T0, lastOpenTime: T0 + 9 * MIN, span: 10, coveragePercent: 70 });
    expect(btc?.gaps).toEqual([{ from: T0 + 4 * MIN, to: T0 + 6 * MIN, candles: 3 }]);
    expect(btc?.candles).toEqual([]);
    expect(eth).toMatchObject({ symbol: 'ETHUSDT', rows: 5, span: 5, coveragePercent: 100, gaps: [] });
  });

  it('with a symbol, shows its newest candles in the table', async () => {
    const file = await snapshotWithGap();
    const text = await inspectFile(file, { format: 'table', symbol: 'BTCUSDT', rows: 2 });
    const lines = text.split('\n');
    expect(lines[1]).toBe('market UM  bar 1m  LENGTH 20  created 2024-01-24T01:00:00.000Z  symbols 2');
    expect(text).toContain('BTCUSDT     7  2024-01-24T00:00:00Z  2024-01-24T00:09:00Z  70.00%    1 (3 candles)');
    expect(text).toContain('    2024-01-24T00:04:00Z .. 2024-01-24T00:06:00Z  (3 candles missing)');
    expect(text).not.toContain('ETHUSDT');
    const candleLines = lines.filter((l) => l.startsWith('  2024-01-24T00:0'));
    expect(candleLines.map((l) => l.trim().split(/\s+/)[4])).toEqual(['108', '109']);
  });

  it('gives the same content as CSV tables: summary, gaps, candles', async () => {
    const file = await snapshotWithGap();
    const [summary, gaps, candles] = (await inspectFile(file, { format: 'csv', rows: 1 })).trimEnd().split('\n\n');
    expect(summary?.split('\n')).toEqual([
      'file,market,bar,length,created_at,symbol,rows,first_open_time,last_open_time,span,coverage_percent,gaps,missing_candles',
      `${file},UM,1m,20,2024-01-24T01:00:00.000Z,BTCUSDT,7,${T0},${T0 + 9 * MIN},10,70,1,3`,
      `${file},UM,1m,20,2024-01-24T01:00:00.000Z,ETHUSDT,5,${T0},${T0 + 4 * MIN},5,100,0,0`,
    ]);
    expect(gaps?.split('\n')).toEqual(['symbol,from,to,candles', `BTCUSDT,${T0 + 4 * MIN},${T0 + 6 * MIN},3`]);
    expect(candles?.split('\n')).toEqual([
      ['symbol', ...KLINE_COLUMNS].join(','),
      `BTCUSDT,${T0 + 9 * MIN},1,2,0.5,109,10,${T0 + 10 * MIN - 1},15,4,5,7.5,0`,
      `ETHUSDT,${T0 + 4 * MIN},1,2,0.5,1.5,10,${T0 + 5 * MIN - 1},15,4,5,7.5,0`,
    ]);
  });

  it('recognises a snapshot by its content, whatever its name', async () => {
    const renamed = join(dir, 'copy.bin');
    await copyFile(await snapshotWithGap(), renamed);
    expect(JSON.parse(await inspectFile(renamed, { format: 'json' }))).toMatchObject({ kind: 'snapshot', symbolCount: 2 });
  });

  it('refuses a symbol the snapshot does not hold, naming those it does', async () => {
    const file = await snapshotWithGap();
    await expect(inspectFile(file, { format: 'table', symbol: 'SOLUSDT' })).rejects.toThrow(
      new InvalidArgumentError(`symbol SOLUSDT is not in ${file}; it holds 2 symbols (BTCUSDT, ETHUSDT)`),
    );
    await expect(inspectFile(file, { format: 'table', symbol: 'sol' })).rejects.toThrow(/symbol "sol" is not a Binance symbol/);
  });

  it('throws CorruptFileError for a truncated snapshot', async () => {
    const file = await snapshotWithGap();
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(0, bytes.length - 40));
    const error = await inspectFile(file, { format: 'table' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CorruptFileError);
    expect((error as CorruptFileError).message).toContain(file);
  });
});

describe('inspectFile on a daily file', () => {
  const bar = '1h';
  const day = expectedOpenTimes(DAY, NY, bar);

  it('reports rows against the local day, the manifest gaps and a complete verification', async () => {
    // Hours 5 to 7 had no trading: recorded as a gap.
    const rows = day.filter((_, i) => i < 5 || i > 7).map((t) => kline(t, HOUR));
    const gap = { from: day[5] as number, to: day[7] as number, candles: 3 };
    const { path } = await writeDailyFile({
      root: dir,
      market: 'UM',
      timezone: NY,
      bar,
      day: DAY,
      symbol: 'BTCUSDT',
      rows,
      gaps: [gap],
      source: 'rest',
      now: AFTER,
    });
    const report = JSON.parse(await inspectFile(path, { format: 'json', rows: 2 })) as DailyFileInspection;
    expect(report).toMatchObject({
      kind: 'daily',
      market: 'UM',
      timezone: NY,
      bar: '1h',
      day: DAY,
      symbol: 'BTCUSDT',
      rows: 21,
      expected: 24,
      gaps: [{ ...gap, recorded: true }],
      verification: { status: 'complete', problem: null },
    });
    expect(report.candles).toEqual(rows.slice(-2));

    const table = await inspectFile(path, { format: 'table', rows: 0 });
    expect(table).toContain('market UM  timezone America/New_York  bar 1h  day 2024-01-24  symbol BTCUSDT');
    expect(table).toContain('rows 21 of 24 expected (87.50%)');
    expect(table).toContain('gaps 1 (3 candles)');
    expect(table).toContain('  2024-01-24T10:00:00Z .. 2024-01-24T12:00:00Z  (3 candles missing)  recorded in the manifest: no trading');
    expect(table).toContain('verification complete');
    expect(table).not.toContain('newest');
  });

  it('lists candles missing but not recorded as gaps, and says the file is incomplete', async () => {
    const rows = day.filter((_, i) => i !== 10).map((t) => kline(t, HOUR));
    const { path } = await writeDailyFile({
      root: dir,
      market: 'UM',
      timezone: NY,
      bar,
      day: DAY,
      symbol: 'ETHUSDT',
      rows: rows.slice(0, 20),
      gaps: [],
      source: 'rest',
      now: AFTER,
    });
    const csv = await inspectFile(path, { format: 'csv' });
    const [summary, gaps, candles] = csv.trimEnd().split('\n\n');
    const fields = summary?.split('\n')[1]?.split(',') ?? [];
    expect(fields.slice(1, 8)).toEqual(['UM', NY, '1h', DAY, 'ETHUSDT', '20', '24']);
    expect(fields.slice(10, 13)).toEqual(['2', '4', 'incomplete']);
    // The problem has commas: it is quoted.
    expect(summary).toMatch(/,incomplete,".*: 20 rows \+ 0 recorded gap candles, expected 24 candles"$/);
    expect(gaps?.split('\n')).toEqual(['from,to,candles,recorded', `${day[10]},${day[10]},1,false`, `${day[21]},${day[23]},3,false`]);
    expect(candles?.split('\n')).toHaveLength(11);
  });

  it('reads a file outside the daily layout, inferring the bar, with verification unknown', async () => {
    const rows = [0, 1, 3].map((i) => kline((day[0] as number) + i * HOUR, HOUR));
    const file = join(dir, 'loose.csv');
    await writeFile(file, `${KLINE_COLUMNS.join(',')}\n${rows.map((r) => r.join(',')).join('\n')}\n`);
    const report = JSON.parse(await inspectFile(file, { format: 'json' })) as DailyFileInspection;
    expect(report).toMatchObject({ bar: '1h', day: null, expected: null, rows: 3, verification: { status: 'unknown' } });
    expect(report.gaps).toEqual([{ from: (day[0] as number) + 2 * HOUR, to: (day[0] as number) + 2 * HOUR, candles: 1, recorded: false }]);
  });

  it('throws CorruptFileError naming the line of a bad row', async () => {
    const folder = join(dir, 'UM-AmericaNew_York-1h', '2024-01', DAY);
    await mkdir(folder, { recursive: true });
    const file = join(folder, 'BTCUSDT.csv');
    await writeFile(file, `${KLINE_COLUMNS.join(',')}\n${kline(day[0] as number, HOUR).join(',')}\n1,2,3\n`);
    await expect(inspectFile(file, { format: 'table' })).rejects.toThrow(
      new CorruptFileError(file, 'line 3 has 3 values, expected 12: "1,2,3"'),
    );
  });
});

describe('inspectFile on anything else', () => {
  it('throws CorruptFileError for a file that is neither kind', async () => {
    const file = join(dir, 'notes.txt');
    await writeFile(file, 'hello');
    await expect(inspectFile(file, { format: 'table' })).rejects.toThrow(CorruptFileError);
    await expect(inspectFile(file, { format: 'table' })).rejects.toThrow(/is neither a snapshot .* nor a daily candle file/);
  });

  it('names a missing file', async () => {
    const file = join(dir, 'missing.msgpack');
    await expect(inspectFile(file, { format: 'json' })).rejects.toThrow(
      `${file} does not exist; expected the path of a snapshot or a daily candle file`,
    );
  });
});
