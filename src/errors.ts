/**
 * One error hierarchy for the whole library. Every error has a stable literal `code` that callers
 * can switch on, and an optional `cause`.
 *
 * @example
 * ```ts
 * try {
 *   await client.klines({ symbol: 'BTCUSDT', interval: '1m' });
 * } catch (error) {
 *   if (error instanceof RateLimitError) console.log('retry in', error.retryAfterMs);
 * }
 * ```
 */
export class CandleServerError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
  }
}

/** Where an exchange request went: market and endpoint path, for error messages and metrics. */
export interface EndpointRef {
  readonly market: string;
  readonly endpoint: string;
}

/**
 * The exchange answered with an error status. Carries the HTTP status, Binance's numeric code and
 * message (when the body had them) and the endpoint.
 */
export class ExchangeError extends CandleServerError {
  readonly status: number;
  readonly binanceCode: number | undefined;
  readonly binanceMessage: string | undefined;
  readonly market: string;
  readonly endpoint: string;

  constructor(
    init: EndpointRef & { status: number; binanceCode?: number | undefined; binanceMessage?: string | undefined },
    options?: { cause?: unknown; code?: string },
  ) {
    const detail =
      init.binanceCode === undefined ? '' : ` code ${init.binanceCode}${init.binanceMessage ? ` "${init.binanceMessage}"` : ''}`;
    super(options?.code ?? 'EXCHANGE_ERROR', `${init.market} ${init.endpoint} answered HTTP ${init.status}${detail}`, options);
    this.status = init.status;
    this.binanceCode = init.binanceCode;
    this.binanceMessage = init.binanceMessage;
    this.market = init.market;
    this.endpoint = init.endpoint;
  }
}

/**
 * HTTP 429 (too many requests) or 418 (IP banned). `retryAfterMs` is how long to send nothing;
 * `until` is the epoch millisecond at which requests may resume.
 */
export class RateLimitError extends ExchangeError {
  readonly retryAfterMs: number;
  readonly until: number;
  readonly isBan: boolean;

  constructor(
    init: EndpointRef & {
      status: 429 | 418;
      binanceCode?: number | undefined;
      binanceMessage?: string | undefined;
      retryAfterMs: number;
      until: number;
    },
    options?: { cause?: unknown },
  ) {
    super(init, { ...options, code: init.status === 418 ? 'IP_BANNED' : 'RATE_LIMITED' });
    this.retryAfterMs = init.retryAfterMs;
    this.until = init.until;
    this.isBan = init.status === 418;
    this.message += `; no requests for ${Math.ceil(init.retryAfterMs / 1000)} s (until ${new Date(init.until).toISOString()})`;
  }
}

/** The request was refused locally because an IP ban is in force; nothing was sent. */
export class BannedError extends CandleServerError {
  readonly until: number;

  constructor(budget: string, until: number) {
    super('BAN_IN_FORCE', `the ${budget} weight budget is banned until ${new Date(until).toISOString()}; request not sent`);
    this.until = until;
  }
}

/**
 * Weight asked at a priority that does not wait ('forward') could not be granted at once: the
 * budget's window is spent, live or back-fill work is waiting, or requests are paused after a 429.
 * Nothing was sent. `retryAt` is the exchange time at which it may fit (the window's turn, or the
 * pause's end).
 */
export class WeightUnavailableError extends CandleServerError {
  readonly budget: string;
  readonly weight: number;
  readonly used: number;
  readonly limit: number;
  readonly retryAt: number;
  readonly retryAfterMs: number;

  constructor(init: {
    budget: string;
    weight: number;
    used: number;
    limit: number;
    reason: string;
    retryAt: number;
    retryAfterMs: number;
  }) {
    super(
      'WEIGHT_UNAVAILABLE',
      `the ${init.budget} weight budget cannot grant ${init.weight} at once (${init.used} of ${init.limit} used in this window): ${init.reason}; try again in ${Math.max(0, Math.ceil(init.retryAfterMs / 1000))} s; request not sent`,
    );
    this.budget = init.budget;
    this.weight = init.weight;
    this.used = init.used;
    this.limit = init.limit;
    this.retryAt = init.retryAt;
    this.retryAfterMs = init.retryAfterMs;
  }
}

/** The exchange's reply could not be understood (bad JSON, wrong shape). */
export class MalformedResponseError extends CandleServerError {
  readonly market: string;
  readonly endpoint: string;

