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
import type { Duplex } from 'node:stream';
import type { Logger } from '../log.js';
import type { TlsMaterial } from '../tls.js';
import { admitHttp2 } from './h2-authority.js';
import { HTTP2_PREFACE } from './h2-frames.js';
import { FirstBytesListener } from './first-bytes.js';

/** A connection that sends nothing is dropped after this long (HTTP/1.1 and HTTP/2 clients speak first). */
const FIRST_BYTES_TIMEOUT_MS = 30_000;

/** gRPC may carry a little more than a request's payload (etcd allows 512 KiB of overhead). */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

/**
 * The options of the gRPC server behind the client port (a member's and --mode central's).
 * Channelz is off: nothing serves it, and its per-call trackers (closures, Date.now() per message)
 * were a measurable share of a leader's CPU under load.
 */
export function clientGrpcServerOptions(limits: { readonly maxRequestBytes: number; readonly maxConcurrentStreams: number }): grpc.ServerOptions {
  return {
    'grpc.max_receive_message_length': limits.maxRequestBytes + GRPC_OVERHEAD_BYTES,
    'grpc.max_send_message_length': -1,
    'grpc.max_concurrent_streams': limits.maxConcurrentStreams,
    'grpc.enable_channelz': 0,
  };
}

export interface ClientPortOptions {
  readonly grpcServer: grpc.Server;
  /** The HTTP/1.1 side: server/http/handlers.ts builds it from a handler chain. */
  readonly http: RequestListener;
  /** The client certificate (--cert-file); required for https:// URLs. */
  readonly tls: TlsMaterial | undefined;
  readonly logger: Logger;
}

export class ClientPort {
  private constructor(
    private readonly listener: FirstBytesListener,
    private readonly httpServer: HttpServer,
  ) {}

  /** host:port actually bound (port 0 resolved). */
  get address(): string {
    return this.listener.address;
  }

  /** Listens on `url` (http:// or https://); rejects with a clear message when it cannot. */
  static async listen(url: URL, options: ClientPortOptions): Promise<ClientPort> {
    const injector = options.grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    // No request timeout: a gateway watch or keep-alive is one HTTP request whose body stays open
    // for as long as the client watches (Node's default would cut it after 300 s).
    const httpServer = createHttpServer({ requestTimeout: 0 }, options.http);
    const logger = options.logger;
    const listener = await FirstBytesListener.listen(url, {
      name: 'client',
      routes: [{ prefix: HTTP2_PREFACE, accept: (socket, seen) => admitHttp2(socket, seen, (connection: Duplex) => injector.injectConnection(connection), logger) }],
      other: (socket, seen) => {
        // Back into the socket for node:http to read first; it then reads the rest from the socket.
        socket.pause();
        socket.unshift(seen);
        httpServer.emit('connection', socket);
        socket.resume();
      },
      tls: options.tls,
      // The server's order decides. gRPC clients offer h2 alone and get it; curl and browsers
      // offer both and get HTTP/1.1, which is what /health, /metrics and the gateway speak here
      // (grpc-js answers only gRPC over HTTP/2). Either way the first bytes, not ALPN, route.
      alpn: ['http/1.1', 'h2'],
      silentMs: FIRST_BYTES_TIMEOUT_MS,
      logger,
    }).catch((error: unknown) => {
      injector.destroy();
      throw error;
    });
    return new ClientPort(listener, httpServer);
  }

  /** Stops listening and drops HTTP/1.1 connections; gRPC sessions end with the grpc-js server's shutdown. */
  close(): void {
    this.listener.close();
    this.httpServer.closeAllConnections();
  }
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
