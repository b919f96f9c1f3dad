/**
 * The chart page: candles of one symbol and period from /api/chart/candles, kept live by the
 * event stream /api/chart/live, with moving averages, Bollinger bands and an RSI pane. The
 * indicators come from the library's own functions (bundled from src/analysis), so the page
 * draws what a bot computes.
 *
 * `window.__chart` exposes a few read-only facts for the browser test (bar count, last bar, live
 * updates applied, overlay visibility).
 */
import {
  CandlestickSeries,
  createChart,
  LineSeries,
  type CandlestickData,
  type IChartApi,
  type ISeriesApi,
  type LineData,
  type UTCTimestamp,
  type WhitespaceData,
} from 'lightweight-charts';
import { bollinger, rsi, sma } from '../../src/analysis/indicators.js';
import type { ChartBar, ChartCandlesReply, ChartLiveUpdate, ChartStatus } from '../../src/service/chart-routes.js';

type Overlay = 'ma5' | 'ma10' | 'ma20' | 'bollinger' | 'rsi';
type LiveState = 'connecting' | 'live' | 'reconnecting' | 'closed';

/** What the browser test reads. */
interface ChartTestHook {
  readonly symbol: string;
  readonly period: string;
  readonly bars: number;
  readonly lastBar: ChartBar | undefined;
  readonly liveUpdates: number;
  readonly live: LiveState;
  readonly loads: number;
  isVisible(overlay: Overlay): boolean;
}

declare global {
  interface Window {
    __chart?: ChartTestHook;
  }
}

const LIVE_BACKOFF_MIN_MS = 1000;
const LIVE_BACKOFF_MAX_MS = 30_000;
const PERIOD_LABELS: Readonly<Record<string, string>> = { '1m': '1m', '5m': '5m', '15m': '15m', '1h': '1h', '4h': '4h', '1d': '1d' };

