/**
 * Two copies of the package in one process (a bot with a nested dependency) must still spend from
 * one weight budget per IP and see one set of running servers. The copies are real: src/index.ts
 * bundled twice by esbuild into two folders, so every module (weight governor, registry, server)
 * is loaded twice, as npm's nested copies would be.
 */
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as CandleServerPackage from '../../src/index.js';
import type { SimulatedBinance } from '../../src/sim/index.js';
import { simRule, startSim } from '../helpers/sim.js';

type Package = typeof CandleServerPackage;

const ROOT = resolve(import.meta.dirname, '../..');

/** Bundles src/index.ts into `dir/index.mjs` (dependencies stay imports, resolved through a link). */
async function loadCopy(dir: string): Promise<Package> {
  const outfile = join(dir, 'index.mjs');
  await build({
    entryPoints: [join(ROOT, 'src/index.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    logLevel: 'silent',
  });
  return (await import(pathToFileURL(outfile).href)) as Package;
}

describe('two copies of the package in one process', () => {
  let sim: SimulatedBinance;
  let dir: string;
  let copyA: Package;
  let copyB: Package;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'candle-server-copies-'));
    await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    copyA = await loadCopy(join(dir, 'a'));
    copyB = await loadCopy(join(dir, 'b'));
    sim = await startSim({ markets: ['UM', 'CM'], archiveDelayMs: 0, streams: { cadenceMs: 100 } });
  });
  afterAll(async () => {
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('are really two copies: their classes differ', () => {
    expect(copyA.CandleServer).not.toBe(copyB.CandleServer);
    expect(copyA.CandleView).not.toBe(copyB.CandleView);
  });

  it('share one futures weight budget and one registry of running servers', async () => {
    // Different spending (two symbols against one), so separate budgets would show different counts.
    const um = new copyA.CandleServer({
      instType: 'UM',
      rule: simRule(sim, 'UM', join(dir, 'um'), { BAR: '1m', SYMBOLS: ['BTCUSDT', 'ETHUSDT'] }),
    });
    const cm = new copyB.CandleServer({
      instType: 'CM',
      rule: simRule(sim, 'CM', join(dir, 'cm'), { BAR: '1m', SYMBOLS: ['BTCUSD_PERP'] }),
    });
    try {
      await Promise.all([um.runCandleMap(), cm.runCandleMap()]);
      const a = um.stats().weight;
      const b = cm.stats().weight;
      expect(a.used).toBeGreaterThan(0);
      expect(a).toEqual(b);
      // The UM server started by copy A is found by copy B's module-level getCandleSecurity.
      expect(() => copyB.runningServer('UM')).not.toThrow();
      expect(copyB.runningServer('UM')).toBe(um);
      expect(copyA.runningServer('CM')).toBe(cm);
    } finally {
      await Promise.all([um.close(), cm.close()]);
    }
  });
});
