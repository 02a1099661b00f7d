/**
 * The sending side towards one remote member: a bounded queue, one long-lived Raft stream
 * (raft-stream.ts; the gRPC Peer.Stream for a member from before it) re-opened with back-off, a
 * snapshot sender, and the unary lease calls.
 */
import * as grpc from '@grpc/grpc-js';
import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { GRPC_FRAME_BYTES, StreamOutput, type StreamTally } from '../api/stream-output.js';
import { assert } from '../errors.js';
import type { Logger } from '../log.js';
import type { Message } from '../raft/types.js';
import { Backoff } from './backoff.js';
import { encodeBatch } from './wire.js';
import { fromServiceError } from './errors.js';
import { MessageQueue } from './queue.js';
import { AnswerKind, decodeAnswer, encodeHello, frame, FrameReader, STREAM_ALPN, STREAM_MAGIC, StreamProtocolError } from './raft-stream.js';
import type { TlsMaterial } from '../tls.js';
import { METADATA_CLUSTER_ID, METADATA_FROM, METADATA_TO, peerDefinitions, type ClientMethod, type WireStreamAck } from './service.js';
import { SnapshotSender, type SnapshotStatus, type SnapshotStreams } from './snapshot.js';
import type { TransportMetrics } from './types.js';

export interface PeerLimits {
  /** Upper bound on the estimated bytes of one MessageBatch. */
  readonly maxBatchBytes: number;
  readonly maxQueueMessages: number;
  readonly maxQueueBytes: number;
  readonly backoffMinMs: number;
  readonly backoffMaxMs: number;
  /** At most one round-trip probe (a batch with want_ack) per interval. */
  readonly probeIntervalMs: number;
  readonly snapshotChunkBytes: number;
  /** Deadline of a lease call when the caller's signal does not end it first. */
  readonly requestTimeoutMs: number;
}

export interface PeerEnvironment {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly logger: Logger;
  readonly limits: PeerLimits;
  readonly random: () => number;
  /** Plaintext for http://, the peer certificate and CA for https:// (server/tls.ts). */
  readonly channelCredentials: (url: string) => grpc.ChannelCredentials;
  /** The peer certificate and CA for the Raft stream to https:// peers. */
  readonly tls?: TlsMaterial | undefined;
  readonly metrics?: TransportMetrics;
  /** Where the outgoing stream reports what it buffers (gavel_server_stream*{stream="peer_send"}). */
  readonly streams?: StreamTally;
  /** Both must be safe to call from inside send(): the transport defers them. */
  readonly unreachable: (peer: bigint) => void;
  readonly snapshotStatus: (peer: bigint, status: SnapshotStatus) => void;
  /** Where outgoing snapshots' bytes come from. */
  readonly snapshotStreams: SnapshotStreams;
}

type AckStream = grpc.ClientDuplexStream<Uint8Array, WireStreamAck>;

/**
 * How Raft messages reach the peer: the Raft stream (raft-stream.ts), or the gRPC Peer.Stream
 * for a member from before the Raft stream, found when it does not answer the stream's hello.
 */
type LinkKind = 'raw' | 'grpc';

/** One connection attempt; callbacks from an attempt that is no longer current are ignored. */
interface Link {
  readonly kind: LinkKind;
  close(): void;
}

/** An unanswered probe older than this means the peer is gone (gRPC keep-alive's 10 s + 5 s). */
const PROBE_TIMEOUT_MS = 15_000;
const MAX_ANSWER_BYTES = 64 * 1024;

export class Peer {
  private urls: readonly string[];
  private urlIndex = 0;
  private client: grpc.Client;
  private readonly queue: MessageQueue;
  private readonly backoff: Backoff;
  private readonly snapshots: SnapshotSender;
  private readonly logger: Logger;
  private link: Link | undefined;
  /** What the next connection attempt uses. */
  private linkKind: LinkKind = 'raw';
  /**
   * The current stream's write side: batches wait in the (bounded) queue rather than in gRPC's
   * buffer while it is past its bound (a slow or stalled receiver), and flush on its drain.
   */
  private output: StreamOutput<Uint8Array> | undefined;
  /** The receiver accepted the current stream (StreamAck seq 0). */
  private active = false;
  /** A connection attempt failed since the stream was last active: sends report unreachable. */
  private down = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private seq = 0;
  private probe: { seq: string; startedMs: number } | undefined;
  private lastProbeMs = -Infinity;
  private lastUnreachableMs = -Infinity;
  private lastFailure = '';
  private stopped = false;

