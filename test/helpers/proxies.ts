/**
 * Real proxies on loopback for tests: an HTTP CONNECT proxy (the `proxy` package) and a SOCKS5
 * proxy (`@pondwader/socks5-server`), each listening on 127.0.0.1 port 0 and counting what it
 * carries, so a test can check that every connection to the simulated exchange went through it.
 * `stop()` takes the proxy away abruptly (listener closed, every socket on both sides destroyed);
 * `restart()` brings it back on the same port.
 *
 * @example
 * ```ts
 * const proxy = await startHttpProxy({ auth: { username: 'u', password: 'p' } });
 * new CandleServer({ instType: 'SPOT', rule: simRule(sim, 'SPOT', dir, { PROXY: proxy.url }) });
 * // ... proxy.connections, proxy.outboundLocalPorts
 * await proxy.stop();
 * await proxy.restart();
 * await proxy.close();
 * ```
 */
import {
  request as httpRequest,
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import { createServer as createNetServer, Socket, type AddressInfo, type Server as NetServer } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { createServer as createSocksServer, defaultConnectionHandler } from '@pondwader/socks5-server';
import { createProxy } from 'proxy';

const HOST = '127.0.0.1';

/** Options of the proxy helpers. */
export interface LoopbackProxyOptions {
  /** Require these credentials (HTTP: `Proxy-Authorization: Basic`; SOCKS5: username/password). */
  readonly auth?: { readonly username: string; readonly password: string };
}

/** A proxy listening on 127.0.0.1, with what it has carried so far. */
export interface LoopbackProxy {
  /** `http://` or `socks5://` URL of the proxy, with `user:password@` when `auth` was given. */
  readonly url: string;
  readonly port: number;
  /** Connections carried to a target: tunnels (or forwarded requests' sockets) that reached it. */
  readonly connections: number;
  /** Client connections accepted by the listener, carried or not (a 407 or a refused login too). */
  readonly accepted: number;
  /** `host:port` of the target of each carried connection, in order. */
  readonly targets: readonly string[];
  /** Local port of each of the proxy's own sockets to a target, in order. */
  readonly outboundLocalPorts: readonly number[];
  /** Whether the listener is up (false between `stop()` and `restart()`). */
  readonly listening: boolean;
  /** Takes the proxy away: closes the listener and destroys every open socket, both sides. */
  stop(): Promise<void>;
  /** Listens again on the same port after `stop()`. */
  restart(): Promise<void>;
  /** Stops for good. Idempotent. */
  close(): Promise<void>;
}

/** Starts an HTTP proxy (CONNECT tunnels and absolute-URI requests) on 127.0.0.1, port 0. */
export async function startHttpProxy(options: LoopbackProxyOptions = {}): Promise<LoopbackProxy> {
  const tracker = new Tracker();
  const server = createProxy(createHttpServer());
  const { auth } = options;
  if (auth !== undefined) {
    const expected = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
    server.authenticate = (req: IncomingMessage) => req.headers['proxy-authorization'] === expected;
  }
  server.on('connection', (socket: Socket) => tracker.accept(socket));
  // CONNECT: once the tunnel is up the package pipes the target socket into the client's, which
  // announces it with 'pipe' (a public stream event): that is our outbound socket.
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    socket.on('pipe', (source: Readable) => {
      if (source instanceof Socket) tracker.carry(source, req.url ?? '');
    });
  });
  // Absolute-URI requests: the upstream response is piped into ours; its socket is the outbound one.
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    res.on('pipe', (source: Readable) => {
      const upstream = (source as Partial<IncomingMessage>).socket;
      if (upstream instanceof Socket) tracker.carry(upstream, new URL(req.url ?? '/', 'http://invalid').host);
    });
  });
  return startLoopback(server, tracker, (port) => `http://${credentials(auth)}${HOST}:${port}`);
}

/** Starts a SOCKS5 proxy (CONNECT command) on 127.0.0.1, port 0. */
export async function startSocks5Proxy(options: LoopbackProxyOptions = {}): Promise<LoopbackProxy> {
  const tracker = new Tracker();
  // The package's own listener is never started: ours hands it each socket, so we see them all.
  const socks = createSocksServer(options.auth === undefined ? {} : { auth: { ...options.auth } });
  socks.setConnectionHandler((connection, sendStatus) => {
    const outbound = defaultConnectionHandler(connection, sendStatus);
    if (outbound === undefined) return;
    tracker.track(outbound);
    outbound.once('ready', () => tracker.carry(outbound, `${connection.destAddress}:${connection.destPort}`));
  });
  const server = createNetServer((socket) => {
    tracker.accept(socket);
    socket.setNoDelay();
    socks._handleConnection(socket);
  });
  return startLoopback(server, tracker, (port) => `socks5://${credentials(options.auth)}${HOST}:${port}`);
}

function credentials(auth: LoopbackProxyOptions['auth']): string {
  return auth === undefined ? '' : `${encodeURIComponent(auth.username)}:${encodeURIComponent(auth.password)}@`;
}

