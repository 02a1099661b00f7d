/**
 * The peer listener: each --listen-peer-urls URL is a socket of ours (net, or tls for https://
 * with the peer certificate) whose connections are told apart by their first bytes: the Raft
 * stream's magic (raft-stream.ts) goes to the stream receiver, the HTTP/2 preface to grpc-js
 * (the gavel.raft.v1.Peer service: snapshots, lease calls, the member list, and the gRPC Raft
 * stream older members dial) through its connection injector, as on the client port.
 */
import * as grpc from '@grpc/grpc-js';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { Duplex } from 'node:stream';
import { listenHost } from '../config.js';
import { assert } from '../errors.js';
import type { Logger } from '../log.js';
import type { TlsMaterial } from '../tls.js';
import { admitHttp2 } from '../http/h2-authority.js';
import { HTTP2_PREFACE } from '../http/h2-frames.js';
import { STREAM_ALPN, STREAM_MAGIC } from './raft-stream.js';

/** A peer connection that sends nothing is dropped after this long (the dialler speaks first). */
const FIRST_BYTES_TIMEOUT_MS = 10_000;

export interface PeerPortOptions {
  readonly grpcServer: grpc.Server;
  /** A Raft stream connection, with the bytes read after its magic. */
  readonly onStream: (socket: Socket, rest: Buffer) => void;
  readonly tls: TlsMaterial | undefined;
  readonly logger: Logger;
}

export class PeerPort {
  private readonly pending = new Set<Socket>();
  private readonly streams = new Set<Socket>();

  private constructor(
    private readonly listener: NetServer,
    private readonly injector: grpc.ConnectionInjector,
    /** host:port actually bound (port 0 resolved). */
    readonly address: string,
  ) {}

  static async listen(url: URL, options: PeerPortOptions): Promise<PeerPort> {
    const injector = options.grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const listener = createListener(url, options.tls);
    let port: PeerPort | undefined;
    const onSocket = (socket: Socket): void => port?.sniff(socket, options);
    if (url.protocol === 'https:') {
      listener.on('secureConnection', onSocket);
      listener.on('tlsClientError', (error: Error) => options.logger.debug('TLS handshake failed on the peer port', { error: error.message }));
    } else {
      listener.on('connection', onSocket);
    }
    const host = listenHost(url);
    await new Promise<void>((resolve, reject) => {
      listener.once('error', (error) => reject(new Error(`cannot listen on ${url.href}: ${error.message}`)));
      listener.listen(Number(url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : url.port), host, () => resolve());
    }).catch((error: unknown) => {
      injector.destroy();
      throw error;
    });
    listener.on('error', (error) => options.logger.warn('peer listener error', { url: url.href, error: error.message }));
    const bound = listener.address() as AddressInfo;
    port = new PeerPort(listener, injector, host.includes(':') ? `[${host}]:${bound.port}` : `${host}:${bound.port}`);
    return port;
  }

  private sniff(socket: Socket, options: PeerPortOptions): void {
    this.pending.add(socket);
    let seen: Buffer = Buffer.alloc(0);
    const done = (): void => {
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('timeout', onError);
      socket.setTimeout(0);
      this.pending.delete(socket);
    };
    const onError = (): void => {
      done();
      socket.destroy();
    };
    const startsWith = (prefix: Buffer): boolean => {
      const compared = Math.min(seen.length, prefix.length);
      return seen.subarray(0, compared).equals(prefix.subarray(0, compared));
    };
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const http2 = startsWith(HTTP2_PREFACE);
      const stream = startsWith(STREAM_MAGIC);
      if ((http2 && seen.length < HTTP2_PREFACE.length) || (stream && seen.length < STREAM_MAGIC.length)) return;
      done();
      if (http2) {
        admitHttp2(socket, seen, (connection: Duplex) => this.injector.injectConnection(connection), options.logger);
      } else if (stream) {
        this.streams.add(socket);
        socket.once('close', () => this.streams.delete(socket));
        options.onStream(socket, seen.subarray(STREAM_MAGIC.length));
      } else {
        options.logger.debug('dropped a peer connection speaking neither HTTP/2 nor the Raft stream', { remote: socket.remoteAddress });
        socket.destroy();
      }
    };
    socket.on('timeout', onError);
    socket.setTimeout(FIRST_BYTES_TIMEOUT_MS);
    socket.on('error', onError);
    socket.on('data', onData);
  }

  /** Stops listening and drops Raft stream connections; gRPC sessions end with the grpc-js server's shutdown. */
  close(): void {
    this.listener.close();
    for (const socket of this.pending) socket.destroy();
    for (const socket of this.streams) socket.destroy();
  }
}

function createListener(url: URL, tls: TlsMaterial | undefined): NetServer {
  if (url.protocol === 'http:') return createNetServer({ noDelay: true });
  assert(url.protocol === 'https:', `listen URL ${url.href}: scheme must be http or https`);
  assert(tls !== undefined, `listen URL ${url.href} is https but no certificate was loaded (validate() refuses this)`);
  assert(!tls.clientCertAuth || tls.ca !== null, 'client certificate auth without a CA');
  return createTlsServer({
    cert: tls.cert,
    key: tls.key,
    ...(tls.ca === null ? {} : { ca: tls.ca }),
    requestCert: tls.clientCertAuth,
    rejectUnauthorized: tls.clientCertAuth,
    noDelay: true,
    ALPNProtocols: [STREAM_ALPN, 'h2'],
  });
}
