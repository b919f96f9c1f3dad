import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Packr, Unpackr } from 'msgpackr';
import { AbortedError, CorruptFileError } from '../../src/errors.js';
import { KLINE_COLUMNS } from '../../src/binance/kline.js';
import { listSnapshots, loadNewestValidSnapshot, loadSnapshot, snapshotFileName, writeSnapshot } from '../../src/files/snapshot.js';
import { CandleMap } from '../../src/store/candle-map.js';

const MIN = 60_000;
const T0 = Date.parse('2024-01-01T00:00:00Z');
const UM_1M = { market: 'UM', bar: '1m' } as const;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapshot-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A map of `symbols` symbols with `rows` one-minute candles each, values derived from position. */
function sampleMap(length: number, symbols: string[], rows: number): CandleMap {
  const map = new CandleMap(length);
  symbols.forEach((symbol, s) => {
    const ring = map.add(symbol);
    for (let m = 0; m < rows; m++) {
      const t = T0 + m * MIN;
      ring.upsertNumbers(t, s + m / 7, s + m, s, s + m / 3, m * 1.25, t + MIN - 1, m * 9.5, m, m / 2, m / 5);
    }
  });
  return map;
}

/** Captures warnings as objects with their message. */
function warningLog() {
  const lines: Array<{ level: number; msg: string; file?: string }> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
  return { logger, warnings: () => lines.filter((l) => l.level === 40) };
}

function expectSameRows(actual: CandleMap, expected: CandleMap): void {
  expect(actual.symbols()).toEqual(expected.symbols());
  for (const symbol of expected.symbols()) {
    expect(actual.get(symbol)?.view().toFloat64Array()).toEqual(expected.get(symbol)?.view().toFloat64Array());
  }
}

