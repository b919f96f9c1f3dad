/**
 * Starts `sim-process.ts` as a child process and talks to it: the benchmarks' handle on a
 * simulated exchange that does not share their event loop.
 *
 * @example
 * ```ts
 * const sim = await startSimProcess({ markets: ['SPOT'], symbolCount: { SPOT: 1000 } });
 * const rest = sim.urls.SPOT?.rest;
 * const { count429 } = await sim.stats();
 * await sim.close();
 * ```
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { MarketType } from '../../src/binance/markets.js';
import type { SimFaults, SimUrls } from '../../src/sim/index.js';
import type { SimProcessOptions, SimProcessStats } from './sim-process.js';

/** A simulator running in a child process. */
export interface SimProcess {
  readonly urls: Partial<Record<MarketType, SimUrls>>;
  /** The simulator's counters (weight per window, 429s, requests per path). */
  stats(): Promise<SimProcessStats>;
  /** Forgets the counters (the simulator's, REST in flight, CPU time). */
  resetStats(): Promise<void>;
  /** Flips fault switches of the running simulator (e.g. `{ restDelayMs: 100 }`). */
  setFaults(faults: Partial<SimFaults>): Promise<void>;
  /** Closes the simulator and waits for the process to exit. Idempotent. */
  close(): Promise<void>;
}

const SCRIPT = fileURLToPath(new URL('./sim-process.ts', import.meta.url));
// Long enough for 1000 generated symbols to be set up on a loaded machine.
const START_TIMEOUT_MS = 30_000;

/** Spawns the simulator process and resolves once it listens. */
export async function startSimProcess(options: SimProcessOptions): Promise<SimProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, JSON.stringify(options)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const pending = new Map<number, (result: unknown) => void>();
  let nextId = 1;
  const urls = await new Promise<Partial<Record<MarketType, SimUrls>>>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`the simulator process did not start within ${START_TIMEOUT_MS} ms`));
    }, START_TIMEOUT_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the simulator process exited with code ${String(code)} before it was ready`));
    });
    lines.once('line', (line) => {
      clearTimeout(timer);
      const message = JSON.parse(line) as { ready?: boolean; urls?: Partial<Record<MarketType, SimUrls>> };
      if (message.ready === true && message.urls !== undefined) resolve(message.urls);
      else reject(new Error(`expected {"ready":true,...} from the simulator process, got ${line.slice(0, 200)}`));
    });
  });
  lines.on('line', (line) => {
    const { id, result } = JSON.parse(line) as { id: number; result: unknown };
    pending.get(id)?.(result);
    pending.delete(id);
  });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const send = (cmd: string, args?: unknown): Promise<unknown> =>
    new Promise((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      child.stdin?.write(`${JSON.stringify({ id, cmd, args })}\n`);
    });
  let closing: Promise<void> | undefined;
  return {
    urls,
    stats: async () => (await send('stats')) as SimProcessStats,
    resetStats: async () => {
      await send('resetStats');
    },
    setFaults: async (faults) => {
      await send('setFaults', faults);
    },
    close: () => {
      closing ??= (async () => {
        if (child.exitCode === null) {
          await Promise.race([send('close'), exited]);
          child.stdin?.end();
        }
        await exited;
        lines.close();
      })();
      return closing;
    },
  };
}
