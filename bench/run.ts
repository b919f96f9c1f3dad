/**
 * Runs every benchmark in turn, each in its own process (so one's heap and sockets do not weigh
 * on the next): `npm run bench` (about 8 minutes on 2 cores) or `npm run bench -- --quick`
 * (about 2 minutes, smaller workloads). Results land in `bench/results/*.json`; BENCHMARKS.md
 * records them.
 *
 * @example
 * ```sh
 * npx tsx bench/run.ts --quick
 * npx tsx bench/run.ts --only=backfill
 * ```
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCHES = [
  { name: 'ring', file: 'ring.bench.ts', args: (quick: boolean) => (quick ? ['100'] : ['1000']) },
  { name: 'kline-streams', file: 'kline-streams.bench.ts', args: (quick: boolean) => (quick ? ['2'] : ['5']) },
  { name: 'candle-server', file: 'candle-server.bench.ts', args: (quick: boolean) => (quick ? ['--quick'] : []) },
  { name: 'backfill', file: 'backfill.bench.ts', args: (quick: boolean) => (quick ? ['--quick'] : []) },
  { name: 'cold-start', file: 'cold-start.bench.ts', args: (quick: boolean) => (quick ? ['--symbols=100', '--rounds=1'] : []) },
  { name: 'binance-api', file: 'binance-api.bench.ts', args: (quick: boolean) => (quick ? ['--quick'] : []) },
] as const;

const quick = process.argv.includes('--quick');
const only = process.argv
  .find((a) => a.startsWith('--only='))
  ?.slice(7)
  .split(',');
let failed = 0;
for (const bench of BENCHES) {
  if (only !== undefined && !only.includes(bench.name)) continue;
  console.log(`\n=== ${bench.name} ===`);
  const started = Date.now();
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(bench.file, import.meta.url)), ...bench.args(quick)], {
      stdio: 'inherit',
    });
    child.once('exit', (exitCode) => resolve(exitCode));
  });
  console.log(
    `=== ${bench.name}: ${code === 0 ? 'done' : `FAILED (exit ${String(code)})`} in ${Math.round((Date.now() - started) / 1000)} s`,
  );
  if (code !== 0) failed += 1;
}
process.exitCode = failed === 0 ? 0 : 1;
