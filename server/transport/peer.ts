/**
 * The sending side towards one remote member: a bounded queue, one long-lived Peer.Stream
 * that is re-opened with back-off, a snapshot sender, and the unary lease calls.
 */
import * as grpc from '@grpc/grpc-js';
import { GRPC_FRAME_BYTES, StreamOutput, type StreamTally } from '../api/stream-output.js';
import { assert } from '../errors.js';
import type { Logger } from '../log.js';
import type { Message } from '../raft/types.js';
import { Backoff } from './backoff.js';
import { encodeBatch } from './wire.js';
import { fromServiceError } from './errors.js';
import { MessageQueue } from './queue.js';
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

export class Peer {
  private urls: readonly string[];
  private urlIndex = 0;
  private client: grpc.Client;
  private readonly queue: MessageQueue;
  private readonly backoff: Backoff;
  private readonly snapshots: SnapshotSender;
  private readonly logger: Logger;
  private stream: AckStream | undefined;
  /**
   * The current stream's write side: batches wait in the (bounded) queue rather than in gRPC's
   * buffer while it is past its bound (a slow or stalled receiver), and flush on its drain.
   */
  private output: StreamOutput<Uint8Array> | undefined;
  /** The receiver accepted the current stream (StreamAck seq 0). */
  private active = false;
  /** A connection attempt failed since the stream was last active: sends report unreachable. */
  private down = false;
  private flushScheduled = false;
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

  pending(): { messages: number; bytes: number } {
    return { messages: this.queue.length, bytes: this.queue.bytes };
  }

  /** Never blocks: queues, and flushes everything queued in this event-loop turn at once. */
  enqueue(m: Message): void {
    if (this.stopped) return;
    if (m.type === 'snap') {
      this.snapshots.send(m);
      return;
    }
    const dropped = this.queue.push(m);
    if (dropped > 0 || this.down) this.reportUnreachable();
    if (this.active && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
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
    const { Stream: m } = peerDefinitions().client;
    const call = this.client.makeBidiStreamRequest<Uint8Array, WireStreamAck>(m.path, m.requestSerialize, m.responseDeserialize, this.metadata());
    this.stream = call;
    // Acks are always read: only the writes are bounded.
    const output = new StreamOutput<Uint8Array>(call, { kind: 'peer_send', tally: this.env.streams, reader: null });
    output.onDrain(() => {
      if (call === this.stream) this.flush();
    });
    this.output = output;
    this.seq = 0;
    call.on('data', (ack: WireStreamAck) => this.onAck(call, ack));
    // 'status' comes exactly once however the call ends; 'error' needs a listener not to crash.
    call.on('status', (status: grpc.StatusObject) => this.onStreamDown(call, `${grpc.status[status.code] ?? status.code}: ${status.details}`));
    call.on('error', () => undefined);
  }

  private onAck(call: AckStream, ack: WireStreamAck): void {
    if (call !== this.stream) return;
    if (ack.seq === '0') {
      this.active = true;
      this.down = false;
      this.backoff.reset();
      this.logger.info('peer stream connected', { url: this.urls[this.urlIndex] });
      this.flush();
      return;
    }
    if (this.probe !== undefined && ack.seq === this.probe.seq) {
      this.env.metrics?.roundTrip(this.id, (performance.now() - this.probe.startedMs) / 1000);
      this.probe = undefined;
    }
  }

  /** What was written but not delivered is lost; Raft retransmits what matters. */
  private onStreamDown(call: AckStream, reason: string): void {
    if (call !== this.stream) return;
    const wasActive = this.active;
    this.stream = undefined;
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
    this.flushScheduled = false;
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
    const wantAck = this.probe === undefined && now - this.lastProbeMs >= this.env.limits.probeIntervalMs;
    if (wantAck) {
      this.probe = { seq: String(this.seq), startedMs: now };
      this.lastProbeMs = now;
    }
    const bytes = encodeBatch(messages, this.seq, wantAck);
    this.env.metrics?.sentBytes(this.id, bytes.length);
    return output.write(bytes, GRPC_FRAME_BYTES + bytes.length);
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
    const call = this.stream;
    this.stream = undefined;
    this.output?.close();
    this.output = undefined;
    this.active = false;
    this.probe = undefined;
    call?.cancel();
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
