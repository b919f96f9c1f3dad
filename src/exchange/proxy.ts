/**
 * Reaching the exchange through a proxy: an HTTP(S) proxy (CONNECT tunnels) or a SOCKS5 proxy,
 * for every connection (REST, kline streams, archives), chosen per target the way curl and the
 * requests library choose (`http` for http:// and ws://, `https` for https:// and wss://, `all`
 * for both, `no_proxy` for hosts reached directly). A connection the proxy cannot make is an
 * error, never a silent direct connection. Credentials never leave this module in text: every
 * message shows the proxy as `http://***@host:port`.
 *
 * ```
 * REST      undici ProxyAgent (http/https proxy) | Socks5ProxyAgent (socks5)   -> exchange
 * streams   ws + https-proxy-agent (CONNECT)     | socks-proxy-agent           -> exchange
 * archives  undici, as REST                                                      -> data.binance.vision
 * ```
 *
 * @example
 * ```ts
 * const proxy = proxyFor('https://api.binance.com', { https: 'http://user:pass@127.0.0.1:7890' });
 * redactProxyUrl(proxy); // 'http://***@127.0.0.1:7890'
 * const dispatcher = proxyDispatcher(proxy, { connections: 64 });
 * ```
 */
import type { Agent as HttpAgent } from 'node:http';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { SocksProxyAgent } from 'socks-proxy-agent';
import { ProxyAgent, Socks5ProxyAgent, type Dispatcher } from 'undici';
import { InvalidArgumentError, redactCredentials } from '../errors.js';

/** Proxy schemes accepted. */
export const PROXY_PROTOCOLS = ['http:', 'https:', 'socks5:', 'socks5h:'] as const;

/**
 * Proxies per target scheme, as the requests library takes them (the original's `proxies`):
 * `http` for http:// and ws:// targets, `https` for https:// and wss://, `all` for both when the
 * scheme's own is absent, and `no_proxy` (comma-separated hosts, `.suffix`, `*.suffix`,
 * `host:port`, or `*`) for targets reached directly.
 */
export interface ProxyMap {
  readonly http?: string | undefined;
  readonly https?: string | undefined;
  readonly all?: string | undefined;
  readonly no_proxy?: string | undefined;
}

/**
 * The proxies the usual environment variables name, as curl reads them (lower case first:
 * `http_proxy`, `https_proxy`, `all_proxy`, `no_proxy`, then the upper-case names), or undefined
 * when none is set. Takes the environment as an argument: the library never reads `process.env`.
 *
 * @example
 * ```ts
 * proxiesFromEnv({ HTTPS_PROXY: 'http://127.0.0.1:7890', NO_PROXY: 'localhost' });
 * // { https: 'http://127.0.0.1:7890', no_proxy: 'localhost' }
 * ```
 */