const element = <T extends HTMLElement>(id: string): T => {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id}`);
  return found as T;
};

const ui = {
  symbol: element<HTMLSelectElement>('symbol'),
  periods: element<HTMLElement>('periods'),
  chart: element<HTMLDivElement>('chart'),
  message: element<HTMLParagraphElement>('message'),
  age: element<HTMLElement>('age'),
  stale: element<HTMLElement>('stale'),
  state: element<HTMLElement>('state'),
  weight: element<HTMLElement>('weight'),
  stream: element<HTMLElement>('stream'),
  live: element<HTMLElement>('live'),
};

const chart: IChartApi = createChart(ui.chart, {
  autoSize: true,
  layout: { background: { color: '#131722' }, textColor: '#d1d4dc' },
  grid: { vertLines: { color: '#1e222d' }, horzLines: { color: '#1e222d' } },
  timeScale: { timeVisible: true, secondsVisible: false },
});
const lineStyle = { lineWidth: 1, priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false } as const;
const candles = chart.addSeries(CandlestickSeries, {
  upColor: '#089981',
  downColor: '#f23645',
  borderVisible: false,
  wickUpColor: '#089981',
  wickDownColor: '#f23645',
});
const series: Record<Exclude<Overlay, 'bollinger'> | 'bbUpper' | 'bbMiddle' | 'bbLower', ISeriesApi<'Line'>> = {
  ma5: chart.addSeries(LineSeries, { ...lineStyle, color: '#f7c948' }),
  ma10: chart.addSeries(LineSeries, { ...lineStyle, color: '#e040fb' }),
  ma20: chart.addSeries(LineSeries, { ...lineStyle, color: '#2196f3' }),
  bbUpper: chart.addSeries(LineSeries, { ...lineStyle, color: '#787b86' }),
  bbMiddle: chart.addSeries(LineSeries, { ...lineStyle, color: '#787b86', lineStyle: 2 }),
  bbLower: chart.addSeries(LineSeries, { ...lineStyle, color: '#787b86' }),
  rsi: chart.addSeries(LineSeries, { ...lineStyle, color: '#7e57c2', lastValueVisible: true }, 1),
};
series.rsi.createPriceLine({ price: 70, color: '#787b86', lineWidth: 1, lineStyle: 2, axisLabelVisible: false, title: '' });
series.rsi.createPriceLine({ price: 30, color: '#787b86', lineWidth: 1, lineStyle: 2, axisLabelVisible: false, title: '' });
chart.panes()[1]?.setStretchFactor(0.3);

const OVERLAY_SERIES: Readonly<Record<Overlay, readonly ISeriesApi<'Line'>[]>> = {
  ma5: [series.ma5],
  ma10: [series.ma10],
  ma20: [series.ma20],
  bollinger: [series.bbUpper, series.bbMiddle, series.bbLower],
  rsi: [series.rsi],
};

const state = {
  symbol: '',
  period: '',
  // Every bar loaded, warm-up included; the chart shows them from `shownFrom` on.
  bars: [] as ChartBar[],
  shownFrom: 0,
  liveUpdates: 0,
  loads: 0,
  isLoading: false,
  live: 'connecting' as LiveState,
  // Bumped on every symbol or period change, so answers to an older choice are dropped.
  generation: 0,
};

let source: EventSource | undefined;
let retryTimer: ReturnType<typeof setTimeout> | undefined;
let backoffMs = LIVE_BACKOFF_MIN_MS;

window.__chart = {
  get symbol() {
    return state.symbol;
  },
  get period() {
    return state.period;
  },
  get bars() {
    return candles.data().length;
  },
  get lastBar() {
    return state.bars.at(-1);
  },
  get liveUpdates() {
    return state.liveUpdates;
  },
  get live() {
    return state.live;
  },
  get loads() {
    return state.loads;
  },
  isVisible: (overlay) => OVERLAY_SERIES[overlay].every((s) => s.options().visible),
};

const toTime = (ms: number): UTCTimestamp => (ms / 1000) as UTCTimestamp;

function candleOf(bar: ChartBar): CandlestickData<UTCTimestamp> {
  return { time: toTime(bar.time), open: bar.open, high: bar.high, low: bar.low, close: bar.close };
}

function pointOf(time: number, value: number): LineData<UTCTimestamp> | WhitespaceData<UTCTimestamp> {
  return Number.isNaN(value) ? { time: toTime(time) } : { time: toTime(time), value };
}

/** Indicator series over every loaded bar, by the library's functions. */
function indicatorsOf(bars: readonly ChartBar[]): Record<keyof typeof series, Float64Array> {
  const closes = bars.map((bar) => bar.close);
  const bands = bollinger(closes, 20, 2);
  return {
    ma5: sma(closes, 5),
    ma10: sma(closes, 10),
    ma20: sma(closes, 20),
    bbUpper: bands.upper,
    bbMiddle: bands.middle,
    bbLower: bands.lower,
    rsi: rsi(closes, 14),
  };
}

function drawAll(): void {
  const shown = state.bars.slice(state.shownFrom);
  candles.setData(shown.map(candleOf));
  const values = indicatorsOf(state.bars);
  for (const [name, line] of Object.entries(series) as [keyof typeof series, ISeriesApi<'Line'>][]) {
    const all = values[name];
    line.setData(shown.map((bar, i) => pointOf(bar.time, all[state.shownFrom + i] as number)));
  }
}

/** Applies the live bars (previous and forming) and redraws their indicator points. */
function applyLive(update: ChartLiveUpdate): void {
  let firstChanged = state.bars.length;
  for (const bar of update.bars) {
    const last = state.bars.at(-1);
    if (last !== undefined && bar.time < last.time) continue;
    if (last !== undefined && bar.time === last.time) state.bars[state.bars.length - 1] = bar;
    else state.bars.push(bar);
    firstChanged = Math.min(firstChanged, state.bars.length - 1);
  }
  if (firstChanged >= state.bars.length) return;
  const values = indicatorsOf(state.bars);
  for (let i = Math.max(firstChanged, state.shownFrom); i < state.bars.length; i += 1) {
    const bar = state.bars[i] as ChartBar;
    candles.update(candleOf(bar));
    for (const [name, line] of Object.entries(series) as [keyof typeof series, ISeriesApi<'Line'>][]) {
      line.update(pointOf(bar.time, values[name][i] as number));
    }
  }
  state.liveUpdates += 1;
}

function showStatus(status: ChartStatus): void {
  ui.age.textContent = status.newestAgeMs === null ? 'none' : formatAge(status.newestAgeMs);
  ui.stale.hidden = !status.isStale;
  ui.state.textContent = status.state;
  ui.weight.textContent = `${status.weight.used} / ${status.weight.budget} (limit ${status.weight.limit})${status.weight.bannedUntil === null ? '' : ' BANNED'}`;
  ui.stream.textContent =
    status.stream.mode === 'websocket'
      ? `${status.stream.connections} connection(s), ${status.stream.reconnects} reconnect(s)`
      : 'REST polling';
}

function formatAge(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 120) return `${seconds} s old`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min old`;
  return `${Math.round(seconds / 3600)} h old`;
}

function setLive(next: LiveState, detail = ''): void {
  state.live = next;
  ui.live.dataset.state = next;
  ui.live.textContent = detail === '' ? next : `${next} ${detail}`;
  // With the live link down the data's age is unknown: show it as stale until it is back.
  if (next === 'reconnecting') ui.stale.hidden = false;
}

function showMessage(text: string | undefined): void {
  ui.message.hidden = text === undefined;
  ui.message.textContent = text ?? '';
}

async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path, { cache: 'no-store' });
  const body = (await res.json()) as T & { error?: string };
  if (!res.ok) throw new Error(body.error ?? `${path} answered ${res.status}`);
  return body;
}

