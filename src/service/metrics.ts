/**
 * Prometheus metrics of a CandleServer, in the text exposition format 0.0.4:
 *
 * ```
 * # HELP candle_server_requests_total REST requests to the exchange, by endpoint and HTTP status ...
 * # TYPE candle_server_requests_total counter
 * candle_server_requests_total{market="UM",endpoint="/fapi/v1/klines",status="200"} 412
 * # TYPE candle_server_event_to_ring_latency_seconds histogram
 * candle_server_event_to_ring_latency_seconds_bucket{market="UM",le="0.00025"} 3
 * ...
 * candle_server_event_to_ring_latency_seconds_bucket{market="UM",le="+Inf"} 980
 * candle_server_event_to_ring_latency_seconds_sum{market="UM"} 1.93
 * candle_server_event_to_ring_latency_seconds_count{market="UM"} 980
 * ```
 *
 * The format is small enough to write here (prom-client would bring a global registry and its own
 * event-loop collectors for a dozen series read from `stats()`). Every name starts `candle_server_`
 * and every series carries a `market` label; counters end in `_total`. Durations are exposed in
 * seconds, as Prometheus prefers, even where the server measures milliseconds (the event-to-ring
 * latency histogram: its millisecond bounds become `le` values in seconds).
 *
 * @example
 * ```ts
 * const loop = new EventLoopDelayMonitor();
 * loop.start();
 * const text = formatMetrics(collectMetrics(server, { eventLoop: loop }));
 * response.setHeader('content-type', METRICS_CONTENT_TYPE).end(text);
 * loop.stop();
 * ```
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { CandleServer } from '../candle-server.js';
import type { SymbolState } from '../sync/candle-sync.js';
import { shardSpecOf } from '../rule.js';

/** The Content-Type of the text exposition format. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Label names and values of one series. */
export type MetricLabels = Readonly<Record<string, string>>;

/** One sample of a counter or gauge. */
export interface MetricSample {
  readonly labels: MetricLabels;
  readonly value: number;
}

/** One series of a histogram: cumulative bucket counts by upper bound (the last `+Inf`), sum and count. */
export interface HistogramSeries {
  readonly labels: MetricLabels;
  readonly buckets: ReadonlyArray<{ readonly le: number; readonly count: number }>;
  readonly sum: number;
  readonly count: number;
}

/**
 * A metric family: its name (a counter's ends `_total`), help text, type and series.
 *
 * @example
 * ```ts
 * const family: MetricFamily = { name: 'candle_server_symbols', help: 'Symbols followed.', type: 'gauge',
 *   samples: [{ labels: { market: 'UM' }, value: 412 }] };
 * ```
 */
export type MetricFamily =
  | { readonly name: string; readonly help: string; readonly type: 'counter' | 'gauge'; readonly samples: readonly MetricSample[] }
  | { readonly name: string; readonly help: string; readonly type: 'histogram'; readonly series: readonly HistogramSeries[] };

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * A label value escaped for the exposition format: backslash, double quote and line feed.
 *
 * @example
 * ```ts
 * escapeLabelValue('a"b\\c\nd'); // 'a\\"b\\\\c\\nd'
 * ```
 */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/**
 * A sample value as the format writes it: `+Inf`, `-Inf`, `NaN`, else the number.
 *
 * @example
 * ```ts
 * formatSampleValue(Number.POSITIVE_INFINITY); // '+Inf'
 * formatSampleValue(0.25);                     // '0.25'
 * ```
 */
export function formatSampleValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

/**
 * Writes metric families as Prometheus text (format 0.0.4): `# HELP` and `# TYPE` lines, then the
 * samples; a histogram gets `_bucket{le=...}` (cumulative), `_sum` and `_count` lines. Throws
 * RangeError on a metric or label name the format does not allow, since that is a bug here.
 *
 * @example
 * ```ts
 * formatMetrics([{ name: 'x_total', help: 'Things.', type: 'counter', samples: [{ labels: { market: 'UM' }, value: 3 }] }]);
 * // '# HELP x_total Things.\n# TYPE x_total counter\nx_total{market="UM"} 3\n'
 * ```
 */