export function proxiesFromEnv(env: Readonly<Record<string, string | undefined>>): ProxyMap | undefined {
  const read = (name: string): string | undefined => {
    const value = env[name] ?? env[name.toUpperCase()];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const proxies = { http: read('http_proxy'), https: read('https_proxy'), all: read('all_proxy'), no_proxy: read('no_proxy') };
  return proxies.http === undefined && proxies.https === undefined && proxies.all === undefined ? undefined : proxies;
}

/**
 * Parses a proxy URL, or throws InvalidArgumentError naming `where` and the URL without its
 * password.
 */
export function parseProxyUrl(text: string, where: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidArgumentError(
      `${where} ${JSON.stringify(redactCredentials(text))} is not a URL; expected http://, https:// or socks5://host:port`,
    );
  }
  if (!(PROXY_PROTOCOLS as readonly string[]).includes(url.protocol)) {
    throw new InvalidArgumentError(
      `${where} ${JSON.stringify(redactProxyUrl(url))} has the scheme ${url.protocol}; expected http:, https:, socks5: or socks5h:`,
    );
  }
  if (url.hostname === '' || (url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    throw new InvalidArgumentError(
      `${where} ${JSON.stringify(redactProxyUrl(url))} must be scheme://[user:password@]host:port with nothing after the port`,
    );
  }
  return url;
}

/** The proxy as it may be shown: credentials replaced by `***`. */
export function redactProxyUrl(url: URL | string): string {
  const parsed = typeof url === 'string' ? safeUrl(url) : url;
  if (parsed === undefined) return redactCredentials(String(url));
  const credentials = parsed.username !== '' || parsed.password !== '' ? '***@' : '';
  return `${parsed.protocol}//${credentials}${parsed.host}`;
}

/**
 * The proxy a connection to `target` goes through under `proxies`, or undefined for a direct one.
 * Throws InvalidArgumentError for a malformed proxy URL.
 */
export function proxyFor(target: string, proxies: ProxyMap | undefined): URL | undefined {
  if (proxies === undefined) return undefined;
  const url = new URL(target);
  const isSecure = url.protocol === 'https:' || url.protocol === 'wss:';
  const chosen = (isSecure ? proxies.https : proxies.http) ?? proxies.all;
  if (chosen === undefined || chosen === '') return undefined;
  if (isNoProxy(url, proxies.no_proxy)) return undefined;
  return parseProxyUrl(chosen, `the ${isSecure ? 'https' : 'http'} proxy`);
}

/** True when `target` matches the NO_PROXY list (curl's rules: `*`, host, `.suffix`, `*.suffix`, `host:port`). */
export function isNoProxy(target: URL, list: string | undefined): boolean {
  if (list === undefined || list.trim() === '') return false;
  const host = target.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  const port = Number(target.port || (target.protocol === 'https:' || target.protocol === 'wss:' ? 443 : 80));
  for (const raw of list.toLowerCase().split(/[,\s]+/)) {
    if (raw === '') continue;
    if (raw === '*') return true;
    const match = /^(.+?)(?::(\d+))?$/.exec(raw);
    const name = (match?.[1] ?? raw).replace(/^\*/, '');
    if (match?.[2] !== undefined && Number(match[2]) !== port) continue;
    if (name.startsWith('.') ? host.endsWith(name) || host === name.slice(1) : host === name || host.endsWith(`.${name}`)) return true;
  }
  return false;
}

/** An undici dispatcher that sends every request through `proxy` (CONNECT tunnel or SOCKS5). */
export function proxyDispatcher(proxy: URL, options: { connections?: number; timeoutMs?: number } = {}): Dispatcher {
  const common = {
    ...(options.connections === undefined ? {} : { connections: options.connections }),
    ...(options.timeoutMs === undefined ? {} : { headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs }),
  };
  if (proxy.protocol === 'socks5:' || proxy.protocol === 'socks5h:') {
    const { username, password } = proxy;
    const bare = new URL(proxy.href);
    bare.username = '';
    bare.password = '';
    bare.protocol = 'socks5:';
    return new Socks5ProxyAgent(bare, {
      ...common,
      ...(username === '' ? {} : { username: decodeURIComponent(username), password: decodeURIComponent(password) }),
    });
  }
  // ProxyAgent takes the credentials of the URL as Proxy-Authorization: Basic.
  return new ProxyAgent({
    uri: proxy.href,
    ...common,
    ...(options.timeoutMs === undefined ? {} : { connect: { timeout: options.timeoutMs } }),
  });
}

/** An agent for `ws` that opens each WebSocket through `proxy` (CONNECT tunnel or SOCKS5). */
export function proxyWebSocketAgent(proxy: URL, options: { timeoutMs?: number } = {}): HttpAgent {
  if (proxy.protocol === 'socks5:' || proxy.protocol === 'socks5h:') {
    return new SocksProxyAgent(proxy.href, options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs });
  }
  return new HttpsProxyAgent(proxy.href, options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs });
}

function safeUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}
