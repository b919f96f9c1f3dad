import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CorruptFileError, InvalidArgumentError } from '../../src/errors.js';
import { closeTimeOf, gapsOf } from '../../src/binance/intervals.js';
import { formatKlineCsv, parseKlineCsv } from '../../src/binance/kline-csv.js';
import type { RawKline } from '../../src/binance/kline.js';
import type { Interval } from '../../src/binance/markets.js';
import {
  MANIFEST_NAME,
  readDailyFile,
  readManifest,
  verifyDailyFile,
  writeDailyFile,
  type DailyFileKey,
} from '../../src/files/daily-file.js';
import { dailyFilePath, expectedOpenTimes } from '../../src/files/daily-layout.js';

const NY = 'America/New_York';
const AFTER_2024 = Date.parse('2025-06-01T00:00:00Z');

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'daily-file-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A final candle with decimals written the way Binance writes them (trailing zeros kept). */
function candle(openTime: number, bar: Interval, index: number): RawKline {
  return [
    openTime,
    '43000.10000000',
    `${43010 + index}.00000000`,
    '42990.5',
    '43001.20000000',
    '0.00162008',
    closeTimeOf(bar, openTime),
    '69.66001000',
    index,
    '0.00081004',
    '34.83000500',
    '0',
  ];
}

function dayRows(day: string, bar: Interval = '1m'): RawKline[] {
  return expectedOpenTimes(day, NY, bar).map((t, i) => candle(t, bar, i));
}

function keyOf(day: string, symbol = 'BTCUSDT', bar: Interval = '1m'): DailyFileKey {
  return { market: 'UM', timezone: NY, bar, day, symbol };
}

async function write(day: string, rows: RawKline[], gaps = gapsOf([], '1m'), symbol = 'BTCUSDT') {
  return writeDailyFile({ root, ...keyOf(day, symbol), rows, gaps, source: 'rest', now: AFTER_2024 });
}

describe('daily CSV format', () => {
  it('parses back to the same bytes, odd decimals included', () => {
    const text = formatKlineCsv(dayRows('2024-01-15').slice(0, 5));
    expect(text.split('\n')[0]).toBe(
      'open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore',
    );
    expect(text.split('\n')[1]).toBe(
      '1705294800000,43000.10000000,43010.00000000,42990.5,43001.20000000,0.00162008,1705294859999,69.66001000,0,0.00081004,34.83000500,0',
    );
    const rows = parseKlineCsv(text, 'x.csv');
    expect(rows[0]![1]).toBe('43000.10000000');
    expect(rows[0]![5]).toBe('0.00162008');
    expect(typeof rows[0]![0]).toBe('number');
    expect(typeof rows[0]![8]).toBe('number');
    expect(formatKlineCsv(rows)).toBe(text);
  });

  it('refuses a bad header, a short row, a non-canonical time and a missing final line end', () => {
    const text = formatKlineCsv(dayRows('2024-01-15').slice(0, 3));
    expect(() => parseKlineCsv(text.replace('open_time', 'time'), 'x.csv')).toThrow(/line 1/);
    expect(() => parseKlineCsv(text.replace(',0\n1705294860000', '\n1705294860000'), 'x.csv')).toThrow(/line 2 has 11 values/);
    expect(() => parseKlineCsv(text.replace('1705294800000', '01705294800000'), 'x.csv')).toThrow(/line 2: open_time/);
    expect(() => parseKlineCsv(text.slice(0, -10), 'x.csv')).toThrow(CorruptFileError);
    expect(() => parseKlineCsv(text.slice(0, -10), 'x.csv')).toThrow(/truncated/);
  });
});

