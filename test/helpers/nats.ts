/**
 * A real NATS server with JetStream for the tests: Debian's `nats-server -js`, started on a free
 * loopback port with its store in a temp folder, or the server named by NATS_URL when set (then
 * it is neither started nor stopped here). A missing binary fails with what to install; nothing is
 * skipped.
 *
 * @example
 * ```ts
 * const nats = await startNats();
 * // ... connect to nats.url ...
 * await nats.restart(); // a NATS outage, same port and store
 * await nats.stop();
 * ```
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A NATS server for one test file. */
export interface TestNats {
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  /** True when this helper started the server (not when NATS_URL named one). */
  readonly isOwn: boolean;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s); its store is kept for `start`. */
  kill(): Promise<void>;
  /** Starts it again on the same port with the same store, and waits until it accepts connections. */
  start(): Promise<void>;
  /** kill() then start(): an outage of NATS. */
  restart(): Promise<void>;
  /** Stops it and removes its store. */
  stop(): Promise<void>;
}

const BINARY = 'nats-server';
const INSTALL_HINT =
  'install it with `apt-get update && apt-get install -y nats-server` (Debian), or set NATS_URL to a server with JetStream';

/** Starts `nats-server -js` on a free 127.0.0.1 port in a temp folder, or uses NATS_URL when set. */
export async function startNats(): Promise<TestNats> {
  const given = process.env['NATS_URL'];
  if (given !== undefined && given !== '') {
    const noop = async (): Promise<void> => undefined;
    const refuse = async (): Promise<void> => {
      throw new Error(`NATS_URL=${given} is not started by the tests, so it cannot be stopped or restarted here`);
    };
    return { url: given, isOwn: false, kill: refuse, start: refuse, restart: refuse, stop: noop };
  }
  const found = spawnSync(BINARY, ['--version'], { encoding: 'utf8' });
  if (found.error !== undefined || found.status !== 0) {
    throw new Error(`the tests need a NATS server: ${BINARY} was not found on PATH; ${INSTALL_HINT}`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'candle-nats-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  let output = '';
  const start = async (): Promise<void> => {
    output = '';
    child = spawn(BINARY, ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', join(dir, 'jetstream'), '--http_port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 10_000;
    while (!(await accepts(port))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`${BINARY} did not start on 127.0.0.1:${port}: ${output.slice(-2000)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const kill = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill('SIGTERM');
    const timer = setTimeout(() => running.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    isOwn: true,
    kill,
    start,
    restart: async () => {
      await kill();
      await start();
    },
    stop: async () => {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A port nothing listens on now (bound and released on 127.0.0.1). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/** True when something accepts TCP connections on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