describe('snapshot files', () => {
  it('round-trips every ring bit for bit, as plain msgpack objects any reader can decode', async () => {
    const map = sampleMap(50, ['BTCUSDT', 'ETHUSDT', 'EMPTY_X'], 0);
    sampleMap(50, ['BTCUSDT', 'ETHUSDT'], 73).forEach((ring, symbol) => map.get(symbol)?.upsertMany(ring.view().toArray()));
    const written = await writeSnapshot(dir, map, UM_1M, { now: Date.parse('2024-01-24T00:10:00.123Z') });
    expect(basename(written.file)).toBe('snapshot-UM-1m-20240124T001000123Z.msgpack');
    expect(written.symbols).toBe(3);

    const loaded = await loadSnapshot(written.file, { ...UM_1M, length: 50 });
    expect(loaded.lengthChanged).toBe(false);
    expect(loaded.header).toMatchObject({ market: 'UM', bar: '1m', length: 50, symbols: 3, columns: [...KLINE_COLUMNS] });
    expectSameRows(loaded.map, map);
    expect(loaded.map.get('EMPTY_X')?.count).toBe(0);

    // A generic decoder sees: header, one record per symbol with raw little-endian float64, trailer.
    const bytes = await readFile(written.file);
    expect(bytes.length).toBe(written.bytes);
    const objects = new Unpackr({ useRecords: false, mapsAsObjects: true }).unpackMultiple(bytes) as Array<Record<string, unknown>>;
    expect(objects).toHaveLength(5);
    const btc = objects[1] as { symbol: string; rows: number; data: Uint8Array };
    expect(btc.symbol).toBe('BTCUSDT');
    const view = new DataView(btc.data.buffer, btc.data.byteOffset, btc.data.byteLength);
    expect(view.getFloat64(0, true)).toBe(T0 + 23 * MIN);
    expect(objects[4]).toMatchObject({ count: 3 });
  });

  it('round-trips symbol names of 32 characters and more (a longer msgpack string header)', async () => {
    const long = `${'X'.repeat(35)}_PERP`;
    const map = sampleMap(8, [long, 'BTCUSDT'], 8);
    const { file } = await writeSnapshot(dir, map, UM_1M);
    expectSameRows((await loadSnapshot(file, { ...UM_1M, length: 8 })).map, map);
  });

  it('keeps only the newest rows that fit when LENGTH shrank, and says so', async () => {
    const { file } = await writeSnapshot(dir, sampleMap(10, ['BTCUSDT'], 10), UM_1M);
    const loaded = await loadSnapshot(file, { ...UM_1M, length: 4 });
    expect(loaded.lengthChanged).toBe(true);
    const view = loaded.map.get('BTCUSDT')!.view();
    expect(view.length).toBe(4);
    expect(view.openTime(0)).toBe(T0 + 6 * MIN);
    expect(view.openTime(3)).toBe(T0 + 9 * MIN);
  });

  it('skips a snapshot with a corrupt byte with a warning and uses the previous one', async () => {
    const older = sampleMap(20, ['BTCUSDT', 'ETHUSDT'], 15);
    await writeSnapshot(dir, older, UM_1M, { now: T0 });
    const { file } = await writeSnapshot(dir, sampleMap(20, ['BTCUSDT', 'ETHUSDT'], 20), UM_1M, { now: T0 + 1000 });
    const bytes = await readFile(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01; // inside the raw float64 data
    await writeFile(file, bytes);

    await expect(loadSnapshot(file, { ...UM_1M, length: 20 })).rejects.toThrow(/checksum/);
    const { logger, warnings } = warningLog();
    const loaded = await loadNewestValidSnapshot(dir, { ...UM_1M, length: 20 }, logger);
    expect(loaded?.file).not.toBe(file);
    expectSameRows(loaded!.map, older);
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ file });
    expect(warnings()[0]?.msg).toMatch(/checksum/);
  });

  it('skips truncated snapshots and ones whose header names another market or bar', async () => {
    const good = sampleMap(20, ['BTCUSDT'], 5);
    await writeSnapshot(dir, good, UM_1M, { now: T0 });
    // A SPOT snapshot renamed as a UM one: the header must catch it.
    const spot = await writeSnapshot(dir, sampleMap(20, ['BTCUSDT'], 9), { market: 'SPOT', bar: '1m' }, { now: T0 + 1000 });
    await rename(spot.file, join(dir, snapshotFileName('UM', '1m', T0 + 1000)));
    const cut = await writeSnapshot(dir, sampleMap(20, ['BTCUSDT'], 9), UM_1M, { now: T0 + 2000 });
    const bytes = await readFile(cut.file);
    await writeFile(cut.file, bytes.subarray(0, bytes.length - 40));

    const { logger, warnings } = warningLog();
    const loaded = await loadNewestValidSnapshot(dir, { ...UM_1M, length: 20 }, logger);
    expect(loaded?.file).toBe(join(dir, snapshotFileName('UM', '1m', T0)));
    expectSameRows(loaded!.map, good);
    expect(warnings().map((w) => w.msg)).toEqual([
      expect.stringMatching(/ends early|not valid MessagePack/),
      expect.stringMatching(/market is "SPOT", expected UM/),
    ]);
    await expect(loadSnapshot(cut.file, { market: 'UM', bar: '5m', length: 20 })).rejects.toThrow(/bar is "1m", expected 5m/);
  });

  it('rejects a well-formed file whose checksum is right but whose rows are out of order', async () => {
    const packr = new Packr({ useRecords: false });
    const { createHash } = await import('node:crypto');
    const header = packr.pack({
      format: 'candle-server-snapshot',
      version: 1,
      market: 'UM',
      bar: '1m',
      length: 5,
      columns: [...KLINE_COLUMNS],
      dtype: '<f8',
      createdAt: new Date(T0).toISOString(),
      symbols: 1,
    });
    const rows = new Float64Array(24);
    rows[0] = T0 + MIN;
    rows[12] = T0;
    const record = packr.pack({ symbol: 'BTCUSDT', rows: 2, data: new Uint8Array(rows.buffer) });
    const checksum = createHash('sha256').update(header).update(record).digest('hex');
    const file = join(dir, snapshotFileName('UM', '1m', T0));
    await writeFile(file, Buffer.concat([header, record, packr.pack({ checksum, count: 1 })]));
    const error = await loadSnapshot(file, { ...UM_1M, length: 5 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CorruptFileError);
    expect((error as Error).message).toMatch(/BTCUSDT\) holds invalid rows/);
  });

  it('keeps the last K snapshots of its own market and bar only', async () => {
    const map = sampleMap(5, ['BTCUSDT'], 3);
    const other = await writeSnapshot(dir, map, { market: 'UM', bar: '5m' }, { now: T0 });
    const files: string[] = [];
    for (let i = 1; i <= 5; i++) files.push((await writeSnapshot(dir, map, UM_1M, { now: T0 + i * 1000, keep: 2 })).file);
    expect(await listSnapshots(dir, 'UM', '1m')).toEqual([files[4], files[3]]);
    expect(await listSnapshots(dir, 'UM', '5m')).toEqual([other.file]);
    expect(await listSnapshots(join(dir, 'missing'), 'UM', '1m')).toEqual([]);
  });

  it('leaves no file under a snapshot name when the write is aborted mid-way', async () => {
    const map = sampleMap(200, ['AAAUSDT', 'BBBUSDT', 'CCCUSDT', 'DDDUSDT'], 200);
    const controller = new AbortController();
    // Abort once the write has started: after the first symbol is read for writing.
    const ring = map.get('AAAUSDT')!;
    const original = ring.view.bind(ring);
    ring.view = () => {
      controller.abort();
      return original();
    };
    await expect(writeSnapshot(dir, map, UM_1M, { signal: controller.signal })).rejects.toBeInstanceOf(AbortedError);
    expect(await readdir(dir)).toEqual([]);
    expect(await loadNewestValidSnapshot(dir, { ...UM_1M, length: 200 })).toBeUndefined();
  });

  it('never lists the temp file of a write that died before its rename', async () => {
    const { file } = await writeSnapshot(dir, sampleMap(5, ['BTCUSDT'], 3), UM_1M, { now: T0 });
    const partial = (await readFile(file)).subarray(0, 30);
    await writeFile(join(dir, `.${snapshotFileName('UM', '1m', T0 + 5000)}.0123456789abcdef.tmp`), partial);
    expect(await listSnapshots(dir, 'UM', '1m')).toEqual([file]);
  });
});