describe('writing and verifying a day', () => {
  it('writes a full winter day that verifies complete and records it in the manifest', async () => {
    const { path, entry } = await write('2024-01-24', dayRows('2024-01-24'));
    expect(path).toBe(dailyFilePath(root, 'UM', NY, '1m', '2024-01-24', 'BTCUSDT'));
    expect(await verifyDailyFile(path, keyOf('2024-01-24'))).toEqual({ status: 'complete', rows: 1440, expected: 1440, gaps: [] });
    const manifest = await readManifest(dirname(path));
    expect(manifest?.symbols.BTCUSDT).toEqual(entry);
    expect(entry).toMatchObject({ rows: 1440, expected: 1440, gaps: [], source: 'rest' });
    expect(entry.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await readDailyFile(path, keyOf('2024-01-24'))).toEqual(dayRows('2024-01-24'));
    expect((await readdir(dirname(path))).sort()).toEqual(['BTCUSDT.csv', MANIFEST_NAME]);
  });

  it('verifies the 23-hour and 25-hour days with 1380 and 1500 rows', async () => {
    const spring = await write('2024-03-10', dayRows('2024-03-10'));
    const fall = await write('2024-11-03', dayRows('2024-11-03'));
    expect(await verifyDailyFile(spring.path, keyOf('2024-03-10'))).toMatchObject({ status: 'complete', rows: 1380, expected: 1380 });
    expect(await verifyDailyFile(fall.path, keyOf('2024-11-03'))).toMatchObject({ status: 'complete', rows: 1500, expected: 1500 });
  });

  it('reports a missing file as missing, with the whole day as its gap', async () => {
    const path = dailyFilePath(root, 'UM', NY, '1m', '2024-01-24', 'ETHUSDT');
    const report = await verifyDailyFile(path, keyOf('2024-01-24', 'ETHUSDT'));
    expect(report).toMatchObject({ status: 'missing', rows: 0, expected: 1440 });
    expect(report.gaps).toEqual([{ from: Date.parse('2024-01-24T05:00:00Z'), to: Date.parse('2024-01-25T04:59:00Z'), candles: 1440 }]);
    expect(await readDailyFile(path)).toBeUndefined();
  });

  it('a day with a trading suspension verifies complete with its gap recorded', async () => {
    const all = dayRows('2024-01-24');
    const suspended = all.slice(600, 630).map((row) => row[0]);
    const gaps = gapsOf(suspended, '1m');
    expect(gaps).toEqual([{ from: suspended[0], to: suspended[29], candles: 30 }]);
    const { path, entry } = await write('2024-01-24', [...all.slice(0, 600), ...all.slice(630)], gaps);
    expect(entry).toMatchObject({ rows: 1410, expected: 1440, gaps });
    expect(await verifyDailyFile(path, keyOf('2024-01-24'))).toEqual({ status: 'complete', rows: 1410, expected: 1440, gaps });
  });

  it('a day lacking candles not recorded as gaps is incomplete', async () => {
    const all = dayRows('2024-01-24');
    const { path } = await write('2024-01-24', all.slice(0, 1000));
    const report = await verifyDailyFile(path, keyOf('2024-01-24'));
    expect(report).toMatchObject({ status: 'incomplete', rows: 1000, expected: 1440 });
    expect(report.gaps).toEqual([{ from: all[1000]![0], to: all[1439]![0], candles: 440 }]);
  });

  it('a CSV without a manifest entry is complete only with every row', async () => {
    const full = dailyFilePath(root, 'UM', NY, '1m', '2024-01-24', 'BTCUSDT');
    const part = dailyFilePath(root, 'UM', NY, '1m', '2024-01-24', 'ETHUSDT');
    const all = dayRows('2024-01-24');
    await write('2024-01-24', all); // creates the folder
    await rm(join(dirname(full), MANIFEST_NAME));
    await writeFile(part, formatKlineCsv(all.slice(1)));
    expect((await verifyDailyFile(full, keyOf('2024-01-24'))).status).toBe('complete');
    expect(await verifyDailyFile(part, keyOf('2024-01-24', 'ETHUSDT'))).toMatchObject({ status: 'incomplete', rows: 1439 });
  });

  it('a file truncated mid-row is corrupt; truncated at a line end it fails its hash', async () => {
    const { path } = await write('2024-01-24', dayRows('2024-01-24'));
    const text = await readFile(path, 'utf8');
    await truncate(path, text.length - 25);
    const midRow = await verifyDailyFile(path, keyOf('2024-01-24'));
    expect(midRow.status).toBe('corrupt');
    expect(midRow.problem).toMatch(/truncated/);

    await writeFile(path, text.slice(0, text.lastIndexOf('\n', text.length - 2) + 1));
    const atLineEnd = await verifyDailyFile(path, keyOf('2024-01-24'));
    expect(atLineEnd.status).toBe('corrupt');
    expect(atLineEnd.problem).toMatch(/sha256/);
  });

  it('a flipped byte in a price is caught by the hash', async () => {
    const { path } = await write('2024-01-24', dayRows('2024-01-24'));
    const bytes = await readFile(path);
    const at = bytes.indexOf('43000.1');
    bytes[at + 6] = '2'.charCodeAt(0); // still a valid decimal: only the hash can tell
    await writeFile(path, bytes);
    const report = await verifyDailyFile(path, keyOf('2024-01-24'));
    expect(report).toMatchObject({ status: 'corrupt', rows: 1440 });
    expect(report.problem).toMatch(/sha256 [0-9a-f]{64} differs/);
  });

  it('rows that do not belong to the day make the file corrupt', async () => {
    const path = dailyFilePath(root, 'UM', NY, '1m', '2024-01-24', 'BTCUSDT');
    await write('2024-01-24', dayRows('2024-01-24'));
    await writeFile(path, formatKlineCsv(dayRows('2024-01-25')));
    const report = await verifyDailyFile(path, keyOf('2024-01-24'));
    expect(report.status).toBe('corrupt');
    expect(report.problem).toMatch(/outside the local day/);
  });

  it('refuses rows that are out of order, outside the day, misaligned or still forming, and bad gaps', async () => {
    const all = dayRows('2024-01-24');
    const swapped = [all[1]!, all[0]!, ...all.slice(2)];
    await expect(write('2024-01-24', swapped)).rejects.toThrow(/row 1 .* does not come after/);
    await expect(write('2024-01-24', [...all, ...dayRows('2024-01-25').slice(0, 1)])).rejects.toThrow(/outside the local day/);
    const misaligned = [...all.slice(0, 5), candle(all[5]![0] + 1, '1m', 5)];
    await expect(write('2024-01-24', misaligned)).rejects.toThrow(/not aligned to 1m/);
    const wrongClose: RawKline = [...all[0]!];
    wrongClose[6] += 1;
    await expect(write('2024-01-24', [wrongClose])).rejects.toThrow(/close time/);
    await expect(writeDailyFile({ root, ...keyOf('2024-01-24'), rows: all, gaps: [], source: 'live', now: all[1439]![6] })).rejects.toThrow(
      /only closed candles/,
    );
    await expect(write('2024-01-24', all.slice(1), [{ from: all[0]![0], to: all[1]![0], candles: 2 }])).rejects.toThrow(/gap 0/);
    await expect(write('2024-01-24', all.slice(2), [{ from: all[0]![0], to: all[1]![0], candles: 3 }])).rejects.toThrow(
      /spans 2 candles, not 3/,
    );
    await expect(write('2024-01-24', all, [], '../x')).rejects.toBeInstanceOf(InvalidArgumentError);
    // Nothing reached the disk.
    await expect(readdir(root)).resolves.toEqual([]);
  });

  it('keeps every manifest entry when 50 symbols of one day are written at once', async () => {
    const rows = dayRows('2024-01-24');
    const symbols = Array.from({ length: 50 }, (_, i) => `SYM${i}USDT`);
    await Promise.all(symbols.map((symbol) => write('2024-01-24', rows, [], symbol)));
    const folder = dirname(dailyFilePath(root, 'UM', NY, '1m', '2024-01-24', 'BTCUSDT'));
    const manifest = await readManifest(folder);
    expect(Object.keys(manifest?.symbols ?? {}).sort()).toEqual([...symbols].sort());
    const reports = await Promise.all(symbols.map((symbol) => verifyDailyFile(join(folder, `${symbol}.csv`), keyOf('2024-01-24', symbol))));
    expect(reports.every((report) => report.status === 'complete')).toBe(true);
    expect((await readdir(folder)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('a corrupt manifest costs only its records: full files stay complete, gapped ones need a fetch', async () => {
    const all = dayRows('2024-01-24');
    const { path } = await write('2024-01-24', all);
    const gapped = await write('2024-01-24', all.slice(1), gapsOf([all[0]![0]], '1m'), 'ETHUSDT');
    await writeFile(join(dirname(path), MANIFEST_NAME), '{"version": 1, "symbols": ');
    await expect(readManifest(dirname(path))).rejects.toBeInstanceOf(CorruptFileError);
    expect((await verifyDailyFile(path, keyOf('2024-01-24'))).status).toBe('complete');
    expect((await verifyDailyFile(gapped.path, keyOf('2024-01-24', 'ETHUSDT'))).status).toBe('incomplete');
    // The next write starts a fresh manifest.
    await write('2024-01-24', all, [], 'BNBUSDT');
    expect(Object.keys((await readManifest(dirname(path)))?.symbols ?? {})).toEqual(['BNBUSDT']);
  });
});
