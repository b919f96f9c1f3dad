/**
 * Snapshots of the candle map: one file per snapshot, a plain MessagePack stream that any
 * msgpack reader can decode (no msgpackr records or extensions). docs/snapshot-format.md
 * documents it for Python users.
 *
 * ```
 * snapshot-UM-1m-20240124T001000123Z.msgpack
 * +--------------------------------------------------------------------------------------------+
 * | map  header  {format:'candle-server-snapshot', version:1, market, bar, length, columns,   |
 * |               dtype:'<f8', createdAt, symbols:n}                                           |
 * | map  symbol  {symbol:'BTCUSDT', rows:r, data:<bin r*96 bytes: r x 12 float64 LE, oldest>} |  x n
 * | map  trailer {checksum:<sha256 hex of every byte above>, count:n}                         |
 * +--------------------------------------------------------------------------------------------+
 * ```
 *
 * Writing streams one symbol at a time through `writeFileAtomic` (temp file, fsync, rename), so a
 * 276 MB snapshot never sits in memory whole and the event loop gets a turn between symbols; a
 * crash mid-write leaves no file under a snapshot name. Reading streams as well and verifies the
 * header, every record and the checksum before anything is returned.
 *
 * @example
 * ```ts
 * await writeSnapshot('./BINANCE_CACHE', map, { market: 'UM', bar: '1m' });
 * const loaded = await loadNewestValidSnapshot('./BINANCE_CACHE', { market: 'UM', bar: '1m', length: 2880 }, logger);
 * if (loaded) console.log(loaded.map.size, 'symbols from', loaded.file);
 * ```
 */