export function formatMetrics(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const family of families) {
    if (!METRIC_NAME.test(family.name))
      throw new RangeError(`metric name ${JSON.stringify(family.name)} is invalid: expected [a-zA-Z_:][a-zA-Z0-9_:]*`);
    lines.push(`# HELP ${family.name} ${family.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
    lines.push(`# TYPE ${family.name} ${family.type}`);
    if (family.type === 'histogram') {
      for (const series of family.series) {
        for (const bucket of series.buckets) {
          lines.push(sampleLine(`${family.name}_bucket`, { ...series.labels, le: formatSampleValue(bucket.le) }, bucket.count));
        }
        lines.push(sampleLine(`${family.name}_sum`, series.labels, series.sum));
        lines.push(sampleLine(`${family.name}_count`, series.labels, series.count));
      }
    } else {
      for (const sample of family.samples) lines.push(sampleLine(family.name, sample.labels, sample.value));
    }
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

function sampleLine(name: string, labels: MetricLabels, value: number): string {
  const pairs: string[] = [];
  for (const [label, text] of Object.entries(labels)) {
    if (!LABEL_NAME.test(label))
      throw new RangeError(`label name ${JSON.stringify(label)} of ${name} is invalid: expected [a-zA-Z_][a-zA-Z0-9_]*`);
    pairs.push(`${label}="${escapeLabelValue(text)}"`);
  }
  return `${name}${pairs.length === 0 ? '' : `{${pairs.join(',')}}`} ${formatSampleValue(value)}`;
}

/** Event-loop delay over one window, in seconds. */
export interface EventLoopDelay {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/**
 * Samples the event-loop delay (`perf_hooks.monitorEventLoopDelay`) between `start()` and
 * `stop()`. Each `read()` reports the window since the previous read, then starts a new one, so a
 * scrape every 15 s shows the last 15 s rather than a lifetime average that hides a recent stall.
 *
 * @example
 * ```ts
 * const loop = new EventLoopDelayMonitor();
 * loop.start();
 * setTimeout(() => { console.log(loop.read()?.p99); loop.stop(); }, 1000);
 * ```
 */
export class EventLoopDelayMonitor {
  // Created on start() so that a monitor never started holds no sampling timer.
  #histogram: IntervalHistogram | undefined;
  readonly #resolutionMs: number;

  /** `resolutionMs`: sampling period of the underlying timer (default 10 ms). */
  constructor(resolutionMs = 10) {
    this.#resolutionMs = resolutionMs;
  }

  /** True between start() and stop(). */
  get isRunning(): boolean {
    return this.#histogram !== undefined;
  }

  /** Starts sampling. Idempotent. */
  start(): void {
    if (this.#histogram !== undefined) return;
    this.#histogram = monitorEventLoopDelay({ resolution: this.#resolutionMs });
    this.#histogram.enable();
  }

  /** Stops sampling and drops the samples. Idempotent. */
  stop(): void {
    this.#histogram?.disable();
    this.#histogram = undefined;
  }

  /** The delay since the previous read (undefined when stopped or nothing was sampled yet). */
  read(): EventLoopDelay | undefined {
    const histogram = this.#histogram;
    if (histogram === undefined || histogram.count === 0) return undefined;
    const delay = {
      p50: histogram.percentile(50) / 1e9,
      p99: histogram.percentile(99) / 1e9,
      max: histogram.max / 1e9,
    };
    histogram.reset();
    return delay;
  }
}

/** Options of {@link collectMetrics}. */
export interface CollectMetricsOptions {
  /** Freshness window used to count stale symbols (default 180, as getCandleSecurity). */
  readonly securitySeconds?: number;
  /** Event-loop delay source; its series are left out when absent or empty. */
  readonly eventLoop?: EventLoopDelayMonitor;
}

const STATES: readonly SymbolState[] = ['fresh', 'stale', 'warming', 'repairing', 'overdue', 'banned'];

/**
 * Reads a CandleServer's counters and gauges into metric families (see the module comment for the
 * names). Cheap enough for every scrape: one `status()` per symbol, no I/O.
 *
 * @example
 * ```ts
 * const text = formatMetrics(collectMetrics(server, { securitySeconds: 60 }));
 * ```
 */
export function collectMetrics(server: CandleServer, options: CollectMetricsOptions = {}): MetricFamily[] {
  const stats = server.stats();
  const market = { market: stats.market };
  const gauge = (name: string, help: string, value: number | undefined): MetricFamily => ({
    name: `candle_server_${name}`,
    help,
    type: 'gauge',
    samples: value === undefined ? [] : [{ labels: market, value }],
  });
  const counter = (name: string, help: string, value: number): MetricFamily => ({
    name: `candle_server_${name}_total`,
    help,
    type: 'counter',
    samples: [{ labels: market, value }],
  });

  const requests: MetricSample[] = [];
  const rateLimited = new Map<string, number>([
    ['429', 0],
    ['418', 0],
  ]);
  for (const [key, count] of stats.requests) {
    const split = key.lastIndexOf(' ');
    const endpoint = split < 0 ? key : key.slice(0, split);
    const status = split < 0 ? '0' : key.slice(split + 1);
    requests.push({ labels: { ...market, endpoint, status }, value: count });
    if (rateLimited.has(status)) rateLimited.set(status, (rateLimited.get(status) ?? 0) + count);
  }

  const states = new Map<SymbolState, number>(STATES.map((state) => [state, 0]));
  const symbols = server.symbols();
  for (const symbol of symbols) {
    const state = server.status(symbol, options.securitySeconds ?? 180).state;
    states.set(state, (states.get(state) ?? 0) + 1);
  }

  // Derived rings (INTERVALS), by interval and state.
  const derivedStates: MetricSample[] = [];
  for (const interval of server.intervals.slice(1)) {
    const counts = new Map<SymbolState, number>(STATES.map((state) => [state, 0]));
    for (const symbol of symbols) {
      const state = server.status(symbol, options.securitySeconds ?? 180, { interval }).state;
      counts.set(state, (counts.get(state) ?? 0) + 1);
    }
    for (const [state, value] of counts) derivedStates.push({ labels: { ...market, interval, state }, value });
  }

  const bannedUntil = stats.weight.bannedUntil;
  const streams = stats.streams ?? { connections: 0, reconnects: 0, messages: 0, malformed: 0 };
  const loop = options.eventLoop?.read();
  const snapshotSeconds = stats.snapshots.lastDurationMs === undefined ? undefined : stats.snapshots.lastDurationMs / 1000;
  const shard = shardSpecOf(server.rule);

  return [
    gauge('weight_used', 'Request weight used in the current minute window, as the exchange reports it.', stats.weight.used),
    gauge('weight_budget', "Request weight this server may use per minute (SERVER_WEIGHT of the exchange's limit).", stats.weight.budget),
    gauge('weight_limit', "The exchange's REQUEST_WEIGHT limit per minute.", stats.weight.limit),
    gauge('weight_queued', 'Requests waiting for weight budget.', stats.weight.queued),
    gauge('banned', '1 while an IP ban (HTTP 418) is in force, else 0.', bannedUntil === undefined ? 0 : 1),
    gauge(
      'ban_end_seconds',
      'End of the IP ban in force, Unix time in seconds on the exchange clock (0 when none).',
      (bannedUntil ?? 0) / 1000,
    ),
    {
      name: 'candle_server_requests_total',
      help: 'REST requests to the exchange, by endpoint and HTTP status (0: no usable reply).',
      type: 'counter',
      samples: requests,
    },
    {
      name: 'candle_server_rate_limit_responses_total',
      help: 'Exchange replies with HTTP 429 (limit broken) or 418 (IP banned).',
      type: 'counter',
      samples: [...rateLimited].map(([status, value]) => ({ labels: { ...market, status }, value })),
    },
    gauge('stream_connections', 'Open kline stream connections.', streams.connections),
    counter('stream_reconnects', 'Kline stream connections re-opened after a drop or stall.', streams.reconnects),
    counter('stream_messages', 'Kline stream messages received.', streams.messages),
    counter('stream_malformed', 'Kline stream messages that could not be decoded.', streams.malformed),
    {
      name: 'candle_server_event_to_ring_latency_seconds',
      help: 'From the exchange event time to the candle written in the ring, in seconds.',
      type: 'histogram',
      series: [
        {
          labels: market,
          buckets: stats.latency.cumulative().map(({ le, count }) => ({ le: le / 1000, count })),
          sum: stats.latency.sum / 1000,
          count: stats.latency.count,
        },
      ],
    },
    gauge('symbols', 'Symbols followed (the universe after filters).', symbols.length),
    {
      name: 'candle_server_shard_info',
      help: 'Present (1) when the universe is split across servers (SHARD k/N): this server follows shard k of N.',
      type: 'gauge',
      samples: shard === undefined ? [] : [{ labels: { ...market, shard: String(shard.index), shards: String(shard.count) }, value: 1 }],
    },
    gauge('symbols_ready', 'Symbols whose ring has been filled.', stats.ready),
    gauge('symbols_stale', 'Symbols not served now: any state but fresh.', symbols.length - (states.get('fresh') ?? 0)),
    {
      name: 'candle_server_symbol_states',
      help: 'Symbols by state: fresh, stale, warming, repairing, overdue (a close missed its boundary deadline), banned.',
      type: 'gauge',
      samples: [...states].map(([state, value]) => ({ labels: { ...market, state }, value })),
    },
    {
      name: 'candle_server_derived_symbol_states',
      help: 'Symbols by state in each derived interval (INTERVALS); warming until the interval is seeded.',
      type: 'gauge',
      samples: derivedStates,
    },
    counter('derived_seeds', 'Derived rings seeded (at start, and after the base ring lost candles they needed).', stats.sync.derivedSeeds),
    counter('gaps_found', 'Holes found in the candles (disconnects, skipped candles).', stats.sync.gapsFound),
    counter('gaps_repaired', 'Holes filled over REST.', stats.sync.gapsRepaired),
    counter('overdue_fetches', 'Closes fetched over REST because the stream missed their boundary deadline.', stats.sync.overdueFetches),
    {
      name: 'candle_server_updates_total',
      help: 'Candle updates written into the rings, by source.',
      type: 'counter',
      samples: [
        { labels: { ...market, source: 'stream' }, value: stats.sync.streamUpdates },
        { labels: { ...market, source: 'rest' }, value: stats.sync.restUpdates },
      ],
    },
    counter('sweeps', 'REST sweeps run.', stats.sync.sweeps),
    counter('snapshots_written', 'Snapshots of the candle map written.', stats.snapshots.written),
    gauge('snapshot_duration_seconds', 'Duration of the last snapshot write.', snapshotSeconds),
    gauge('event_loop_delay_p50_seconds', 'Median event-loop delay since the previous scrape.', loop?.p50),
    gauge('event_loop_delay_p99_seconds', '99th percentile of the event-loop delay since the previous scrape.', loop?.p99),
    gauge('event_loop_delay_max_seconds', 'Largest event-loop delay since the previous scrape.', loop?.max),
    gauge('memory_bytes', 'Bytes of candle memory held by the rings.', stats.memoryBytes),
    gauge('ready', '1 once every symbol has been filled, else 0.', server.isReady ? 1 : 0),
    ...natsFamilies(stats, market),
  ];
}

/** NATS publishing (only when NATS_URL is set and the publisher started). */
function natsFamilies(stats: ReturnType<CandleServer['stats']>, market: MetricLabels): MetricFamily[] {
  const nats = stats.nats;
  if (nats === undefined) return [];
  const one = (value: number): MetricSample[] => [{ labels: market, value }];
  return [
    {
      name: 'candle_server_nats_published_total',
      help: 'Messages published to NATS, by kind: stored (JetStream acknowledged, duplicates included), live, status.',
      type: 'counter',
      samples: [
        { labels: { ...market, kind: 'stored' }, value: nats.stored },
        { labels: { ...market, kind: 'live' }, value: nats.live },
        { labels: { ...market, kind: 'status' }, value: nats.status },
      ],
    },
    {
      name: 'candle_server_nats_duplicates_total',
      help: 'JetStream publishes that JetStream had already (de-duplicated by Nats-Msg-Id).',
      type: 'counter',
      samples: one(nats.duplicates),
    },
    {
      name: 'candle_server_nats_publish_errors_total',
      help: 'NATS publishes that failed (kept and retried).',
      type: 'counter',
      samples: one(nats.errors),
    },
    {
      name: 'candle_server_nats_connected',
      help: '1 while connected to NATS, else 0.',
      type: 'gauge',
      samples: one(nats.isConnected ? 1 : 0),
    },
    {
      name: 'candle_server_nats_backlog',
      help: 'Symbol-intervals with final candles not yet stored in JetStream.',
      type: 'gauge',
      samples: one(nats.backlog),
    },
    {
      name: 'candle_server_nats_last_publish_seconds',
      help: 'Unix time in seconds (local clock) of the last JetStream publish acknowledged.',
      type: 'gauge',
      samples: nats.lastPublishAt === undefined ? [] : one(nats.lastPublishAt / 1000),
    },
  ];
}
