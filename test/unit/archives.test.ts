import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { strToU8, zipSync } from 'fflate';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CorruptFileError, InvalidArgumentError } from '../../src/errors.js';
import { closeTimeOf } from '../../src/binance/intervals.js';
import type { RawKline } from '../../src/binance/kline.js';
import { archiveFileName, archiveUrl, checksumUrl, parseChecksumFile, readArchiveRows, verifyArchive } from '../../src/binance/archives.js';
import { assembleLocalDay, verifyDailyFile, writeDailyFile } from '../../src/files/daily-file.js';
import { utcDaysCovering } from '../../src/files/daily-layout.js';

const BASE = 'https://data.binance.vision';
const NY = 'America/New_York';
const MINUTE = 60_000;
const FUTURES_HEADER = 'open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore';

/** CSV lines of a UTC day of 1m candles as the archive writes them; `scale` 1000 gives microseconds. */
function utcDayLines(utcDate: string, scale = 1, skip: ReadonlySet<number> = new Set()): string[] {
  const start = Date.parse(`${utcDate}T00:00:00Z`);
  const lines: string[] = [];
  for (let i = 0; i < 1440; i += 1) {
    if (skip.has(i)) continue;
    const open = start + i * MINUTE;
    lines.push(
      `${open * scale},0.00162008,0.00162100,0.00161900,0.00162000,1234.50000000,${(closeTimeOf('1m', open) + 1) * scale - 1},2.00003000,${i},600.00,0.97200000,0`,
    );
  }
  return lines;
}

function zipOf(csvName: string, text: string): Uint8Array {
  return zipSync({ [csvName]: strToU8(text) });
}

function checksumOf(bytes: Uint8Array, name: string): string {
  return `${createHash('sha256').update(bytes).digest('hex')}  ${name}`;
}

describe('archive URLs', () => {
  it('follows the data.binance.vision layout for each market', () => {
    expect(archiveUrl(BASE, 'SPOT', 'BTCUSDT', '1m', '2024-01-24')).toBe(
      'https://data.binance.vision/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-24.zip',
    );
    expect(archiveUrl(`${BASE}/`, 'UM', 'BTCUSDT', '1h', '2024-01-24')).toBe(
      'https://data.binance.vision/data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-01-24.zip',
    );
    expect(checksumUrl('http://127.0.0.1:8080', 'CM', 'BTCUSD_PERP', '1d', '2024-01-24')).toBe(
      'http://127.0.0.1:8080/data/futures/cm/daily/klines/BTCUSD_PERP/1d/BTCUSD_PERP-1d-2024-01-24.zip.CHECKSUM',
    );
  });

  it('refuses intervals without daily files, bad symbols and bad dates', () => {
    expect(() => archiveUrl(BASE, 'UM', 'BTCUSDT', '1w', '2024-01-24')).toThrow(/no daily archive/);
    expect(() => archiveUrl(BASE, 'UM', 'BTCUSDT', '1s', '2024-01-24')).toThrow(InvalidArgumentError);
    expect(archiveUrl(BASE, 'SPOT', 'BTCUSDT', '1s', '2024-01-24')).toMatch(/\/1s\/BTCUSDT-1s-2024-01-24\.zip$/);
    expect(() => archiveUrl(BASE, 'UM', '../BTC', '1m', '2024-01-24')).toThrow(InvalidArgumentError);
    expect(() => archiveUrl(BASE, 'UM', 'BTCUSDT', '1m', '2024-13-01')).toThrow(InvalidArgumentError);
  });
});

describe('archive checksums', () => {
  const name = archiveFileName('BTCUSDT', '1m', '2024-01-24');
  const zip = zipOf('BTCUSDT-1m-2024-01-24.csv', `${utcDayLines('2024-01-24').join('\n')}\n`);

  it('parses the "<sha256>  <name>" form', () => {
    const hex = 'AB'.repeat(32);
    expect(parseChecksumFile(`${hex}  ${name}`)).toEqual({ sha256: 'ab'.repeat(32), fileName: name });
    expect(parseChecksumFile(`${hex}  ${name}\n`).fileName).toBe(name);
    expect(() => parseChecksumFile('not a checksum')).toThrow(CorruptFileError);
    expect(() => parseChecksumFile(`${hex.slice(2)}  ${name}`)).toThrow(/sha256 hex/);
  });

  it('accepts a matching archive and refuses a changed byte or another file name', () => {
    const checksum = checksumOf(zip, name);
    expect(() => verifyArchive(zip, checksum, name)).not.toThrow();
    const damaged = zip.slice();
    const middle = damaged.length >> 1;
    damaged[middle] = damaged[middle]! ^ 0xff;
    expect(() => verifyArchive(damaged, checksum, name)).toThrow(CorruptFileError);
    expect(() => verifyArchive(damaged, checksum, name)).toThrow(/sha256 is [0-9a-f]{64}, the checksum file says/);
    expect(() => verifyArchive(zip, checksum, 'ETHUSDT-1m-2024-01-24.zip')).toThrow(/names "BTCUSDT-1m-2024-01-24.zip"/);
  });
});

