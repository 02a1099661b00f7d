/**
 * A listening socket of ours whose connections are routed by their first bytes, the way the
 * client port tells gRPC from HTTP/1.1 and the peer port tells the Raft stream from gRPC. TLS (for
 * https:// URLs) ends here, so each route receives the decrypted socket and the bytes read so far.
 *
 * A connection is held until its first bytes either complete one route's prefix or can no
 * longer be the start of any (then `other` takes it); one that says nothing is dropped after
 * `silentMs`.
 */
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { listenHost } from '../config.js';
import { assert } from '../errors.js';
import type { Logger } from '../log.js';
import type { TlsMaterial } from '../tls.js';

export interface FirstBytesRoute {
  readonly prefix: Buffer;
  /** The connection, and every byte read from it so far (the prefix included). */
  readonly accept: (socket: Socket, seen: Buffer) => void;
}

export interface FirstBytesOptions {
  /** What the port is, for messages ("client", "peer"). */
  readonly name: string;
  readonly routes: readonly FirstBytesRoute[];
  /** A connection that matches no route. */
  readonly other: (socket: Socket, seen: Buffer) => void;
  /** The certificate for https:// URLs. */
  readonly tls: TlsMaterial | undefined;
  /** TLS ALPN names, in the server's order of preference. */
  readonly alpn: readonly string[];
  readonly silentMs: number;
  readonly logger: Logger;
}

export class FirstBytesListener {
  private readonly pending = new Set<Socket>();

  private constructor(
    private readonly listener: NetServer,
    /** host:port actually bound (port 0 resolved). */
    readonly address: string,
  ) {}

  /** Listens on `url` (http:// or https://); rejects with a clear message when it cannot. */
  static async listen(url: URL, options: FirstBytesOptions): Promise<FirstBytesListener> {
    const listener = createListener(url, options);
    let port: FirstBytesListener | undefined;
    const onSocket = (socket: Socket): void => port?.sniff(socket, options);
    if (url.protocol === 'https:') {
      listener.on('secureConnection', onSocket);
      listener.on('tlsClientError', (error: Error) => options.logger.debug(`TLS handshake failed on the ${options.name} port`, { error: error.message }));
    } else {
      listener.on('connection', onSocket);
    }
    const host = listenHost(url);
    const portNumber = Number(url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : url.port);
    await new Promise<void>((resolve, reject) => {
      listener.once('error', (error) => reject(new Error(`cannot listen on ${url.href}: ${error.message}`)));
      listener.listen(portNumber, host, () => resolve());
    });
    listener.on('error', (error) => options.logger.warn(`${options.name} listener error`, { url: url.href, error: error.message }));
    const bound = listener.address() as AddressInfo;
    port = new FirstBytesListener(listener, host.includes(':') ? `[${host}]:${bound.port}` : `${host}:${bound.port}`);
    return port;
  }

  private sniff(socket: Socket, options: FirstBytesOptions): void {
    this.pending.add(socket);
    let seen: Buffer = Buffer.alloc(0);
    const done = (): void => {
      socket.removeListener('data', onData);
      socket.removeListener('error', drop);
      // node:http and HTTP/2 set socket timeouts of their own: ours must not fire for them.
      socket.removeListener('timeout', drop);
      socket.setTimeout(0);
      this.pending.delete(socket);
    };
    const drop = (): void => {
      done();
      socket.destroy();
    };
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      let waiting = false;
      for (const route of options.routes) {
        const compared = Math.min(seen.length, route.prefix.length);
        if (!seen.subarray(0, compared).equals(route.prefix.subarray(0, compared))) continue;
        if (seen.length < route.prefix.length) {
          waiting = true; // could still be this route
          continue;
        }
        done();
        route.accept(socket, seen);
        return;
      }
      if (waiting) return;
      done();
      options.other(socket, seen);
    };
    socket.on('timeout', drop);
    socket.setTimeout(options.silentMs);
    socket.on('error', drop);
    socket.on('data', onData);
  }

  /** Stops listening and drops connections still being told apart. */
  close(): void {
    this.listener.close();
    for (const socket of this.pending) socket.destroy();
  }
}

function createListener(url: URL, options: FirstBytesOptions): NetServer {
  if (url.protocol === 'http:') return createNetServer({ noDelay: true });
  assert(url.protocol === 'https:', `listen URL ${url.href}: scheme must be http or https`);
  const tls = options.tls;
  assert(tls !== undefined, `listen URL ${url.href} is https but no certificate was loaded (validate() refuses this)`);
  assert(!tls.clientCertAuth || tls.ca !== null, 'client certificate auth without a CA');
  return createTlsServer({
    cert: tls.cert,
    key: tls.key,
    ...(tls.ca === null ? {} : { ca: tls.ca }),
    requestCert: tls.clientCertAuth,
    rejectUnauthorized: tls.clientCertAuth,
    noDelay: true,
    ALPNProtocols: [...options.alpn],
  });
}