  constructor(
    readonly id: bigint,
    urls: readonly string[],
    private readonly env: PeerEnvironment,
  ) {
    assert(urls.length > 0, `peer ${id} has no URLs`);
    this.urls = [...urls];
    this.logger = env.logger.child({ peer: id });
    this.queue = new MessageQueue({ maxMessages: env.limits.maxQueueMessages, maxBytes: env.limits.maxQueueBytes });
    this.backoff = new Backoff(env.limits.backoffMinMs, env.limits.backoffMaxMs, env.random);
    this.client = this.newClient();
    this.snapshots = new SnapshotSender({
      peer: id,
      logger: this.logger,
      chunkBytes: env.limits.snapshotChunkBytes,
      sentBytes: (bytes) => env.metrics?.sentBytes(id, bytes),
      report: (status) => env.snapshotStatus(id, status),
      streams: env.snapshotStreams,
      open: (deadlineMs, done) => {
        const { SendSnapshot: m } = peerDefinitions().client;
        return this.client.makeClientStreamRequest<Uint8Array, object>(m.path, m.requestSerialize, m.responseDeserialize, this.metadata(), { deadline: deadlineMs }, (error) => done(error));
      },
    });
    this.connect();
  }

  isActive(): boolean {
    return this.active;
  }

  /** How messages reach the peer now: the Raft stream, the gRPC stream, or neither (not connected). */
  via(): 'raft-stream' | 'grpc' | undefined {
    if (!this.active || this.link === undefined) return undefined;
    return this.link.kind === 'raw' ? 'raft-stream' : 'grpc';
  }

  pending(): { messages: number; bytes: number } {
    return { messages: this.queue.length, bytes: this.queue.bytes };
  }

  /**
   * Never blocks: queues the messages of one Ready and writes them at once, as few batches as
   * their size allows. Writing now rather than on a later turn matters: the Ready goes on to
   * wait for its disk write and to apply entries, and followers should not wait for either.
   */
  send(messages: readonly Message[]): void {
    if (this.stopped) return;
    for (const m of messages) {
      if (m.type === 'snap') {
        this.snapshots.send(m);
        continue;
      }
      const dropped = this.queue.push(m);
      if (dropped > 0 || this.down) this.reportUnreachable();
    }
    this.flush();
  }

  /** New URLs: reconnect to them at once (the member moved or was re-addressed). */
  updateUrls(urls: readonly string[]): void {
    assert(urls.length > 0, `peer ${this.id} has no URLs`);
    if (this.stopped || (urls.length === this.urls.length && urls.every((u, i) => u === this.urls[i]))) return;
    this.urls = [...urls];
    this.urlIndex = 0;
    this.dropStream();
    this.client.close();
    this.client = this.newClient();
    this.connect();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.dropStream();
    this.snapshots.stop();
    this.queue.clear();
    this.client.close();
  }

