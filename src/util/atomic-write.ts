/**
 * Crash-safe file writes. Data goes to a temp file in the destination folder, is flushed to disk,
 * then renamed over the final name; a crash at any point leaves either the old file or the new
 * one under the final name, never a half-written mix.
 *
 * ```
 * dir/.BTCUSDT.csv.<16 hex>.tmp   write chunks -> fsync -> close
 *                  |  rename (atomic on one file system)
 *                  v
 * dir/BTCUSDT.csv                  then fsync dir so the rename itself survives a power cut
 * ```
 *
 * @example
 * ```ts
 * await writeFileAtomic('/data/UM-AmericaNew_York-1m/2024-01/2024-01-24/BTCUSDT.csv', csvText);
 * await removeStaleTempFiles('/data', { recursive: true }); // at start-up, after a crash
 * ```
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { AbortedError } from '../errors.js';

/** One piece of file content. */
export type AtomicWriteChunk = string | Uint8Array;

/** The content of a file: all at once, or as chunks (sync or async). */
export type AtomicWriteData = AtomicWriteChunk | Iterable<AtomicWriteChunk> | AsyncIterable<AtomicWriteChunk>;

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /** File mode of the new file (default 0o644, less the umask). */
  readonly mode?: number;
  /** Aborts the write between chunks; the temp file is removed and the old file kept. */
  readonly signal?: AbortSignal;
}

const TEMP_NAME = /^\.(.+)\.[0-9a-f]{16}\.tmp$/;

/**
 * Name of a fresh temp file next to `path`: hidden, unique, and recognisable by
 * {@link removeStaleTempFiles}.
 *
 * @example
 * ```ts
 * tempPathFor('/d/BTCUSDT.csv'); // '/d/.BTCUSDT.csv.9f3c0a1b2c3d4e5f.tmp'
 * ```
 */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`);
}

/**
 * Writes `data` to `path` atomically, creating parent folders as needed. On any error (including
 * a chunk source that throws, or an abort) the temp file is removed and an existing file under
 * `path` is left untouched.
 *
 * @example
 * ```ts
 * await writeFileAtomic(file, ['open_time,open\n', '1700000000000,1.0\n']);
 * ```
 */
export async function writeFileAtomic(path: string, data: AtomicWriteData, options: AtomicWriteOptions = {}): Promise<void> {
  const { signal } = options;
  throwIfAborted(signal, path);
  const folder = dirname(path);
  await mkdir(folder, { recursive: true });
  const temp = tempPathFor(path);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, 'wx', options.mode ?? 0o644);
    for await (const chunk of chunksOf(data)) {
      throwIfAborted(signal, path);
      await handle.write(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
    }
    throwIfAborted(signal, path);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await syncFolder(folder);
}

/** Options of {@link removeStaleTempFiles}. */
export interface RemoveStaleTempFilesOptions {
  /**
   * Only temp files last modified at least this long ago are removed, so a write in progress in
   * another process is not broken (default 60 000 ms; 0 removes all).
   */
  readonly olderThanMs?: number;
  /** Also clean every sub-folder (default false). */
  readonly recursive?: boolean;
  /** Clock for the age test (default Date.now()). */
  readonly now?: number;
}

/**
 * Removes temp files left by {@link writeFileAtomic} when a process died mid-write. Returns the
 * paths removed. A missing `dir` is not an error.
 *
 * @example
 * ```ts
 * const removed = await removeStaleTempFiles(candleDir, { recursive: true });
 * ```
 */
export async function removeStaleTempFiles(dir: string, options: RemoveStaleTempFilesOptions = {}): Promise<string[]> {
  const olderThanMs = options.olderThanMs ?? 60_000;
  const now = options.now ?? Date.now();
  const removed: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return removed;
    throw error;
  }
  for (const entry of entries) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (options.recursive) removed.push(...(await removeStaleTempFiles(full, { ...options, now })));
      continue;
    }
    if (!entry.isFile() || !TEMP_NAME.test(entry.name)) continue;
    try {
      const info = await stat(full);
      if (now - info.mtimeMs < olderThanMs) continue;
      await unlink(full);
      removed.push(full);
    } catch (error) {
      // Another cleaner or the writer itself may have removed it in the meantime.
      if (!isErrno(error, 'ENOENT')) throw error;
    }
  }
  return removed;
}

/** True when `error` is a Node system error with the given code. */
export function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

async function* chunksOf(data: AtomicWriteData): AsyncGenerator<AtomicWriteChunk> {
  if (typeof data === 'string' || data instanceof Uint8Array) {
    yield data;
    return;
  }
  yield* data;
}

function throwIfAborted(signal: AbortSignal | undefined, path: string): void {
  if (signal?.aborted) throw new AbortedError(`writing ${path}`, { cause: signal.reason });
}

async function syncFolder(folder: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(folder, 'r');
    await handle.sync();
  } catch (error) {
    // Some platforms (Windows, some network file systems) cannot open or fsync a folder; the
    // rename has happened, so the write stands.
    if (!['EISDIR', 'EPERM', 'EINVAL', 'EACCES', 'ENOTSUP', 'EBADF'].some((code) => isErrno(error, code))) throw error;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