import { createHash, type Hash } from 'node:crypto';
import { mkdir, open, readdir, unlink, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { Packr, Unpackr } from 'msgpackr';
import { AbortedError, CorruptFileError, InvalidArgumentError } from '../errors.js';
import { KLINE_COLUMNS, KLINE_WIDTH } from '../binance/kline.js';
import { isInterval, isMarketType, SYMBOL_PATTERN, type Interval, type MarketType } from '../binance/markets.js';
import { silentLogger, type Logger } from '../log.js';
import { CandleMap } from '../store/candle-map.js';
import { CandleRing } from '../store/candle-ring.js';
import { isErrno, removeStaleTempFiles, writeFileAtomic } from '../util/atomic-write.js';

/** Value of the header's `format` field. */
export const SNAPSHOT_FORMAT = 'candle-server-snapshot';
/** Current format version; a reader refuses any other. */
export const SNAPSHOT_VERSION = 1;

const ROW_BYTES = KLINE_WIDTH * 8;
const NAME = /^snapshot-(SPOT|UM|CM)-(\w{2,3})-(\d{8}T\d{9}Z)\.msgpack$/;
// A header or trailer is a few hundred bytes; anything near this before the header is garbage.
const MAX_HEADER_BYTES = 64 * 1024;
const READ_BYTES = 256 * 1024;
const IS_LITTLE_ENDIAN = endianness() === 'LE';

/** The first object of a snapshot file. */
export interface SnapshotHeader {
  readonly format: typeof SNAPSHOT_FORMAT;
  readonly version: typeof SNAPSHOT_VERSION;
  readonly market: MarketType;
  readonly bar: Interval;
  /** LENGTH of the map when written: no symbol has more rows. */
  readonly length: number;
  readonly columns: readonly string[];
  /** numpy dtype of the data: little-endian float64. */
  readonly dtype: '<f8';
  /** When the snapshot was taken, ISO 8601 UTC. */
  readonly createdAt: string;
  /** Number of symbol records that follow. */
  readonly symbols: number;
}

/** Which market and bar a snapshot is of. */
export interface SnapshotMeta {
  readonly market: MarketType;
  readonly bar: Interval;
}

/** What a loaded snapshot must match: market and bar exactly; length decides the rings' size. */
export interface SnapshotExpectation extends SnapshotMeta {
  readonly length: number;
}

/** Options of {@link writeSnapshot}. */
export interface WriteSnapshotOptions {
  /** Snapshots of this market and bar to keep, the new one included (default 3). */
  readonly keep?: number;
  /** Aborts between symbols; nothing is left under a snapshot name. */
  readonly signal?: AbortSignal;
  /** Clock for `createdAt` and the file name (default Date.now()). */
  readonly now?: number;
}

/** What {@link writeSnapshot} wrote. */
export interface WrittenSnapshot {
  readonly file: string;
  readonly symbols: number;
  readonly bytes: number;
  /** Older snapshots removed to keep the last `keep`. */
  readonly removed: readonly string[];
}

/** A snapshot read back and verified. */
export interface LoadedSnapshot {
  readonly file: string;
  readonly header: SnapshotHeader;
  readonly map: CandleMap;
  /** True when the snapshot's LENGTH differed from the expected one (rows kept: the newest that fit). */
  readonly lengthChanged: boolean;
}

/** Options of the snapshot readers. */
export interface LoadSnapshotOptions {
  readonly signal?: AbortSignal;
}

/**
 * File name of a snapshot: `snapshot-<market>-<bar>-<UTC yyyymmddThhmmssmmmZ>.msgpack`, so that
 * names sort by time.
 *
 * @example
 * ```ts
 * snapshotFileName('UM', '1m', Date.parse('2024-01-24T00:10:00.123Z'));
 * // 'snapshot-UM-1m-20240124T001000123Z.msgpack'
 * ```
 */
export function snapshotFileName(market: MarketType, bar: Interval, time: number): string {
  const stamp = new Date(time).toISOString().replace(/[-:.]/g, '');
  return `snapshot-${market}-${bar}-${stamp}.msgpack`;
}

/**
 * Writes the whole map as a new snapshot in `dir` (created if needed) and removes all but the
 * newest `keep` snapshots of the same market and bar. Each symbol's rows are copied at the moment
 * its record is written, so symbols may differ by the updates that arrived during the write.
 *
 * @example
 * ```ts
 * const { file, bytes } = await writeSnapshot(cacheDir, map, { market: 'SPOT', bar: '1m' }, { keep: 3, signal });
 * ```
 */
export async function writeSnapshot(
  dir: string,
  map: CandleMap,
  meta: SnapshotMeta,
  options: WriteSnapshotOptions = {},
): Promise<WrittenSnapshot> {
  const keep = options.keep ?? 3;
  if (!Number.isSafeInteger(keep) || keep < 1) {
    throw new InvalidArgumentError(`snapshot keep ${String(keep)} is invalid: expected a positive integer`);
  }
  const now = options.now ?? Date.now();
  const file = join(dir, snapshotFileName(meta.market, meta.bar, now));
  // Taken up front so the header's count holds even if symbols are added or removed meanwhile.
  const entries = [...map.entries()];
  const header: SnapshotHeader = {
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_VERSION,
    market: meta.market,
    bar: meta.bar,
    length: map.length,
    columns: [...KLINE_COLUMNS],
    dtype: '<f8',
    createdAt: new Date(now).toISOString(),
    symbols: entries.length,
  };
  let bytes = 0;
  async function* records(): AsyncGenerator<Uint8Array> {
    const packr = new Packr({ useRecords: false, variableMapSize: true });
    const hash = createHash('sha256');
    const emit = (chunk: Uint8Array): Uint8Array => {
      hash.update(chunk);
      bytes += chunk.byteLength;
      return chunk;
    };
    yield emit(packr.pack(header));
    // One buffer for every symbol's rows: writeFileAtomic writes each chunk before asking for the
    // next, and reusing it spares the GC ~100s of MB of short-lived ArrayBuffers per snapshot.
    const scratch = new Float64Array(map.length * KLINE_WIDTH);
    for (const [symbol, ring] of entries) {
      const view = ring.view();
      const rows = view.toFloat64Array(scratch).subarray(0, view.size);
      yield emit(symbolRecordPrefix(symbol, view.length));
      yield emit(littleEndianBytes(rows));
    }
    const trailer = packr.pack({ checksum: hash.digest('hex'), count: entries.length });
    bytes += trailer.byteLength;
    yield trailer;
  }
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(file, records(), options.signal ? { signal: options.signal } : {});
  const removed: string[] = [];
  for (const old of (await listSnapshots(dir, meta.market, meta.bar)).slice(keep)) {
    await unlink(old).catch((error: unknown) => {
      if (!isErrno(error, 'ENOENT')) throw error;
    });
    removed.push(old);
  }
  // Temp files of a process that died mid-write would otherwise pile up, ~100s of MB each.
  await removeStaleTempFiles(dir);
  return { file, symbols: entries.length, bytes, removed };
}

/**
 * Snapshot files of `market` and `bar` in `dir`, newest first (by the time in their names).
 * A missing `dir` gives an empty list; temp files of unfinished writes are never listed.
 *
 * @example
 * ```ts
 * const [newest] = await listSnapshots(cacheDir, 'UM', '1m');
 * ```
 */
export async function listSnapshots(dir: string, market: MarketType, bar: Interval): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return [];
    throw error;
  }
  const found: Array<{ name: string; stamp: string }> = [];
  for (const name of names) {
    const match = NAME.exec(name);
    if (match && match[1] === market && match[2] === bar) found.push({ name, stamp: match[3] as string });
  }
  found.sort((a, b) => (a.stamp < b.stamp ? 1 : a.stamp > b.stamp ? -1 : 0));
  return found.map((f) => join(dir, f.name));
}