  constructor(ref: EndpointRef, detail: string, options?: { cause?: unknown }) {
    super('MALFORMED_RESPONSE', `${ref.market} ${ref.endpoint} sent a malformed reply: ${detail}`, options);
    this.market = ref.market;
    this.endpoint = ref.endpoint;
  }
}

/** The connection failed before an HTTP status arrived (refused, reset, DNS). */
export class NetworkError extends CandleServerError {
  readonly market: string;
  readonly endpoint: string;

  /** The proxy the request went through, credentials hidden (`http://***@host:port`). */
  readonly via: string | undefined;

  constructor(ref: EndpointRef, options?: { cause?: unknown; via?: string | undefined }) {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a cause that is not an Error (a code, a message) is shown as it is
    const cause = options?.cause instanceof Error ? options.cause.message : String(options?.cause ?? 'unknown');
    // A proxy's credentials never appear in a message, whatever the cause's text holds.
    const redacted = redactCredentials(cause);
    // Some causes repeat their own message after a colon ("x: x"): say it once.
    const reason = /^(.+): \1$/.exec(redacted)?.[1] ?? redacted;
    const through = options?.via === undefined ? '' : ` through the proxy ${options.via}`;
    super('NETWORK_ERROR', `${ref.market} ${ref.endpoint} could not be reached${through}: ${reason}`, options);
    this.via = options?.via;
    this.market = ref.market;
    this.endpoint = ref.endpoint;
  }
}

/** A request took longer than its time-out. */
export class TimeoutError extends CandleServerError {
  readonly market: string;
  readonly endpoint: string;
  readonly timeoutMs: number;

  constructor(ref: EndpointRef, timeoutMs: number, options?: { cause?: unknown }) {
    super('TIMEOUT', `${ref.market} ${ref.endpoint} did not answer within ${timeoutMs} ms`, options);
    this.market = ref.market;
    this.endpoint = ref.endpoint;
    this.timeoutMs = timeoutMs;
  }
}

/** The caller aborted the operation (its AbortSignal fired). */
export class AbortedError extends CandleServerError {
  constructor(what: string, options?: { cause?: unknown }) {
    super('ABORTED', `${what} was aborted`, options);
  }
}

/** A method was called on an object that has been closed or destroyed. */
export class ClosedError extends CandleServerError {
  constructor(what: string) {
    super('USE_AFTER_CLOSE', `${what} is closed`);
  }
}

/** One problem found in a configuration: where, what was received, what was expected. */
export interface ConfigIssue {
  readonly path: string;
  readonly received: unknown;
  readonly message: string;
}

/** A CandleRule (or another configuration) is invalid. `issues` lists every problem found. */
export class ConfigError extends CandleServerError {
  readonly issues: readonly ConfigIssue[];

  constructor(source: string, issues: readonly ConfigIssue[], options?: { cause?: unknown }) {
    const lines = issues.map((i) => `  - ${i.path || '(root)'}: ${i.message} (received ${formatReceived(i.received)})`);
    super('INVALID_CONFIG', `invalid ${source}:\n${lines.join('\n')}`, options);
    this.issues = issues;
  }
}

/** An argument to a public function is invalid (bad symbol, interval, range). */
export class InvalidArgumentError extends CandleServerError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

/** A file on disk (daily candle file, snapshot, archive) is corrupt or does not match. */
export class CorruptFileError extends CandleServerError {
  readonly file: string;

  constructor(file: string, detail: string, options?: { cause?: unknown }) {
    super('CORRUPT_FILE', `${file}: ${detail}`, options);
    this.file = file;
  }
}

function formatReceived(value: unknown): string {
  if (value === undefined) return 'nothing';
  try {
    const text = JSON.stringify(value);
    return text.length > 80 ? `${text.slice(0, 77)}...` : text;
  } catch {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- the last resort for what JSON cannot hold (cycles, BigInt)
    return String(value);
  }
}

/**
 * Hides the credentials of URLs in text (`scheme://user:password@host` becomes
 * `scheme://***@host`), so that a proxy's password never reaches a log line, an error message or a
 * metric.
 *
 * @example
 * ```ts
 * redactCredentials('connect to http://me:secret@127.0.0.1:7890 failed'); // 'connect to http://***@127.0.0.1:7890 failed'
 * ```
 */
export function redactCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, '$1***@');
}
