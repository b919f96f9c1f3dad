import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, pollFor, ROOT, spawnCli, spawnNode, type CliProcess } from '../helpers/cli.js';

const PM2 = join(ROOT, 'node_modules/pm2/bin/pm2');
const APP = 'candle-server-e2e';

interface Pm2Process {
  name: string;
  pid: number;
  pm2_env: { status: string; restart_time: number };
}

describe('the service under the real PM2 (private PM2_HOME), against the simulator', () => {
  let dir: string;
  let sim: CliProcess;
  let config: string;
  let outLog: string;

  /** Runs the pm2 CLI with this test's PM2_HOME; resolves with its stdout. */
  async function pm2(...args: string[]): Promise<string> {
    const run = spawnNode([PM2, ...args], { env: { PM2_HOME: join(dir, 'pm2') } });
    const timer = setTimeout(() => run.kill('SIGKILL'), 40_000);
    const code = await run.exited;
    clearTimeout(timer);
    if (code !== 0) throw new Error(`pm2 ${args.join(' ')} exited ${code}: ${run.stderr.join('\n')}`);
    return run.stdout.join('\n');
  }

  async function app(): Promise<Pm2Process | undefined> {
    const list = JSON.parse(await pm2('jlist')) as Pm2Process[];
    return list.find((p) => p.name === APP);
  }

  async function logRecords(): Promise<Array<Record<string, unknown>>> {
    const text = await readFile(outLog, 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  /** Waits until the log holds `count` 'ready' lines; resolves with the port the last start logged. */
  async function readyCount(count: number): Promise<number> {
    return pollFor(
      `${count} ready lines`,
      async () => {
        const records = await logRecords();
        if (records.filter((r) => r.msg === 'ready').length < count) return undefined;
        const ports = records.filter((r) => r.component === 'cli' && typeof r.port === 'number');
        return ports.at(-1)?.port as number;
      },
      40_000,
    );
  }

  async function healthStatus(port: number): Promise<number> {
    const res = await request(`http://127.0.0.1:${port}/health`);
    await res.body.text();
    return res.statusCode;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'candle-server-pm2-'));
    sim = spawnCli(['sim', '--markets', 'SPOT', '--write-config', dir]);
    const announcement = JSON.parse(await sim.waitForLine((line) => line.startsWith('{"sim"'))) as { configs: { SPOT: string } };
    config = announcement.configs.SPOT;
    outLog = join(dir, 'out.log');
    // The shipped ecosystem with this test's name, rule file and logs: its wait_ready and kill_timeout are what is tested.
    await writeFile(
      join(dir, 'ecosystem.config.cjs'),
      `const base = require(${JSON.stringify(join(ROOT, 'scripts/ecosystem.config.cjs'))}).apps[0];
module.exports = { apps: [{ ...base, name: ${JSON.stringify(APP)},
  args: ['start', '--config', ${JSON.stringify(config)}, '--shutdown-timeout', '10'],
  out_file: ${JSON.stringify(outLog)}, error_file: ${JSON.stringify(join(dir, 'err.log'))}, listen_timeout: 30000 }] };
`,
    );
  }, 30_000);

  afterAll(async () => {
    if (dir !== undefined) await pm2('kill').catch(() => undefined);
    sim?.kill('SIGTERM');
    await killAll();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('starts (ready), reloads gracefully keeping the snapshot, and stops', async () => {
    const ecosystem = await readFile(join(ROOT, 'scripts/ecosystem.config.cjs'), 'utf8');
    expect(ecosystem).toContain('wait_ready: true');

    await pm2('start', join(dir, 'ecosystem.config.cjs'));
    const firstPort = await readyCount(1);
    const first = await app();
    expect(first?.pm2_env.status).toBe('online');
    expect(await healthStatus(firstPort)).toBe(200);

    await pm2('reload', APP);
    const secondPort = await readyCount(2);
    const second = await app();
    expect(second?.pm2_env.status).toBe('online');
    expect(second?.pid).not.toBe(first?.pid);
    const records = await logRecords();
    const messages = records.map((r) => r.msg);
    // The old process wrote its final snapshot and the new one warmed up from it.
    const written = messages.indexOf('snapshot written');
    expect(written).toBeGreaterThan(messages.indexOf('ready'));
    expect(written).toBeLessThan(messages.lastIndexOf('ready'));
    expect(messages.lastIndexOf('snapshot loaded')).toBeGreaterThan(written);
    expect(await pollFor('health after reload', async () => ((await healthStatus(secondPort)) === 200 ? true : undefined))).toBe(true);

    await pm2('stop', APP);
    expect((await app())?.pm2_env.status).toBe('stopped');
    const snapshots = (await readdir(join(dir, 'cache', 'spot'))).filter((name) => name.startsWith('snapshot-'));
    expect(snapshots.length).toBeGreaterThan(0);
    expect((await logRecords()).filter((r) => r.msg === 'snapshot written').length).toBeGreaterThanOrEqual(2);
    await pm2('delete', APP);
    expect(await app()).toBeUndefined();
  }, 90_000);
});