  /** A unary call with the peer metadata; errors come back as GavelErrors (see errors.ts). */
  unary<Req, Res>(method: ClientMethod<Req, Res>, request: Req, signal?: AbortSignal): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(signal.reason);
        return;
      }
      const onAbort = (): void => call.cancel();
      const options: grpc.CallOptions = { deadline: Date.now() + this.env.limits.requestTimeoutMs };
      const call = this.client.makeUnaryRequest<Req, Res>(method.path, method.requestSerialize, method.responseDeserialize, request, this.metadata(), options, (error, response) => {
        signal?.removeEventListener('abort', onAbort);
        if (signal?.aborted === true) reject(signal.reason);
        else if (error !== null) reject(fromServiceError(error, this.id));
        else if (response === undefined || response === null) reject(new Error(`empty ${method.path} response`));
        else resolve(response);
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  // -------------------------------------------------------------------------------------------
  // The stream

  private connect(): void {
    this.reconnectTimer = undefined;
    if (this.stopped) return;
    this.seq = 0;
    if (this.linkKind === 'raw') this.connectRaw();
    else this.connectGrpc();
  }

  private connectRaw(): void {
    const url = new URL(this.urls[this.urlIndex]!);
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : url.port);
    const tls = this.env.tls;
    let socket: Socket;
    if (url.protocol === 'https:') {
      socket = connectTls({
        host,
        port,
        ...(isIP(host) === 0 ? { servername: host } : {}),
        ...(tls?.ca ? { ca: tls.ca } : {}),
        ...(tls === undefined ? {} : { cert: tls.cert, key: tls.key }),
        // h2 too: a member from before the Raft stream picks it, which tells us to use gRPC.
        ALPNProtocols: [STREAM_ALPN, 'h2'],
      });
    } else {
      socket = connectTcp({ host, port, noDelay: true });
    }
    let answered = false;
    /** The listener showed it speaks HTTP/2 only: a member from before the Raft stream. */
    let grpcOnly = false;
    let closed = false;
    const link: Link = {
      kind: 'raw',
      close: () => {
        closed = true;
        socket.destroy();
      },
    };
    this.link = link;
    const output = new StreamOutput<Uint8Array>(socket, { kind: 'peer_send', tally: this.env.streams, reader: null });
    output.onDrain(() => {
      if (link === this.link) this.flush();
    });
    this.output = output;
    const reader = new FrameReader(MAX_ANSWER_BYTES);
    const down = (reason: string): void => {
      if (closed) return;
      closed = true;
      socket.destroy();
      if (grpcOnly && !answered) this.linkKind = 'grpc';
      this.onLinkDown(link, reason);
    };
    socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      socket.setKeepAlive(true, 10_000);
      if (url.protocol === 'https:' && (socket as Socket & { alpnProtocol?: string | false }).alpnProtocol === 'h2') {
        grpcOnly = true;
        down('the peer serves gRPC only');
      }
    });
    socket.on('data', (chunk: Buffer) => {
      if (closed) return;
      // A plaintext HTTP/2 server speaks first (its SETTINGS), before it has read our hello.
      if (!answered && url.protocol === 'http:') grpcOnly = true;
      try {
        for (const payload of reader.push(chunk)) {
          const answer = decodeAnswer(payload);
          answered = true;
          grpcOnly = false;
          if (answer.kind === AnswerKind.Refusal) return down(`refused: ${answer.reason}`);
          this.onAck(link, answer.seq.toString());
        }
      } catch (error) {
        if (!(error instanceof StreamProtocolError)) throw error;
        down(error.message);
      }
    });
    socket.on('error', (error: Error) => down(error.message));
    socket.on('close', () => down('connection closed'));
    const hello = encodeHello({ clusterId: this.env.clusterId, from: this.env.memberId, to: this.id });
    socket.write(Buffer.concat([STREAM_MAGIC, frame(hello)]));
  }

  private connectGrpc(): void {
    const { Stream: m } = peerDefinitions().client;
    const call: AckStream = this.client.makeBidiStreamRequest<Uint8Array, WireStreamAck>(m.path, m.requestSerialize, m.responseDeserialize, this.metadata());
    const link: Link = { kind: 'grpc', close: () => call.cancel() };
    this.link = link;
    // Acks are always read: only the writes are bounded.
    const output = new StreamOutput<Uint8Array>(call, { kind: 'peer_send', tally: this.env.streams, reader: null });
    output.onDrain(() => {
      if (link === this.link) this.flush();
    });
    this.output = output;
    call.on('data', (ack: WireStreamAck) => this.onAck(link, ack.seq));
    // 'status' comes exactly once however the call ends; 'error' needs a listener not to crash.
    call.on('status', (status: grpc.StatusObject) => {
      // The next attempt tries the Raft stream again: the peer may have been upgraded.
      if (link === this.link) this.linkKind = 'raw';
      this.onLinkDown(link, `${grpc.status[status.code] ?? status.code}: ${status.details}`);
    });
    call.on('error', () => undefined);
  }

  private onAck(link: Link, seq: string): void {
    if (link !== this.link) return;
    if (seq === '0') {
      this.active = true;
      this.down = false;
      this.backoff.reset();
      this.logger.info('peer stream connected', { url: this.urls[this.urlIndex], via: link.kind === 'raw' ? 'raft stream' : 'gRPC' });
      this.flush();
      return;
    }
    if (this.probe !== undefined && seq === this.probe.seq) {
      this.env.metrics?.roundTrip(this.id, (performance.now() - this.probe.startedMs) / 1000);
      this.probe = undefined;
    }
  }

  /** What was written but not delivered is lost; Raft retransmits what matters. */
  private onLinkDown(link: Link, reason: string): void {
    if (link !== this.link) return;
    const wasActive = this.active;
    this.link = undefined;
    this.output?.close();
    this.output = undefined;
    this.active = false;
    this.probe = undefined;
    if (this.stopped) return;
    this.down = true;
    // Warn on a change only: a long outage retries every 2 s and must not flood the log.
    if (wasActive || reason !== this.lastFailure) this.logger.warn(wasActive ? 'peer stream lost' : 'peer stream failed', { reason, url: this.urls[this.urlIndex] });
    this.lastFailure = reason;
    this.reportUnreachable();
    if (!wasActive && this.urls.length > 1) this.nextUrl();
    this.reconnectTimer = setTimeout(() => this.connect(), this.backoff.next());
  }

  private flush(): void {
    const output = this.output;
    // A congested output calls flush() again when it drains.
    while (output !== undefined && this.active && !output.congested && this.queue.length > 0) {
      this.writeBatch(output, this.queue.take(this.env.limits.maxBatchBytes));
    }
  }

  /** Returns whether the stream has room for more; false: wait for its drain. */
  private writeBatch(output: StreamOutput<Uint8Array>, messages: readonly Message[]): boolean {
    this.seq += 1;
    const now = performance.now();
    if (this.probe !== undefined && now - this.probe.startedMs > PROBE_TIMEOUT_MS && this.link !== undefined) {
      // Nothing came back for a long time: a dead or frozen peer. Start over on a new connection.
      const link = this.link;
      link.close();
      this.onLinkDown(link, `no answer to a probe in ${PROBE_TIMEOUT_MS / 1000} s`);
      return false;
    }
    const wantAck = this.probe === undefined && now - this.lastProbeMs >= this.env.limits.probeIntervalMs;
    if (wantAck) {
      this.probe = { seq: String(this.seq), startedMs: now };
      this.lastProbeMs = now;
    }
    const payload = encodeBatch(messages, this.seq, wantAck);
    this.env.metrics?.sentBytes(this.id, payload.length);
    if (this.link?.kind === 'raw') {
      const bytes = frame(payload);
      return output.write(bytes, bytes.byteLength);
    }
    return output.write(payload, GRPC_FRAME_BYTES + payload.length);
  }

  // -------------------------------------------------------------------------------------------

  /** At most once per back-off period: Raft only needs to know the peer went quiet. */
  private reportUnreachable(): void {
    const now = performance.now();
    if (now - this.lastUnreachableMs < this.backoff.periodMs) return;
    this.lastUnreachableMs = now;
    this.env.unreachable(this.id);
  }

  private dropStream(): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const link = this.link;
    this.link = undefined;
    this.output?.close();
    this.output = undefined;
    this.active = false;
    this.probe = undefined;
    link?.close();
  }

  private nextUrl(): void {
    this.urlIndex = (this.urlIndex + 1) % this.urls.length;
    this.client.close();
    this.client = this.newClient();
  }

  private newClient(): grpc.Client {
    const url = this.urls[this.urlIndex];
    assert(url !== undefined, 'peer URL index out of range');
    return new grpc.Client(peerTarget(url), this.env.channelCredentials(url), {
      // Follow our own back-off instead of grpc-js's (1 s doubling to 120 s), so a restarted
      // peer is reached within backoffMaxMs.
      'grpc.initial_reconnect_backoff_ms': this.env.limits.backoffMinMs,
      'grpc.max_reconnect_backoff_ms': this.env.limits.backoffMaxMs,
      // Notice a silently dead peer (paused, cable pulled) within ~15 s.
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.enable_channelz': 0,
    });
  }

  private metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    metadata.set(METADATA_CLUSTER_ID, this.env.clusterId.toString());
    metadata.set(METADATA_FROM, this.env.memberId.toString());
    metadata.set(METADATA_TO, this.id.toString());
    return metadata;
  }
}

/** 'http://host:port' or 'https://host:port' → 'host:port' (IPv6 hosts keep their brackets). */
export function peerTarget(url: string): string {
  const parsed = new URL(url);
  assert(parsed.protocol === 'http:' || parsed.protocol === 'https:', `peer URL ${url}: only http:// and https:// are supported`);
  return `${parsed.hostname}:${parsed.port === '' ? (parsed.protocol === 'https:' ? '443' : '80') : parsed.port}`;
}
