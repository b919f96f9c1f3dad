import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, pollFor, runCli, spawnCli, type CliProcess } from '../helpers/cli.js';

interface SimAnnouncement {
  sim: Record<string, { rest: string; ws: string; archive: string }>;
  configs: Record<string, string>;
}

async function get(url: string): Promise<{ status: number; text: string }> {
  const res = await request(url);
  return { status: res.statusCode, text: await res.body.text() };
}

describe('the built CLI against the simulated exchange', () => {
  let dir: string;
  let sim: CliProcess;
  let announcement: SimAnnouncement;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'candle-server-e2e-'));
    sim = spawnCli(['sim', '--markets', 'SPOT', '--write-config', dir]);
    announcement = JSON.parse(await sim.waitForLine((line) => line.startsWith('{"sim"'))) as SimAnnouncement;
  });
  afterAll(async () => {
    sim?.kill('SIGTERM');
    await killAll();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves /health, /metrics and /candles, stops on SIGTERM with a final snapshot that inspect lists', async () => {
    const config = announcement.configs.SPOT;
    expect(config).toBe(join(dir, 'spot.json'));
    const service = spawnCli(['start', '--config', config ?? '']);
    const listening = await service.waitForLog((r) => r.component === 'cli' && typeof r.port === 'number');
    const base = `http://127.0.0.1:${String(listening.port)}`;

    const health = await pollFor('health 200', async () => {
      const reply = await get(`${base}/health`);
      return reply.status === 200 ? reply : undefined;
    });
    expect(JSON.parse(health.text)).toMatchObject({ status: 'ok', symbols: 3 });
    await service.waitForLog((r) => r.msg === 'ready');

    const metrics = await get(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/^candle_server_weight_used\{market="SPOT"\} \d+/m);

    const chart = await get(`${base}/chart`);
    expect([200, 503]).toContain(chart.status);

    const candles = await get(`${base}/candles/BTCUSDT`);
    expect(candles.status).toBe(200);
    const body = JSON.parse(candles.text) as { symbol: string; rows: number[][] };
    expect(body.symbol).toBe('BTCUSDT');
    expect(body.rows.length).toBe(240);
    const newestOpen = body.rows.at(-1)?.[0] ?? 0;
    expect(Date.now() - newestOpen).toBeLessThan(3 * 60_000);

    service.kill('SIGTERM');
    expect(await service.exited).toBe(0);
    const written = await service.waitForLog((r) => r.msg === 'snapshot written', 1000);
    expect(service.stdout.some((line) => line.includes('"msg":"closed"'))).toBe(true);

    const files = await readdir(join(dir, 'cache', 'spot'));
    const snapshots = files.filter((name) => name.startsWith('snapshot-SPOT-1m-'));
    expect(snapshots.length).toBeGreaterThan(0);
    expect(join(dir, 'cache', 'spot', snapshots.at(-1) ?? '')).toBe(written.file);
    // The rule files of `sim --write-config` keep 5m, 15m and 1h from the 1m streams: one snapshot each.
    for (const interval of ['5m', '15m', '1h'])
      expect(
        files.some((name) => name.startsWith(`snapshot-SPOT-${interval}-`)),
        interval,
      ).toBe(true);

    const table = await runCli(['inspect', String(written.file)]);
    expect(table.code).toBe(0);
    for (const symbol of ['BTCUSDT', 'ETHUSDT', 'BNBUSDT']) expect(table.stdout).toContain(symbol);

    const json = await runCli(['inspect', String(written.file), '--format', 'json', '--rows', '2']);
    expect(json.code).toBe(0);
    const text = json.stdout;
    expect(() => JSON.parse(text) as unknown).not.toThrow();
    for (const symbol of ['BTCUSDT', 'ETHUSDT', 'BNBUSDT']) expect(text).toContain(`"${symbol}"`);
  });

  it('downloads daily files with progress and the COMPLETE DOWNLOAD summaries, skipping them the second time', async () => {
    const config = announcement.configs.SPOT ?? '';
    const rule = JSON.parse(await readFile(config, 'utf8')) as { CANDLE_DIR: string; TIMEZONE: string };
    const first = await runCli(['download', '--config', config, '--symbols', 'BTCUSDT,ETHUSDT', '--days', '2']);
    expect(first.code).toBe(0);
    const summaries = first.stdout.split('\n').filter((line) => line.startsWith('COMPLETE DOWNLOAD'));
    expect(summaries).toHaveLength(2);
    for (const line of summaries) expect(line).toMatch(/\(ALL:2 SKIP:0 SUC:2 WARN:0 ERROR:0\)$/);
    // The progress line goes to stderr (plain lines: not a terminal).
    expect(first.stderr).toMatch(/download .*100% 4\/4/);
    const folder = join(rule.CANDLE_DIR, `SPOT-${rule.TIMEZONE.replace('/', '')}-1m`);
    const months = await readdir(folder);
    const days = (await Promise.all(months.map((m) => readdir(join(folder, m))))).flat();
    expect(days).toHaveLength(2);
    const second = await runCli(['download', '--config', config, '--symbols', 'BTCUSDT,ETHUSDT', '--days', '2']);
    expect(second.code).toBe(0);
    for (const line of second.stdout.split('\n').filter((l) => l.startsWith('COMPLETE DOWNLOAD'))) {
      expect(line).toMatch(/\(ALL:2 SKIP:2 SUC:0 WARN:0 ERROR:0\)$/);
    }
  });

  it('a second signal stops at once with 128 + the signal number', async () => {
    const service = spawnCli(['start', '--config', announcement.configs.SPOT ?? '', '--shutdown-timeout', '20']);
    await service.waitForLog((r) => r.msg === 'starting');
    service.kill('SIGINT');
    service.kill('SIGINT');
    const code = await service.exited;
    // Both signals usually land before the close finishes; a close quicker than the second one exits 0.
    expect([0, 130]).toContain(code);
    if (code === 130) expect(service.stdout.join('\n')).toContain('second stop signal');
  });

  it('refuses a bad rule with exit code 2 and one line naming every bad field', async () => {
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ MARKET: 'SPOT', BAR: '2m', LENGTH: 0 }));
    const result = await runCli(['start', '--config', bad]);
    expect(result.code).toBe(2);
    const lines = result.stderr.split('\n').filter((line) => line.trim() !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('BAR');
    expect(lines[0]).toContain('LENGTH');
    expect(result.stdout).toBe('');
  });

  it('reads rule overrides from CANDLE_SERVER_* and refuses a bad one', async () => {
    const result = await runCli(['start', '--config', announcement.configs.SPOT ?? ''], { env: { CANDLE_SERVER_LENGTH: 'many' } });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('LENGTH');
    expect(result.stderr).toContain('CANDLE_SERVER_LENGTH');
  });

  it('answers --help on the bin and every command, --version, and refuses unknown input with exit code 2', async () => {
    const commands = ['start', 'sim', 'download', 'inspect'];
    const bad = [
      ['frobnicate'],
      ['start', '--bogus'],
      ['inspect'],
      ['inspect', 'x', '--format', 'xml'],
      ['sim', '--markets', 'XX'],
      ['download', '--days', '0'],
    ];
    // Independent processes: run them side by side to keep the file quick.
    const [top, version, helps, refusals] = await Promise.all([
      runCli(['--help']),
      runCli(['--version']),
      Promise.all(commands.map((command) => runCli([command, '--help']))),
      Promise.all(bad.map((args) => runCli(args))),
    ]);
    expect(top.code).toBe(0);
    commands.forEach((command, i) => {
      expect(top.stdout).toContain(command);
      expect(helps[i]?.code).toBe(0);
      expect(helps[i]?.stdout).toContain(`Usage: candle-server ${command}`);
    });
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    bad.forEach((args, i) => {
      expect(refusals[i]?.code, args.join(' ')).toBe(2);
      expect(refusals[i]?.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    });
  });
});