/**
 * Reads and verifies one snapshot. Throws `CorruptFileError` when the file is damaged, truncated,
 * of another format version, or of another market or bar. A different LENGTH is not an error: each
 * ring keeps the newest rows that fit `expect.length`, and `lengthChanged` says so.
 *
 * @example
 * ```ts
 * const { map, header } = await loadSnapshot(file, { market: 'UM', bar: '1m', length: 2880 });
 * ```
 */
export async function loadSnapshot(file: string, expect: SnapshotExpectation, options: LoadSnapshotOptions = {}): Promise<LoadedSnapshot> {
  const reader = new SnapshotReader(file, expect);
  let handle: FileHandle | undefined;
  try {
    handle = await open(file, 'r');
    // One buffer reused for the whole file: read into its tail, decode, move the partial rest to
    // the front. It grows only when a single record is larger than READ_BYTES.
    let buffer = Buffer.allocUnsafe(2 * READ_BYTES);
    let filled = 0;
    for (;;) {
      if (options.signal?.aborted) throw new AbortedError(`reading ${file}`, { cause: options.signal.reason });
      if (buffer.length - filled < READ_BYTES) {
        const larger = Buffer.allocUnsafe(filled + 2 * READ_BYTES);
        buffer.copy(larger, 0, 0, filled);
        buffer = larger;
      }
      const { bytesRead } = await handle.read(buffer, filled, READ_BYTES, null);
      if (bytesRead === 0) break;
      filled += bytesRead;
      const consumed = reader.decode(buffer.subarray(0, filled));
      buffer.copyWithin(0, consumed, filled);
      filled -= consumed;
    }
    return reader.finish();
  } catch (error) {
    if (error instanceof CorruptFileError || error instanceof AbortedError) throw error;
    throw new CorruptFileError(file, `could not be read: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * The newest snapshot of `expect.market` and `expect.bar` in `dir` that loads and verifies; each
 * one skipped (corrupt, truncated, mismatched, unreadable) is logged as a warning. Undefined when
 * none is usable.
 *
 * @example
 * ```ts
 * const loaded = await loadNewestValidSnapshot(cacheDir, { market: 'SPOT', bar: '1m', length: 1440 }, logger);
 * ```
 */
export async function loadNewestValidSnapshot(
  dir: string,
  expect: SnapshotExpectation,
  logger: Logger = silentLogger(),
  options: LoadSnapshotOptions = {},
): Promise<LoadedSnapshot | undefined> {
  for (const file of await listSnapshots(dir, expect.market, expect.bar)) {
    try {
      const loaded = await loadSnapshot(file, expect, options);
      if (loaded.lengthChanged) {
        logger.info(
          { file, snapshotLength: loaded.header.length, length: expect.length },
          `snapshot LENGTH ${loaded.header.length} differs from LENGTH ${expect.length}: kept the newest rows that fit`,
        );
      }
      return loaded;
    } catch (error) {
      if (error instanceof AbortedError) throw error;
      logger.warn({ file, err: error }, `skipping snapshot ${file}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return undefined;
}

// Decodes a snapshot fed in arbitrary chunks, verifying as it goes.
class SnapshotReader {
  readonly #file: string;
  readonly #expect: SnapshotExpectation;
  readonly #unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
  readonly #hash: Hash = createHash('sha256');
  // Objects decoded so far: 0 = header, 1..n = symbols, n + 1 = trailer.
  #index = 0;
  #header: SnapshotHeader | undefined;
  #map: CandleMap;
  #lengthChanged = false;
  #done = false;
  // Aligned copy target for one symbol's rows, reused: decoded bytes sit at any offset.
  #rows: Float64Array = new Float64Array(0);

  constructor(file: string, expect: SnapshotExpectation) {
    this.#file = file;
    this.#expect = expect;
    this.#map = new CandleMap(expect.length);
  }

  // Decodes every complete object of `source`; returns how many bytes they took.
  decode(source: Buffer): number {
    let consumed = 0;
    try {
      this.#unpackr.unpackMultiple(source, (value: unknown, start?: number, end?: number) => {
        const to = end ?? source.length;
        this.#accept(value, source.subarray(start ?? consumed, to));
        consumed = to;
      });
    } catch (error) {
      if (error instanceof CorruptFileError) throw error;
      if (!(error as { incomplete?: boolean }).incomplete) {
        throw this.#corrupt(`is not valid MessagePack after object ${this.#index}`, error);
      }
    }
    const pending = source.length - consumed;
    const limit = this.#header ? this.#header.length * ROW_BYTES + MAX_HEADER_BYTES : MAX_HEADER_BYTES;
    if (pending > limit) {
      throw this.#corrupt(`object ${this.#index} is over ${limit} bytes, larger than any valid record`);
    }
    return consumed;
  }

  finish(): LoadedSnapshot {
    if (!this.#done || !this.#header) {
      throw this.#corrupt(`ends early after ${this.#index} objects (truncated or unfinished write)`);
    }
    return { file: this.#file, header: this.#header, map: this.#map, lengthChanged: this.#lengthChanged };
  }

  #accept(value: unknown, bytes: Buffer): void {
    if (this.#done) throw this.#corrupt('has data after the trailer');
    const header = this.#header;
    if (!header) {
      this.#header = this.#checkHeader(value);
      this.#hash.update(bytes);
    } else if (this.#index <= header.symbols) {
      this.#acceptSymbol(value, header);
      this.#hash.update(bytes);
    } else {
      const trailer = value as { checksum?: unknown; count?: unknown } | null;
      const checksum = this.#hash.digest('hex');
      if (typeof trailer !== 'object' || trailer === null || trailer.checksum !== checksum) {
        throw this.#corrupt(`checksum ${JSON.stringify(trailer?.checksum)} does not match the content (sha256 ${checksum})`);
      }
      if (trailer.count !== header.symbols) {
        throw this.#corrupt(`trailer counts ${JSON.stringify(trailer.count)} symbols, header ${header.symbols}`);
      }
      this.#done = true;
    }
    this.#index++;
  }

  #checkHeader(value: unknown): SnapshotHeader {
    const h = (typeof value === 'object' && value !== null ? value : {}) as Partial<Record<keyof SnapshotHeader, unknown>>;
    if (h.format !== SNAPSHOT_FORMAT) {
      throw this.#corrupt(`format is ${JSON.stringify(h.format)}, expected "${SNAPSHOT_FORMAT}"`);
    }
    if (h.version !== SNAPSHOT_VERSION) throw this.#corrupt(`version is ${JSON.stringify(h.version)}, expected ${SNAPSHOT_VERSION}`);
    if (!isMarketType(h.market) || h.market !== this.#expect.market) {
      throw this.#corrupt(`market is ${JSON.stringify(h.market)}, expected ${this.#expect.market}`);
    }
    if (!isInterval(h.bar) || h.bar !== this.#expect.bar) {
      throw this.#corrupt(`bar is ${JSON.stringify(h.bar)}, expected ${this.#expect.bar}`);
    }
    if (typeof h.length !== 'number' || !Number.isSafeInteger(h.length) || h.length < 1) {
      throw this.#corrupt(`length is ${JSON.stringify(h.length)}, expected a positive integer`);
    }
    if (!Array.isArray(h.columns) || h.columns.join(',') !== KLINE_COLUMNS.join(',')) {
      throw this.#corrupt(`columns are ${JSON.stringify(h.columns)}, expected ${JSON.stringify(KLINE_COLUMNS)}`);
    }
    if (h.dtype !== '<f8') throw this.#corrupt(`dtype is ${JSON.stringify(h.dtype)}, expected "<f8"`);
    if (typeof h.symbols !== 'number' || !Number.isSafeInteger(h.symbols) || h.symbols < 0) {
      throw this.#corrupt(`symbols is ${JSON.stringify(h.symbols)}, expected a non-negative integer`);
    }
    if (typeof h.createdAt !== 'string') throw this.#corrupt(`createdAt is ${JSON.stringify(h.createdAt)}, expected an ISO date`);
    if (h.length !== this.#expect.length) this.#lengthChanged = true;
    return h as unknown as SnapshotHeader;
  }

  #acceptSymbol(value: unknown, header: SnapshotHeader): void {
    const where = `symbol record ${this.#index}`;
    const r = (typeof value === 'object' && value !== null ? value : {}) as { symbol?: unknown; rows?: unknown; data?: unknown };
    if (typeof r.symbol !== 'string' || !SYMBOL_PATTERN.test(r.symbol)) {
      throw this.#corrupt(`${where} has symbol ${JSON.stringify(r.symbol)}, expected a Binance symbol`);
    }
    if (this.#map.has(r.symbol)) throw this.#corrupt(`${where} repeats symbol ${r.symbol}`);
    if (typeof r.rows !== 'number' || !Number.isSafeInteger(r.rows) || r.rows < 0 || r.rows > header.length) {
      throw this.#corrupt(`${where} (${r.symbol}) has rows ${JSON.stringify(r.rows)}, expected 0..${header.length}`);
    }
    if (!(r.data instanceof Uint8Array) || r.data.byteLength !== r.rows * ROW_BYTES) {
      const got = r.data instanceof Uint8Array ? `${r.data.byteLength} bytes` : typeof r.data;
      throw this.#corrupt(`${where} (${r.symbol}) has data of ${got}, expected ${r.rows * ROW_BYTES} bytes`);
    }
    if (this.#rows.length < header.length * KLINE_WIDTH) this.#rows = new Float64Array(header.length * KLINE_WIDTH);
    const rows = this.#rows.subarray(0, r.rows * KLINE_WIDTH);
    new Uint8Array(rows.buffer, 0, r.data.byteLength).set(r.data);
    if (!IS_LITTLE_ENDIAN) swapFloat64Bytes(rows);
    const ring = new CandleRing(this.#expect.length);
    try {
      ring.assign(rows);
    } catch (error) {
      throw this.#corrupt(`${where} (${r.symbol}) holds invalid rows`, error);
    }
    this.#map.set(r.symbol, ring);
  }

  #corrupt(detail: string, cause?: unknown): CorruptFileError {
    return new CorruptFileError(this.#file, detail, cause === undefined ? undefined : { cause });
  }
}

// MessagePack of {symbol, rows, data} up to the start of data's bytes, which follow as raw
// float64 (map of 3, then str keys and values, rows as uint32, data as bin32).
function symbolRecordPrefix(symbol: string, rows: number): Uint8Array {
  const name = Buffer.from(symbol, 'utf8');
  const head = name.length < 32 ? [0xa0 | name.length] : [0xd9, name.length];
  const out = Buffer.alloc(1 + 7 + head.length + name.length + 5 + 5 + 5 + 5);
  let at = out.writeUInt8(0x83, 0);
  at += out.write('\xa6symbol', at, 'latin1');
  at = out.writeUInt8(head[0] as number, at);
  if (head.length === 2) at = out.writeUInt8(head[1] as number, at);
  at += name.copy(out, at);
  at += out.write('\xa4rows', at, 'latin1');
  at = out.writeUInt8(0xce, at);
  at = out.writeUInt32BE(rows, at);
  at += out.write('\xa4data', at, 'latin1');
  at = out.writeUInt8(0xc6, at);
  out.writeUInt32BE(rows * ROW_BYTES, at);
  return out;
}

// The bytes of `values` as little-endian float64, whatever this machine's byte order.
function littleEndianBytes(values: Float64Array): Uint8Array {
  if (!IS_LITTLE_ENDIAN) swapFloat64Bytes(values);
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

function swapFloat64Bytes(values: Float64Array): void {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  for (let i = 0; i < bytes.length; i += 8) bytes.subarray(i, i + 8).reverse();
}
