/**
 * One client port, as etcd: each --listen-client-urls listener serves gRPC (HTTP/2) and
 * HTTP/1.1 (the JSON gateway, /version, /metrics, /health, ...) on the same socket.
 *
 * We own the listening socket (net.Server, or tls.Server for https:// with ALPN h2 and
 * http/1.1) and look at each connection's first bytes: the HTTP/2 preface sends it to grpc-js
 * through Server.createConnectionInjector (the supported way to give grpc-js a connection it
 * did not accept itself), anything else goes to a node:http server as a 'connection'. TLS ends
 * here, so grpc-js is given plaintext credentials for what is already decrypted; the sockets it
 * receives are still TLSSocket objects, so the client certificate reaches the auth code.
 *
 * HTTP/2 connections pass server/http/h2-authority.ts first, which repairs the `:authority`
 * etcd's Go client sends for URL endpoints (Node would reset those streams).
 */
import * as grpc from '@grpc/grpc-js';
import { createServer as createHttpServer, type RequestListener, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { Duplex } from 'node:stream';
import { listenHost } from '../config.js';
import { assert } from '../errors.js';
import type { Logger } from '../log.js';
import type { TlsMaterial } from '../tls.js';
import { admitHttp2 } from './h2-authority.js';
import { HTTP2_PREFACE } from './h2-frames.js';

/** A connection that sends nothing is dropped after this long (HTTP/1.1 and HTTP/2 clients speak first). */
const FIRST_BYTES_TIMEOUT_MS = 30_000;

export interface ClientPortOptions {
  readonly grpcServer: grpc.Server;
  /** The HTTP/1.1 side: server/http/handlers.ts builds it from a handler chain. */
  readonly http: RequestListener;
  /** The client certificate (--cert-file); required for https:// URLs. */
  readonly tls: TlsMaterial | undefined;
  readonly logger: Logger;
}

export class ClientPort {
  private readonly pending = new Set<Socket>();

  private constructor(
    private readonly listener: NetServer,
    private readonly httpServer: HttpServer,
    private readonly injector: grpc.ConnectionInjector,
    /** host:port actually bound (port 0 resolved). */
    readonly address: string,
  ) {}

  /** Listens on `url` (http:// or https://); rejects with a clear message when it cannot. */
  static async listen(url: URL, options: ClientPortOptions): Promise<ClientPort> {
    const injector = options.grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    // No request timeout: a gateway watch or keep-alive is one HTTP request whose body stays open
    // for as long as the client watches (Node's default would cut it after 300 s).
    const httpServer = createHttpServer({ requestTimeout: 0 }, options.http);
    const listener = createListener(url, options.tls);
    let port: ClientPort | undefined;
    const onSocket = (socket: Socket): void => port?.sniff(socket, options.logger);
    if (url.protocol === 'https:') {
      listener.on('secureConnection', onSocket);
      listener.on('tlsClientError', (error: Error) => options.logger.debug('TLS handshake failed on the client port', { error: error.message }));
    } else {
      listener.on('connection', onSocket);
    }
    const host = listenHost(url);
    await new Promise<void>((resolve, reject) => {
      listener.once('error', (error) => reject(new Error(`cannot listen on ${url.href}: ${error.message}`)));
      listener.listen(Number(url.port), host, () => resolve());
    }).catch((error: unknown) => {
      injector.destroy();
      throw error;
    });
    listener.on('error', (error) => options.logger.warn('client listener error', { url: url.href, error: error.message }));
    const bound = listener.address() as AddressInfo;
    port = new ClientPort(listener, httpServer, injector, host.includes(':') ? `[${host}]:${bound.port}` : `${host}:${bound.port}`);
    return port;
  }

  /** Reads until the first bytes tell HTTP/2 (the preface) from anything else. */
  private sniff(socket: Socket, logger: Logger): void {
    this.pending.add(socket);
    let seen: Buffer = Buffer.alloc(0);
    const done = (): void => {
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      // node:http and HTTP/2 set socket timeouts of their own: ours must not fire for them.
      socket.removeListener('timeout', onSilent);
      socket.setTimeout(0);
      this.pending.delete(socket);
    };
    const onSilent = (): void => {
      done();
      socket.destroy();
    };
    const onError = (): void => {
      done();
      socket.destroy();
    };
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const compared = Math.min(seen.length, HTTP2_PREFACE.length);
      const http2 = seen.subarray(0, compared).equals(HTTP2_PREFACE.subarray(0, compared));
      if (http2 && seen.length < HTTP2_PREFACE.length) return;
      done();
      if (http2) {
        admitHttp2(socket, seen, (connection: Duplex) => this.injector.injectConnection(connection), logger);
      } else {
        // Back into the socket for node:http to read first; it then reads the rest from the socket.
        socket.pause();
        socket.unshift(seen);
        this.httpServer.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('timeout', onSilent);
    socket.setTimeout(FIRST_BYTES_TIMEOUT_MS);
    socket.on('error', onError);
    socket.on('data', onData);
  }

  /** Stops listening and drops HTTP/1.1 connections; gRPC sessions end with the grpc-js server's shutdown. */
  close(): void {
    this.listener.close();
    for (const socket of this.pending) socket.destroy();
    this.httpServer.closeAllConnections();
  }
}

function createListener(url: URL, tls: TlsMaterial | undefined): NetServer {
  if (url.protocol === 'http:') return createNetServer();
  assert(url.protocol === 'https:', `listen URL ${url.href}: scheme must be http or https`);
  assert(tls !== undefined, `listen URL ${url.href} is https but no certificate was loaded (validate() refuses this)`);
  return createTlsServer({
    cert: tls.cert,
    key: tls.key,
    ...(tls.ca === null ? {} : { ca: tls.ca }),
    requestCert: tls.clientCertAuth,
    rejectUnauthorized: tls.clientCertAuth,
    // The server's order decides. gRPC clients offer h2 alone and get it; curl and browsers
    // offer both and get HTTP/1.1, which is what /health, /metrics and the gateway speak here
    // (grpc-js answers only gRPC over HTTP/2). Either way the first bytes, not ALPN, route.
    ALPNProtocols: ['http/1.1', 'h2'],
  });
}

/** Every --listen-client-urls URL, in order; a failure closes what was already opened. */
export async function listenClientUrls(urls: readonly URL[], options: ClientPortOptions): Promise<ClientPort[]> {
  const ports: ClientPort[] = [];
  try {
    for (const url of urls) ports.push(await ClientPort.listen(url, options));
  } catch (error) {
    for (const port of ports) port.close();
    throw error;
  }
  return ports;
}
