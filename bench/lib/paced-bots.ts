/**
 * Bots that poll at a steady pace, in a process of their own: `bots` keep-alive connections, each
 * requesting its `paths` in turn, one every `everyMs / paths.length` ms (a bot polling 200 symbols
 * every 5 s sends one request every 25 ms), the bots' schedules spread over that interval.
 * autocannon's rate limit instead sends each connection's quota at the start of every second (a
 * burst, then silence); both are measured.
 *
 * Latency is taken from the moment a request was due, not from when it was sent: a bot held up by
 * a slow reply sends late, and that delay counts (no coordinated omission).
 *
 * @example
 * ```ts
 * const result = await runPacedBots({ url: api.url, bots: 50, paths, everyMs: 5000, seconds: 30 });
 * result.latencyMs.p99;
 * ```
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { connect, type Socket } from 'node:net';
import { Samples, type SampleSummary } from './measure.js';

/** What the bots do. */
export interface PacedBotsOptions {
  /** Origin of the server, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  readonly bots: number;
  /** Each bot's requests, in order, again and again. */
  readonly paths: readonly string[];
  /** One pass over `paths` per this many ms, per bot. */
  readonly everyMs: number;
  readonly seconds: number;
  /** Seconds of the same load before measuring: connections open, JIT warm (default 2). */
  readonly warmupSeconds?: number;
}

/** What they measured. */
export interface PacedBotsResult {
  readonly requests: number;
  readonly requestsPerSecond: number;
  readonly latencyMs: SampleSummary;
  readonly non2xx: number;
  readonly errors: number;
  readonly megabytesPerSecond: number;
  /** How far the latest request was sent behind its schedule, ms. */
  readonly maxLateMs: number;
}

const SCRIPT = fileURLToPath(import.meta.url);

/** Runs the bots in a child process and resolves with what they measured. */
export async function runPacedBots(options: PacedBotsOptions): Promise<PacedBotsResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`the paced bots exited with code ${String(code)}: ${output.slice(0, 500)}`);
  return JSON.parse(output) as PacedBotsResult;
}

/**
 * One keep-alive HTTP/1.1 connection that sends a GET and reads its reply: a raw socket and a
 * minimal reader (status line, Content-Length), so that the bots' own CPU stays small beside the
 * server's and does not set the pace on a machine with few cores.
 */
class Connection {
  readonly #socket: Socket;
  readonly #host: string;
  // The reply being read: its head so far, then the body bytes still to come.
  #head: Buffer = Buffer.alloc(0);
  #bodyLeft: number | undefined;
  #bodyLength = 0;
  #status = 0;
  #pending: { resolve: (reply: { status: number; bytes: number }) => void; reject: (error: Error) => void } | undefined;

  constructor(url: URL) {
    this.#host = url.host;
    this.#socket = connect({ host: url.hostname, port: Number(url.port) });
    this.#socket.setNoDelay(true);
    this.#socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.#socket.on('error', (error) => this.#pending?.reject(error));
    this.#socket.on('close', () => this.#pending?.reject(new Error('connection closed')));
  }

  get(path: string): Promise<{ status: number; bytes: number }> {
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.#socket.write(`GET ${path} HTTP/1.1\r\nHost: ${this.#host}\r\nConnection: keep-alive\r\n\r\n`);
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  #onData(chunk: Buffer): void {
    let data: Buffer = chunk;
    while (data.length > 0) {
      if (this.#bodyLeft === undefined) {
        // Reading the head: keep bytes until its blank line.
        this.#head = this.#head.length === 0 ? data : Buffer.concat([this.#head, data]);
        const headEnd = this.#head.indexOf('\r\n\r\n');
        if (headEnd < 0) return;
        const head = this.#head.toString('latin1', 0, headEnd);
        this.#status = Number(head.slice(9, 12));
        this.#bodyLength = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        this.#bodyLeft = this.#bodyLength;
        data = this.#head.subarray(headEnd + 4);
        this.#head = Buffer.alloc(0);
      }
      const taken = Math.min(this.#bodyLeft, data.length);
      this.#bodyLeft -= taken;
      data = data.subarray(taken);
      if (this.#bodyLeft > 0) return;
      this.#bodyLeft = undefined;
      const pending = this.#pending;
      this.#pending = undefined;
      pending?.resolve({ status: this.#status, bytes: this.#bodyLength });
    }
  }
}

async function main(options: PacedBotsOptions): Promise<PacedBotsResult> {
  const intervalMs = options.everyMs / options.paths.length;
  const samples = new Samples(Math.ceil(options.bots * ((options.seconds * 1000) / intervalMs) * 1.1) + 1000);
  let non2xx = 0;
  let errors = 0;
  let bytes = 0;
  let maxLateMs = 0;
  const start = performance.now() + 200;
  const measureFrom = start + (options.warmupSeconds ?? 2) * 1000;
  const end = measureFrom + options.seconds * 1000;
  const url = new URL(options.url);
  const bot = async (index: number): Promise<void> => {
    const connection = new Connection(url);
    const offset = (index / options.bots) * intervalMs;
    try {
      for (let k = 0; ; k += 1) {
        const due = start + offset + k * intervalMs;
        if (due >= end) break;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        const isMeasured = due >= measureFrom;
        // A timer may fire a fraction of a ms early: then the request counts from when it was sent.
        const from = Math.min(due, performance.now());
        if (isMeasured) maxLateMs = Math.max(maxLateMs, performance.now() - due);
        try {
          const reply = await connection.get(options.paths[k % options.paths.length] ?? '/');
          if (isMeasured) bytes += reply.bytes;
          if (isMeasured && (reply.status < 200 || reply.status > 299)) non2xx += 1;
        } catch {
          if (isMeasured) errors += 1;
          break;
        }
        if (isMeasured) samples.add(performance.now() - from);
      }
    } finally {
      connection.close();
    }
  };
  await Promise.all(Array.from({ length: options.bots }, (_, i) => bot(i)));
  const seconds = (performance.now() - measureFrom) / 1000;
  return {
    requests: samples.count,
    requestsPerSecond: samples.count / seconds,
    latencyMs: samples.summary(),
    non2xx,
    errors,
    megabytesPerSecond: bytes / 1e6 / seconds,
    maxLateMs,
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await main(JSON.parse(process.argv[2] ?? '{}') as PacedBotsOptions);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
