import { describe, expect, it } from 'vitest';
import type { CandleServer, CandleServerStats, SymbolStatus } from '../../src/candle-server.js';
import {
  collectMetrics,
  escapeLabelValue,
  EventLoopDelayMonitor,
  formatMetrics,
  formatSampleValue,
  type MetricFamily,
} from '../../src/service/metrics.js';
import type { SymbolState } from '../../src/sync/candle-sync.js';
import { Histogram } from '../../src/util/histogram.js';

describe('formatMetrics', () => {
  it('writes HELP, TYPE and one line per sample, labels in order', () => {
    const text = formatMetrics([
      {
        name: 'candle_server_requests_total',
        help: 'Requests.',
        type: 'counter',
        samples: [
          { labels: { market: 'UM', endpoint: '/fapi/v1/klines', status: '200' }, value: 12 },
          { labels: { market: 'UM', endpoint: '/fapi/v1/klines', status: '429' }, value: 1 },
        ],
      },
      { name: 'candle_server_up', help: 'Up.', type: 'gauge', samples: [{ labels: {}, value: 1 }] },
    ]);
    expect(text).toBe(
      [
        '# HELP candle_server_requests_total Requests.',
        '# TYPE candle_server_requests_total counter',
        'candle_server_requests_total{market="UM",endpoint="/fapi/v1/klines",status="200"} 12',
        'candle_server_requests_total{market="UM",endpoint="/fapi/v1/klines",status="429"} 1',
        '# HELP candle_server_up Up.',
        '# TYPE candle_server_up gauge',
        'candle_server_up 1',
        '',
      ].join('\n'),
    );
  });

  it('escapes backslash, double quote and line feed in label values, and backslash and line feed in help', () => {
    expect(escapeLabelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    const text = formatMetrics([
      { name: 'x', help: 'one\\two\nthree "quoted"', type: 'gauge', samples: [{ labels: { path: 'C:\\dir\n"x"' }, value: 2 }] },
    ]);
    expect(text.split('\n')).toEqual(['# HELP x one\\\\two\\nthree "quoted"', '# TYPE x gauge', 'x{path="C:\\\\dir\\n\\"x\\""} 2', '']);
  });

  it('writes infinities and NaN as the format spells them', () => {
    expect(formatSampleValue(Number.POSITIVE_INFINITY)).toBe('+Inf');
    expect(formatSampleValue(Number.NEGATIVE_INFINITY)).toBe('-Inf');
    expect(formatSampleValue(Number.NaN)).toBe('NaN');
    expect(formatSampleValue(0.000_25)).toBe('0.00025');
  });

  it('writes a histogram as cumulative _bucket lines ending at +Inf, then _sum and _count', () => {
    const histogram = new Histogram([1, 5, 10]);
    for (const value of [0.5, 0.7, 3, 8, 50]) histogram.record(value);
    const family: MetricFamily = {
      name: 'lat_seconds',
      help: 'Latency.',
      type: 'histogram',
      series: [{ labels: { market: 'SPOT' }, buckets: histogram.cumulative(), sum: histogram.sum, count: histogram.count }],
    };
    expect(formatMetrics([family]).split('\n')).toEqual([
      '# HELP lat_seconds Latency.',
      '# TYPE lat_seconds histogram',
      'lat_seconds_bucket{market="SPOT",le="1"} 2',
      'lat_seconds_bucket{market="SPOT",le="5"} 3',
      'lat_seconds_bucket{market="SPOT",le="10"} 4',
      'lat_seconds_bucket{market="SPOT",le="+Inf"} 5',
      'lat_seconds_sum{market="SPOT"} 62.2',
      'lat_seconds_count{market="SPOT"} 5',
      '',
    ]);
  });

  it('refuses metric and label names the format does not allow', () => {
    expect(() => formatMetrics([{ name: 'bad-name', help: '', type: 'gauge', samples: [] }])).toThrow(/bad-name/);
    expect(() => formatMetrics([{ name: 'ok', help: '', type: 'gauge', samples: [{ labels: { '1x': 'v' }, value: 1 }] }])).toThrow(/1x/);
  });
});

describe('collectMetrics', () => {
  /** A CandleServer reduced to what collectMetrics reads, with the given numbers. */
  function serverWith(stats: Partial<CandleServerStats>, states: Record<string, SymbolState>, shard: string | null = null): CandleServer {
    const latency = new Histogram([0.5, 1, 5]);
    latency.record(0.3);
    latency.record(2);
    const full: CandleServerStats = {
      market: 'UM',
      symbols: Object.keys(states).length,
      ready: Object.keys(states).length,
      weight: { used: 120, budget: 1800, limit: 2400, queued: 0, bannedUntil: undefined },
      requests: new Map(),
      sync: {
        streamUpdates: 10,
        restUpdates: 4,
        gapsFound: 3,
        gapsRepaired: 2,
        sweeps: 7,
        sweepRequests: 1,
        overdueFetches: 0,
        derivedSeeds: 0,
      },
      streams: { connections: 1, reconnects: 2, messages: 300, malformed: 1 },
      latency,
      snapshots: { written: 1, lastDurationMs: 250, lastFile: undefined },
      memoryBytes: 4096,
      ...stats,
    };
    const stub = {
      market: 'UM',
      rule: { SHARD: shard },
      intervals: ['1m', '1h'],
      isReady: true,
      stats: () => full,
      symbols: () => Object.keys(states),
      status: (symbol: string, _seconds?: number, options?: { interval?: string }) =>
        ({ symbol, state: options?.interval === '1h' ? 'warming' : (states[symbol] ?? 'unknown') }) as SymbolStatus,
    };
    return stub as unknown as CandleServer;
  }

  function valueOf(text: string, series: string): number | undefined {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  }

  it('splits requests by endpoint and status and counts 429s and 418s over every endpoint', () => {
    const requests = new Map([
      ['/fapi/v1/klines 200', 40],
      ['/fapi/v1/klines 429', 2],
      ['/fapi/v1/exchangeInfo 429', 1],
      ['/fapi/v1/time 418', 1],
      ['/fapi/v1/time 0', 3],
    ]);
    const text = formatMetrics(collectMetrics(serverWith({ requests }, { BTCUSDT: 'fresh' })));
    expect(valueOf(text, 'candle_server_requests_total{market="UM",endpoint="/fapi/v1/klines",status="200"}')).toBe(40);
    expect(valueOf(text, 'candle_server_requests_total{market="UM",endpoint="/fapi/v1/time",status="0"}')).toBe(3);
    expect(valueOf(text, 'candle_server_rate_limit_responses_total{market="UM",status="429"}')).toBe(3);
    expect(valueOf(text, 'candle_server_rate_limit_responses_total{market="UM",status="418"}')).toBe(1);
  });

  it('counts symbols by state, exposes latency in seconds and the ban as 0/1 with its end', () => {
    const bannedUntil = Date.parse('2030-01-01T00:00:00Z');
    const server = serverWith(
      { weight: { used: 2400, budget: 1800, limit: 2400, queued: 5, bannedUntil } },
      { A: 'fresh', B: 'stale', C: 'banned', D: 'fresh' },
    );
    const text = formatMetrics(collectMetrics(server));
    expect(valueOf(text, 'candle_server_symbols{market="UM"}')).toBe(4);
    expect(valueOf(text, 'candle_server_symbols_stale{market="UM"}')).toBe(2);
    expect(valueOf(text, 'candle_server_symbol_states{market="UM",state="banned"}')).toBe(1);
    expect(valueOf(text, 'candle_server_derived_symbol_states{market="UM",interval="1h",state="warming"}')).toBe(4);
    expect(valueOf(text, 'candle_server_derived_symbol_states{market="UM",interval="1h",state="fresh"}')).toBe(0);
    expect(valueOf(text, 'candle_server_derived_seeds_total{market="UM"}')).toBe(0);
    expect(valueOf(text, 'candle_server_banned{market="UM"}')).toBe(1);
    expect(valueOf(text, 'candle_server_ban_end_seconds{market="UM"}')).toBe(bannedUntil / 1000);
    expect(valueOf(text, 'candle_server_weight_queued{market="UM"}')).toBe(5);
    expect(valueOf(text, 'candle_server_event_to_ring_latency_seconds_bucket{market="UM",le="0.0005"}')).toBe(1);
    expect(valueOf(text, 'candle_server_event_to_ring_latency_seconds_bucket{market="UM",le="0.005"}')).toBe(2);
    expect(valueOf(text, 'candle_server_event_to_ring_latency_seconds_sum{market="UM"}')).toBeCloseTo(0.0023, 10);
    expect(valueOf(text, 'candle_server_snapshot_duration_seconds{market="UM"}')).toBe(0.25);
    expect(valueOf(text, 'candle_server_gaps_repaired_total{market="UM"}')).toBe(2);
  });

  it('leaves out the series it has no value for rather than inventing one', () => {
    const text = formatMetrics(
      collectMetrics(serverWith({ snapshots: { written: 0, lastDurationMs: undefined, lastFile: undefined } }, {})),
    );
    expect(text).toContain('# TYPE candle_server_snapshot_duration_seconds gauge');
    expect(valueOf(text, 'candle_server_snapshot_duration_seconds{market="UM"}')).toBeUndefined();
    expect(valueOf(text, 'candle_server_event_loop_delay_p99_seconds{market="UM"}')).toBeUndefined();
  });

  it('names the shard followed (SHARD k/N) in candle_server_shard_info, and has no sample when not sharded', () => {
    const sharded = formatMetrics(collectMetrics(serverWith({}, { BTCUSDT: 'fresh' }, '2/4')));
    expect(valueOf(sharded, 'candle_server_shard_info{market="UM",shard="2",shards="4"}')).toBe(1);
    const whole = formatMetrics(collectMetrics(serverWith({}, { BTCUSDT: 'fresh' })));
    expect(whole).toContain('# TYPE candle_server_shard_info gauge');
    expect(whole).not.toMatch(/^candle_server_shard_info\{/m);
  });
});

describe('EventLoopDelayMonitor', () => {
  it('reports a blocked event loop in seconds, then starts a new window', async () => {
    const monitor = new EventLoopDelayMonitor(1);
    expect(monitor.read()).toBeUndefined();
    monitor.start();
    try {
      await new Promise((resolve) => setTimeout(resolve, 20));
      const until = Date.now() + 60;
      while (Date.now() < until) {
        // Block the loop so the monitor has a delay to see.
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
      const delay = monitor.read();
      expect(delay?.max).toBeGreaterThan(0.04);
      expect(delay?.max).toBeLessThan(60);
      expect(delay?.p50).toBeLessThanOrEqual(delay?.max ?? 0);
    } finally {
      monitor.stop();
    }
    expect(monitor.isRunning).toBe(false);
    expect(monitor.read()).toBeUndefined();
  });
});
