/**
 * The peer listener: each --listen-peer-urls URL is a socket of ours (net, or tls for https://
 * with the peer certificate) whose connections are told apart by their first bytes
 * (http/first-bytes.ts): the Raft stream's magic (raft-stream.ts) goes to the stream receiver,
 * the HTTP/2 preface to grpc-js (the gavel.raft.v1.Peer service: snapshots, lease calls, the
 * member list, and the gRPC Raft stream older members dial) through its connection injector, as
 * on the client port.
 */
import * as grpc from '@grpc/grpc-js';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../log.js';
import type { TlsMaterial } from '../tls.js';
import { FirstBytesListener } from '../http/first-bytes.js';
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
  private constructor(
    private readonly listener: FirstBytesListener,
    /** Raft stream connections accepted and still open. */
    private readonly streams: Set<Socket>,
  ) {}

  /** host:port actually bound (port 0 resolved). */
  get address(): string {
    return this.listener.address;
  }

  static async listen(url: URL, options: PeerPortOptions): Promise<PeerPort> {
    const injector = options.grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const logger = options.logger;
    const streams = new Set<Socket>();
    const listener = await FirstBytesListener.listen(url, {
      name: 'peer',
      routes: [
        { prefix: HTTP2_PREFACE, accept: (socket, seen) => admitHttp2(socket, seen, (connection: Duplex) => injector.injectConnection(connection), logger) },
        {
          prefix: STREAM_MAGIC,
          accept: (socket, seen) => {
            streams.add(socket);
            socket.once('close', () => streams.delete(socket));
            options.onStream(socket, seen.subarray(STREAM_MAGIC.length));
          },
        },
      ],
      other: (socket) => {
        logger.debug('dropped a peer connection speaking neither HTTP/2 nor the Raft stream', { remote: socket.remoteAddress });
        socket.destroy();
      },
      tls: options.tls,
      alpn: [STREAM_ALPN, 'h2'],
      silentMs: FIRST_BYTES_TIMEOUT_MS,
      logger,
    }).catch((error: unknown) => {
      injector.destroy();
      throw error;
    });
    return new PeerPort(listener, streams);
  }

  /** Stops listening and drops Raft stream connections; gRPC sessions end with the grpc-js server's shutdown. */
  close(): void {
    this.listener.close();
    for (const socket of this.streams) socket.destroy();
  }
}
