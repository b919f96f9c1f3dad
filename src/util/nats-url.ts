/**
 * NATS connection helpers shared by the publisher and the remote reader: the servers of a NATS
 * URL (as the rule's NATS_URL reads), their credentials taken apart for the client, and the NATS
 * client itself, loaded with `import()` on first use (an optional dependency: a bot that never
 * configures NATS neither installs nor loads it).
 *
 * @example
 * ```ts
 * natsServers('nats://a:4222, tls://b:4222');   // ['nats://a:4222', 'tls://b:4222']
 * splitNatsCredentials('nats://u:p@a:4222');    // { servers: ['nats://a:4222'], user: 'u', pass: 'p' }
 * const { connect } = await loadNatsClient('NATS publishing', 'NATS_URL');
 * ```
 */
import { ConfigError } from '../errors.js';

const NATS_SCHEMES: readonly string[] = ['nats:', 'tls:'];

/**
 * Whether text is a URL of one of `schemes` that names a host and nothing after the port (no
 * path, query or fragment): the shape of a NATS server's address, and of a proxy's (the rule checks PROXY with it too).
 *
 * @example
 * ```ts
 * isHostUrl('socks5://user:pw@127.0.0.1:1080', ['socks5:']); // true
 * isHostUrl('nats://a:4222/path', ['nats:']);                // false
 * ```
 */
export function isHostUrl(text: string, schemes: readonly string[]): boolean {
  try {
    const url = new URL(text);
    return (
      schemes.includes(url.protocol) &&
      url.hostname !== '' &&
      (url.pathname === '' || url.pathname === '/') &&
      url.search === '' &&
      url.hash === ''
    );
  } catch {
    return false;
  }
}

/**
 * The servers of a NATS_URL (comma-separated nats:// or tls:// URLs naming a host, with nothing
 * after the port), or undefined when it is not one.
 *
 * @example
 * ```ts
 * natsServers('nats://a:4222, tls://b:4222'); // ['nats://a:4222', 'tls://b:4222']
 * natsServers('http://a:4222');               // undefined
 * ```
 */
export function natsServers(value: string): string[] | undefined {
  const servers = value.split(',').map((part) => part.trim());
  return servers.length > 0 && servers.every((server) => isHostUrl(server, NATS_SCHEMES)) ? servers : undefined;
}

/**
 * Servers without credentials, and the credentials of the first URL carrying some (the client
 * takes them apart). `url` is a valid NATS URL (see natsServers).
 */
export function splitNatsCredentials(url: string): { servers: string[]; user: string | undefined; pass: string | undefined } {
  let user: string | undefined;
  let pass: string | undefined;
  const servers = (natsServers(url) ?? []).map((text) => {
    const parsed = new URL(text);
    if (parsed.username !== '' && user === undefined) {
      user = decodeURIComponent(parsed.username);
      pass = parsed.password === '' ? undefined : decodeURIComponent(parsed.password);
    }
    return `${parsed.protocol}//${parsed.host}`;
  });
  return { servers, user, pass };
}

/** The parts of the NATS client that candle-server uses. */
export interface NatsClient {
  readonly connect: typeof import('@nats-io/transport-node').connect;
  readonly jetstream: typeof import('@nats-io/jetstream').jetstream;
  readonly jetstreamManager: typeof import('@nats-io/jetstream').jetstreamManager;
}

/**
 * The NATS client, loaded on first use: a ConfigError naming `setting` when the optional
 * dependencies are missing (`what` says what needed them).
 */
export async function loadNatsClient(what: string, setting: string): Promise<NatsClient> {
  try {
    const [transport, js] = await Promise.all([import('@nats-io/transport-node'), import('@nats-io/jetstream')]);
    return { connect: transport.connect, jetstream: js.jetstream, jetstreamManager: js.jetstreamManager };
  } catch (error) {
    throw new ConfigError(
      what,
      [
        {
          path: setting,
          received: 'set',
          message: `needs the optional dependencies @nats-io/transport-node and @nats-io/jetstream: npm install them, or unset ${setting}`,
        },
      ],
      { cause: error },
    );
  }
}