describe('reading archive rows', () => {
  it('normalises spot microsecond timestamps to milliseconds and keeps decimals exactly', () => {
    const name = archiveFileName('BTCUSDT', '1m', '2025-01-02');
    const rows = readArchiveRows(zipOf('BTCUSDT-1m-2025-01-02.csv', `${utcDayLines('2025-01-02', 1000).join('\n')}\n`), name);
    const start = Date.parse('2025-01-02T00:00:00Z');
    expect(rows).toHaveLength(1440);
    expect(rows[0]).toEqual([
      start,
      '0.00162008',
      '0.00162100',
      '0.00161900',
      '0.00162000',
      '1234.50000000',
      start + MINUTE - 1,
      '2.00003000',
      0,
      '600.00',
      '0.97200000',
      '0',
    ]);
    expect(rows[1439]![6]).toBe(Date.parse('2025-01-03T00:00:00Z') - 1);
  });

  it('detects and skips a futures header row, with CRLF line ends', () => {
    const name = archiveFileName('BTCUSDT', '1m', '2024-01-24');
    const text = [FUTURES_HEADER, ...utcDayLines('2024-01-24')].join('\r\n');
    const rows = readArchiveRows(zipOf('BTCUSDT-1m-2024-01-24.csv', text), name);
    expect(rows).toHaveLength(1440);
    expect(rows[0]![0]).toBe(Date.parse('2024-01-24T00:00:00Z'));
  });

  it('names the line of a bad row, and refuses rows out of order or a broken zip', () => {
    const name = archiveFileName('BTCUSDT', '1m', '2024-01-24');
    const lines = utcDayLines('2024-01-24');
    const bad = [...lines];
    bad[2] = bad[2]!.replace('0.00162100', 'NaN');
    expect(() => readArchiveRows(zipOf('BTCUSDT-1m-2024-01-24.csv', bad.join('\n')), name)).toThrow(
      /line 3: high must be a decimal string/,
    );
    const swapped = [lines[1]!, lines[0]!, ...lines.slice(2)];
    expect(() => readArchiveRows(zipOf('BTCUSDT-1m-2024-01-24.csv', swapped.join('\n')), name)).toThrow(/line 2: open time/);
    expect(() => readArchiveRows(new Uint8Array([1, 2, 3, 4]), name)).toThrow(CorruptFileError);
    expect(() => readArchiveRows(zipSync({ 'other.txt': strToU8('x') }), name)).toThrow(/expected "BTCUSDT-1m-2024-01-24.csv"/);
  });
});

describe('assembling a local day from UTC archives', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'archive-file-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const read = (date: string, skip?: ReadonlySet<number>): RawKline[] =>
    readArchiveRows(zipOf(`BTCUSDT-1m-${date}.csv`, `${utcDayLines(date, 1, skip).join('\n')}\n`), archiveFileName('BTCUSDT', '1m', date));

  it('joins the two UTC files around New York midnight into one complete local day', async () => {
    expect(utcDaysCovering('2024-01-24', NY)).toEqual(['2024-01-24', '2024-01-25']);
    const { rows, missing } = assembleLocalDay(
      '2024-01-24',
      NY,
      '1m',
      new Map([
        ['2024-01-24', read('2024-01-24')],
        ['2024-01-25', read('2024-01-25')],
      ]),
    );
    expect(missing).toEqual([]);
    expect(rows).toHaveLength(1440);
    expect(rows[0]![0]).toBe(Date.parse('2024-01-24T05:00:00Z'));
    expect(rows[1439]![0]).toBe(Date.parse('2024-01-25T04:59:00Z'));

    const { path } = await writeDailyFile({
      root,
      market: 'UM',
      timezone: NY,
      bar: '1m',
      day: '2024-01-24',
      symbol: 'BTCUSDT',
      rows,
      gaps: [],
      source: 'archive',
    });
    const report = await verifyDailyFile(path, { market: 'UM', timezone: NY, bar: '1m', day: '2024-01-24', symbol: 'BTCUSDT' });
    expect(report.status).toBe('complete');
  });

  it('lists what the archives lack: a UTC file not yet published and a suspension inside one', () => {
    const { rows, missing } = assembleLocalDay('2024-01-24', NY, '1m', new Map([['2024-01-24', read('2024-01-24', new Set([600, 601]))]]));
    // 05:00-24:00 UTC of the 24th, less two minutes; 00:00-05:00 UTC of the 25th absent.
    expect(rows).toHaveLength(1140 - 2);
    expect(missing).toHaveLength(300 + 2);
    expect(missing[0]).toBe(Date.parse('2024-01-24T10:00:00Z'));
    expect(missing[1]).toBe(Date.parse('2024-01-24T10:01:00Z'));
    expect(missing[2]).toBe(Date.parse('2024-01-25T00:00:00Z'));
    expect(missing.at(-1)).toBe(Date.parse('2024-01-25T04:59:00Z'));
  });

  it('assembles the 25-hour fall-back day from its two UTC files', () => {
    const { rows, missing } = assembleLocalDay(
      '2024-11-03',
      NY,
      '1m',
      new Map([
        ['2024-11-03', read('2024-11-03')],
        ['2024-11-04', read('2024-11-04')],
      ]),
    );
    expect(rows).toHaveLength(1500);
    expect(missing).toEqual([]);
  });
});
