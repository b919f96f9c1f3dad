import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AbortedError } from '../../src/errors.js';
import { removeStaleTempFiles, tempPathFor, writeFileAtomic } from '../../src/util/atomic-write.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'atomic-write-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function* chunksThenCrash(): Generator<string> {
  yield 'open_time,open\n';
  yield '1706072400000,43000.10000000\n';
  throw new Error('disk pulled out');
}

describe('writeFileAtomic', () => {
  it('creates parent folders and writes strings, bytes and async chunks', async () => {
    const file = join(dir, 'a', 'b', 'c.csv');
    await writeFileAtomic(file, 'one\n');
    expect(await readFile(file, 'utf8')).toBe('one\n');

    await writeFileAtomic(file, new Uint8Array([0x74, 0x77, 0x6f]));
    expect(await readFile(file, 'utf8')).toBe('two');

    async function* parts(): AsyncGenerator<string | Uint8Array> {
      yield 'th';
      yield Buffer.from('ree');
    }
    await writeFileAtomic(file, parts());
    expect(await readFile(file, 'utf8')).toBe('three');
    expect(await readdir(join(dir, 'a', 'b'))).toEqual(['c.csv']);
  });

  it('a crash mid-write keeps the old content and leaves no temp file', async () => {
    const file = join(dir, 'BTCUSDT.csv');
    await writeFile(file, 'old content\n');
    await expect(writeFileAtomic(file, chunksThenCrash())).rejects.toThrow('disk pulled out');
    expect(await readFile(file, 'utf8')).toBe('old content\n');
    expect(await readdir(dir)).toEqual(['BTCUSDT.csv']);
  });

  it('a crash mid-write of a new file leaves nothing under the final name', async () => {
    const file = join(dir, 'ETHUSDT.csv');
    await expect(writeFileAtomic(file, chunksThenCrash())).rejects.toThrow('disk pulled out');
    expect(await readdir(dir)).toEqual([]);
  });

  it('an aborted write keeps the old file and throws AbortedError', async () => {
    const file = join(dir, 'x.csv');
    await writeFile(file, 'old');
    const controller = new AbortController();
    function* abortAfterFirst(): Generator<string> {
      yield 'new ';
      controller.abort();
      yield 'content';
    }
    await expect(writeFileAtomic(file, abortAfterFirst(), { signal: controller.signal })).rejects.toBeInstanceOf(AbortedError);
    expect(await readFile(file, 'utf8')).toBe('old');
    expect(await readdir(dir)).toEqual(['x.csv']);
  });
});

describe('removeStaleTempFiles', () => {
  it('removes old temp files (recursively when asked) and keeps fresh ones and real files', async () => {
    const nested = join(dir, 'UM-AmericaNew_York-1m', '2024-01', '2024-01-24');
    await mkdir(nested, { recursive: true });
    const oldTop = tempPathFor(join(dir, 'manifest.json'));
    const oldNested = tempPathFor(join(nested, 'BTCUSDT.csv'));
    const fresh = tempPathFor(join(nested, 'ETHUSDT.csv'));
    const real = join(nested, 'BTCUSDT.csv');
    const lookalike = join(nested, '.notes.tmp');
    for (const file of [oldTop, oldNested, fresh, real, lookalike]) await writeFile(file, 'x');
    const anHourAgo = new Date(Date.now() - 3_600_000);
    await utimes(oldTop, anHourAgo, anHourAgo);
    await utimes(oldNested, anHourAgo, anHourAgo);

    expect(await removeStaleTempFiles(dir)).toEqual([oldTop]);
    expect(await removeStaleTempFiles(dir, { recursive: true })).toEqual([oldNested]);
    expect((await readdir(nested)).sort()).toEqual(['.notes.tmp', 'BTCUSDT.csv', fresh.slice(nested.length + 1)].sort());

    expect(await removeStaleTempFiles(dir, { recursive: true, olderThanMs: 0 })).toEqual([fresh]);
    expect(await removeStaleTempFiles(join(dir, 'does-not-exist'))).toEqual([]);
  });
});