async function loadCandles(): Promise<void> {
  const generation = state.generation;
  // With no period chosen yet, the server picks the shortest one its BAR offers.
  const query = new URLSearchParams(state.period === '' ? { symbol: state.symbol } : { symbol: state.symbol, period: state.period });
  state.isLoading = true;
  try {
    const reply = await getJson<ChartCandlesReply>(`/api/chart/candles?${query}`);
    if (generation !== state.generation) return;
    state.period = reply.period;
    renderPeriods(reply.periods);
    state.bars = [...reply.bars];
    state.shownFrom = reply.shownFrom;
    drawAll();
    chart.timeScale().fitContent();
    showStatus(reply.status);
    showMessage(reply.bars.length === 0 ? `no ${state.period} bars for ${state.symbol} yet` : undefined);
    state.loads += 1;
  } catch (error) {
    if (generation !== state.generation) return;
    showMessage(error instanceof Error ? error.message : String(error));
  } finally {
    if (generation === state.generation) state.isLoading = false;
  }
}

function closeLive(): void {
  clearTimeout(retryTimer);
  retryTimer = undefined;
  source?.close();
  source = undefined;
}

function connectLive(): void {
  closeLive();
  const generation = state.generation;
  const query = new URLSearchParams({ symbol: state.symbol, period: state.period });
  const events = new EventSource(`/api/chart/live?${query}`);
  source = events;
  let wasDown = state.live === 'reconnecting';
  events.addEventListener('open', () => {
    backoffMs = LIVE_BACKOFF_MIN_MS;
    setLive('live');
    // Bars may have closed while the link was down: load them again.
    if (wasDown) void loadCandles();
    wasDown = false;
  });
  events.addEventListener('update', (event: MessageEvent<string>) => {
    if (generation !== state.generation) return;
    const update = JSON.parse(event.data) as ChartLiveUpdate;
    // The first load failed (the symbol was warming, say): candles exist now, load them.
    if (state.bars.length === 0 && update.bars.length > 0 && !state.isLoading) void loadCandles();
    applyLive(update);
    showStatus(update.status);
  });
  events.addEventListener('error', () => {
    // The page paces its own retries (doubling up to 30 s) rather than the browser's fixed one.
    events.close();
    if (source !== events) return;
    const delay = backoffMs;
    backoffMs = Math.min(backoffMs * 2, LIVE_BACKOFF_MAX_MS);
    setLive('reconnecting', `in ${Math.round(delay / 1000)} s`);
    retryTimer = setTimeout(connectLive, delay);
  });
}

function renderPeriods(periods: readonly string[]): void {
  const wanted = Object.keys(PERIOD_LABELS);
  if (ui.periods.childElementCount === 0) {
    for (const period of wanted) {
      const button = document.createElement('button');
      button.type = 'button';
      button.dataset.period = period;
      button.textContent = PERIOD_LABELS[period] ?? period;
      button.addEventListener('click', () => choose(state.symbol, period));
      ui.periods.append(button);
    }
  }
  for (const button of ui.periods.querySelectorAll<HTMLButtonElement>('button')) {
    button.disabled = !periods.includes(button.dataset.period ?? '');
    button.setAttribute('aria-pressed', String(button.dataset.period === state.period));
  }
}

function choose(symbol: string, period: string): void {
  if (symbol === state.symbol && period === state.period && state.loads > 0) return;
  state.generation += 1;
  const generation = state.generation;
  closeLive();
  state.symbol = symbol;
  state.period = period;
  const url = new URL(location.href);
  url.searchParams.set('symbol', symbol);
  if (period === '') url.searchParams.delete('period');
  else url.searchParams.set('period', period);
  history.replaceState(null, '', url);
  for (const button of ui.periods.querySelectorAll<HTMLButtonElement>('button')) {
    button.setAttribute('aria-pressed', String(button.dataset.period === period));
  }
  void loadCandles().then(() => {
    if (generation === state.generation && state.period !== '') connectLive();
  });
}

async function start(): Promise<void> {
  for (const box of document.querySelectorAll<HTMLInputElement>('input[data-overlay]')) {
    const overlay = box.dataset.overlay as Overlay;
    const apply = (): void => {
      for (const line of OVERLAY_SERIES[overlay]) line.applyOptions({ visible: box.checked });
    };
    box.addEventListener('change', apply);
    apply();
  }
  const listed = await getJson<{ symbols: { symbol: string }[] }>('/symbols');
  const symbols = listed.symbols.map((s) => s.symbol);
  if (symbols.length === 0) {
    showMessage('the server follows no symbol yet');
    return;
  }
  for (const symbol of symbols) ui.symbol.append(new Option(symbol, symbol));
  const params = new URLSearchParams(location.search);
  const symbol = symbols.includes(params.get('symbol') ?? '') ? (params.get('symbol') as string) : (symbols[0] as string);
  ui.symbol.value = symbol;
  ui.symbol.addEventListener('change', () => choose(ui.symbol.value, state.period));
  renderPeriods(Object.keys(PERIOD_LABELS));
  choose(symbol, params.get('period') ?? '');
}

window.addEventListener('pagehide', () => {
  closeLive();
  setLive('closed');
});

start().catch((error: unknown) => showMessage(error instanceof Error ? error.message : String(error)));
