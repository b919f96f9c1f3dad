/**
 * The chart page in a real browser: Debian's Chromium driven by playwright-core, loading the page
 * from the HTTP API of a CandleServer running on the simulated exchange. Saves a screenshot to
 * test-artifacts/chart.png.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CandleServer } from '../../src/candle-server.js';
import { chartRoutes } from '../../src/service/chart-routes.js';
import { startHttpApi, type HttpApi } from '../../src/service/http-api.js';
import type { SimulatedBinance } from '../../src/sim/index.js';
import { simRule, startSim } from '../helpers/sim.js';

const CHROMIUM = '/usr/bin/chromium';
const root = fileURLToPath(new URL('../../', import.meta.url));
const LENGTH = 300;

/** What the page's test hook (`window.__chart`) tells, read at one moment. */
interface Snapshot {
  symbol: string;
  period: string;
  bars: number;
  lastBar: string;
  liveUpdates: number;
  live: string;
  loads: number;
  visible: Record<string, boolean>;
}

/** Reads the page's test hook; undefined before the page has set it up. */
function snapshot(): Snapshot | undefined {
  const h = (
    globalThis as unknown as { __chart?: Omit<Snapshot, 'lastBar' | 'visible'> & { lastBar: unknown; isVisible(o: string): boolean } }
  ).__chart;
  if (h === undefined) return undefined;
  const visible = Object.fromEntries(['ma5', 'ma10', 'ma20', 'bollinger', 'rsi'].map((o) => [o, h.isVisible(o)]));
  return {
    symbol: h.symbol,
    period: h.period,
    bars: h.bars,
    lastBar: JSON.stringify(h.lastBar),
    liveUpdates: h.liveUpdates,
    live: h.live,
    loads: h.loads,
    visible,
  };
}

const read = async (page: Page): Promise<Snapshot> => {
  const seen = await page.evaluate(snapshot);
  if (seen === undefined) throw new Error('the page has no window.__chart test hook');
  return seen;
};

/** Waits, at most `timeout` ms, until `check` holds for the page's snapshot. */
async function waitOnPage<A>(page: Page, check: (s: Snapshot, arg: A) => boolean, arg: A, timeout = 10_000): Promise<Snapshot> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const seen = await page.evaluate(snapshot);
    if (seen !== undefined && check(seen, arg)) return seen;
    if (Date.now() > deadline)
      throw new Error(`the page did not reach ${check.toString()} within ${timeout} ms; last seen ${JSON.stringify(seen)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('the chart page in Chromium', () => {
  let sim: SimulatedBinance;
  let server: CandleServer;
  let api: HttpApi;
  let context: BrowserContext;
  let page: Page;
  let dir: string;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `${CHROMIUM} is missing: the chart page is tested in Debian's Chromium; run \`apt-get install chromium\` (as .ci/run does)`,
      );
    }
    // Always rebuilt (esbuild takes well under a second), so the page tested is the page in web/.
    await promisify(execFile)(process.execPath, [join(root, 'scripts/build-web.mjs')], { cwd: root });
    dir = await mkdtemp(join(tmpdir(), 'chart-browser-'));
    sim = await startSim({ markets: ['SPOT'], streams: { cadenceMs: 100, pingIntervalMs: 1000, pongTimeoutMs: 5000 } });
    server = new CandleServer({
      instType: 'SPOT',
      budgetScope: 'chart-browser-test',
      rule: {
        ...simRule(sim, 'SPOT', dir),
        LENGTH,
        BAR: '1m',
        UPDATE_INTERVAL_SECONDS: 1,
        CACHE_DELAY_SECONDS: null,
      },
    });
    await server.runCandleMap();
    api = await startHttpApi({ server, port: 0, extraRoutes: chartRoutes(server, { liveIntervalMs: 500 }) });
    context = await chromium.launchPersistentContext(join(dir, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1280, height: 720 },
    });
    page = context.pages()[0] ?? (await context.newPage());
  });

  afterAll(async () => {
    await context?.close();
    await api?.close();
    await server?.close();
    await sim?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('renders candles, switches period, toggles overlays, follows live updates and reconnects', async () => {
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(`${api.url}/chart`);

    // Candles render: the ring's 300 one-minute candles, drawn on a canvas.
    const first = await waitOnPage(page, (s) => s.bars > 0 && s.live === 'live', null);
    expect([first.symbol, first.period]).toEqual(['BTCUSDT', '1m']);
    // A minute may turn while the page loads: the live link then adds the new forming candle.
    expect([LENGTH, LENGTH + 1]).toContain(first.bars);
    expect(await page.locator('#chart canvas').count()).toBeGreaterThan(0);
    expect(await page.getAttribute('button[data-period="1m"]', 'aria-pressed')).toBe('true');

    // The period switch changes the bars: 300 minutes make 60 or 61 five-minute bars.
    await page.click('button[data-period="5m"]');
    const five = await waitOnPage(page, (s, loads) => s.period === '5m' && s.loads > loads, first.loads);
    expect(five.bars).toBeGreaterThanOrEqual(60);
    expect(five.bars).toBeLessThanOrEqual(61);
    expect((JSON.parse(five.lastBar) as { time: number }).time % 300_000).toBe(0);
    expect(await page.getAttribute('button[data-period="5m"]', 'aria-pressed')).toBe('true');

    // Overlays toggle: Bollinger starts hidden, MA20 shown.
    expect([five.visible.bollinger, five.visible.ma20]).toEqual([false, true]);
    await page.click('#toggle-bollinger');
    await page.click('#toggle-ma20');
    const toggled = await read(page);
    expect([toggled.visible.bollinger, toggled.visible.ma20]).toEqual([true, false]);

    // A live update arrives: the forming bar changes (its volume grows every sub-step).
    await waitOnPage(page, (s, was) => s.liveUpdates > was.liveUpdates && s.lastBar !== was.lastBar, toggled);

    // The status bar shows freshness, weight and the exchange stream.
    expect(await page.textContent('#age')).toMatch(/s old$/);
    expect(await page.isHidden('#stale')).toBe(true);
    expect(await page.textContent('#weight')).toMatch(/^\d+ \/ \d+ \(limit \d+\)$/);
    expect(await page.textContent('#stream')).toMatch(/connection/);

    await mkdir(join(root, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: join(root, 'test-artifacts/chart.png') });

    // The live link drops when the service goes away, and comes back when it returns.
    const port = api.port;
    await api.close();
    await waitOnPage(page, (s) => s.live === 'reconnecting', null);
    expect(await page.isVisible('#stale')).toBe(true);
    api = await startHttpApi({ server, port, extraRoutes: chartRoutes(server, { liveIntervalMs: 500 }) });
    const down = await read(page);
    const back = await waitOnPage(page, (s, was) => s.live === 'live' && s.liveUpdates > was, down.liveUpdates, 15_000);
    expect(back.period).toBe('5m');

    expect(pageErrors).toEqual([]);
  });
});