// What a proxy has seen, and every socket it holds open (to destroy them on stop).
class Tracker {
  accepted = 0;
  readonly targets: string[] = [];
  readonly outboundLocalPorts: number[] = [];
  readonly #open = new Set<Duplex>();
  readonly #carried = new WeakSet<Socket>();

  accept(socket: Duplex): void {
    this.accepted += 1;
    this.track(socket);
  }

  track(socket: Duplex): void {
    // A destroyed peer must not crash the test process with an unhandled 'error'.
    socket.on('error', () => undefined);
    this.#open.add(socket);
    socket.once('close', () => this.#open.delete(socket));
  }

  carry(outbound: Socket, target: string): void {
    if (this.#carried.has(outbound)) return;
    this.#carried.add(outbound);
    this.track(outbound);
    this.targets.push(target);
    this.outboundLocalPorts.push(outbound.localPort ?? 0);
  }

  destroyAll(): void {
    for (const socket of this.#open) socket.destroy();
    this.#open.clear();
  }
}

async function startLoopback(server: NetServer | HttpServer, tracker: Tracker, urlOf: (port: number) => string): Promise<LoopbackProxy> {
  await listen(server, 0);
  const { port } = server.address() as AddressInfo;
  let closed = false;
  const stop = async (): Promise<void> => {
    if (!server.listening) {
      tracker.destroyAll();
      return;
    }
    const done = new Promise<void>((resolve) => server.close(() => resolve()));
    tracker.destroyAll();
    if ('closeAllConnections' in server) server.closeAllConnections();
    await done;
  };
  return {
    url: urlOf(port),
    port,
    get connections() {
      return tracker.targets.length;
    },
    get accepted() {
      return tracker.accepted;
    },
    targets: tracker.targets,
    outboundLocalPorts: tracker.outboundLocalPorts,
    get listening() {
      return server.listening;
    },
    stop,
    async restart() {
      if (closed) throw new Error('restart() after close()');
      if (server.listening) return;
      // The port was ours a moment ago; retry briefly in case the kernel still holds it.
      for (let attempt = 1; ; attempt += 1) {
        try {
          await listen(server, port);
          return;
        } catch (error) {
          if (attempt >= 20 || (error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    },
    async close() {
      closed = true;
      await stop();
    },
  };
}

function listen(server: NetServer, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen(port, HOST, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** A forwarding server in front of one simulated market, as the original's `proxy_host` expects. */
export interface ForwardingServer {
  /** `http://127.0.0.1:<port>`: the CandleServer's `proxyHost`. */
  readonly url: string;
  /** REST and archive requests forwarded, by path without the query. */
  readonly requests: readonly string[];
  /** The same requests as received: path and query (`/api/v3/klines?symbol=BTCUSDT&...`). */
  readonly targets: readonly string[];
  /** WebSocket upgrades forwarded, by path as received (`/ws-spot/stream`, ...). */
  readonly upgrades: readonly string[];
  close(): Promise<void>;
}

/**
 * Starts a forwarding server on 127.0.0.1 that sends every request to `target` (the simulator's
 * http://host:port) with its path unchanged, and every WebSocket upgrade under `/ws-<market>` to
 * the same target with that prefix taken off. Plain Node, written for the test: the
 * forwarding servers users run (nginx, Caddy) route the same paths.
 */
export async function startForwardingServer(target: string): Promise<ForwardingServer> {
  const { hostname, port } = new URL(target);
  const requests: string[] = [];
  const targets: string[] = [];
  const upgrades: string[] = [];
  const sockets = new Set<Duplex>();
  const track = (socket: Duplex): void => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => sockets.delete(socket));
  };
  const server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    requests.push((req.url ?? '').split('?')[0] ?? '');
    targets.push(req.url ?? '');
    const forwarded = httpRequest(
      { host: hostname, port: Number(port), method: req.method, path: req.url, headers: { ...req.headers, host: `${hostname}:${port}` } },
      (reply) => {
        res.writeHead(reply.statusCode ?? 502, reply.headers);
        reply.pipe(res);
      },
    );
    forwarded.on('error', () => res.destroy());
    req.pipe(forwarded);
  });
  server.on('connection', track);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = req.url ?? '/';
    upgrades.push(path.split('?')[0] ?? '');
    const rewritten = path.replace(/^\/ws-(spot|um|cm)(?=\/)/, '');
    const upstream = new Socket();
    track(upstream);
    upstream.connect(Number(port), hostname, () => {
      const lines = [`GET ${rewritten} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const name = req.rawHeaders[i] ?? '';
        lines.push(`${name}: ${name.toLowerCase() === 'host' ? `${hostname}:${port}` : (req.rawHeaders[i + 1] ?? '')}`);
      }
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      upstream.pipe(socket).pipe(upstream);
    });
    socket.once('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const address = server.address() as AddressInfo;
  return {
    url: `http://${HOST}:${address.port}`,
    requests,
    targets,
    upgrades,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
