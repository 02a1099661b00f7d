/**
 * PeerTransport: the member-to-member transport (etcd's rafthttp). It owns the peer listeners
 * (peer-port.ts: the Raft stream of raft-stream.ts and, beside it on the same port, the
 * gavel.raft.v1.Peer gRPC server) and one Peer (outgoing stream, queue,
 * snapshot sender) per remote member.
 *
 * Contract with the node: send() never blocks and never throws; delivery is best effort and
 * in order per (from → to) pair; onUnreachable/onSnapshotStatus are called in a later turn,
 * never from inside send(), so the node may call back into Raft from them.
 */
import { constants as bufferConstants } from 'node:buffer';
import { setImmediate as nextTurn } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { GavelError, assert } from '../errors.js';
import type { StreamTally } from '../api/stream-output.js';
import type { Logger } from '../log.js';
import type { Message } from '../raft/types.js';
import { channelCredentials, type TlsMaterial } from '../tls.js';
import { Peer, type PeerEnvironment, type PeerLimits } from './peer.js';
import { peerService, receiveRawStream, type ReceiverEnvironment } from './receiver.js';
import { PeerPort } from './peer-port.js';
import { peerDefinitions } from './service.js';
import { memorySnapshotStreams, type SnapshotStatus, type SnapshotStreams } from './snapshot.js';
import type { LeaseTimeToLive, TransportHandlers, TransportMetrics } from './types.js';

export type { LeaseTimeToLive, TransportHandlers, TransportMetrics } from './types.js';
export type { SnapshotStatus } from './snapshot.js';

export interface PeerTransportOptions extends Partial<PeerLimits> {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly logger: Logger;
  /** http:// or https://host:port; port 0 picks a free port (start() returns the bound address). */
  readonly listenUrls: readonly URL[];
  /**
   * The peer certificate: served on https:// listen URLs and presented when dialling https://
   * peers, whose certificates are checked against its CA. Required for https:// listen URLs.
   */
  readonly tls?: TlsMaterial;
  readonly handlers: TransportHandlers;
  onUnreachable?(peer: bigint): void;
  onSnapshotStatus?(peer: bigint, status: SnapshotStatus): void;
  readonly metrics?: TransportMetrics;
  /** Where the peer streams report what they buffer (server/api/stream-output.ts). */
  readonly streams?: StreamTally;
  /** Largest snapshot this member accepts; default: the largest Buffer. */
  readonly maxSnapshotBytes?: number;
  /** Where snapshots' bytes come from and go to; default: the message's data field, in memory. */
  readonly snapshotStreams?: SnapshotStreams;
  /** Jitter source for the back-off; default Math.random. */
  readonly random?: () => number;
}

export const DEFAULT_PEER_LIMITS: PeerLimits = {
  maxBatchBytes: 4 * 1024 * 1024,
  maxQueueMessages: 4096,
  maxQueueBytes: 64 * 1024 * 1024,
  backoffMinMs: 50,
  backoffMaxMs: 2_000,
  probeIntervalMs: 2_000,
  snapshotChunkBytes: 1024 * 1024,
  requestTimeoutMs: 5_000,
};

/** The receiver's frame limit; batches and chunks are kept well below it by the sender. */
const MAX_RECEIVE_BYTES = 256 * 1024 * 1024;

export class PeerTransport {
  private readonly peers = new Map<bigint, Peer>();
  private readonly logger: Logger;
  private readonly peerEnv: PeerEnvironment;
  private server: grpc.Server | undefined;
  private readonly ports: PeerPort[] = [];
  private stopped = false;
  private readonly snapshotStreams: SnapshotStreams;

  constructor(private readonly options: PeerTransportOptions) {
    this.logger = options.logger.child({ component: 'transport' });
    this.snapshotStreams = options.snapshotStreams ?? memorySnapshotStreams(options.maxSnapshotBytes ?? bufferConstants.MAX_LENGTH);
    const limits = { ...DEFAULT_PEER_LIMITS, ...definedLimits(options) };
    assert(limits.maxBatchBytes > 0 && limits.maxBatchBytes <= MAX_RECEIVE_BYTES / 2, 'maxBatchBytes out of range');
    assert(limits.snapshotChunkBytes > 0 && limits.snapshotChunkBytes <= MAX_RECEIVE_BYTES / 2, 'snapshotChunkBytes out of range');
    assert(limits.backoffMinMs > 0 && limits.backoffMaxMs >= limits.backoffMinMs, 'bad back-off bounds');
    this.peerEnv = {
      memberId: options.memberId,
      clusterId: options.clusterId,
      logger: this.logger,
      limits,
      random: options.random ?? Math.random,
      channelCredentials: (url) => channelCredentials(url, options.tls),
      tls: options.tls,
      ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
      ...(options.streams === undefined ? {} : { streams: options.streams }),
      unreachable: (peer) => {
        options.metrics?.peerUnreachable(peer);
        this.later(() => options.onUnreachable?.(peer));
      },
      snapshotStatus: (peer, status) => this.later(() => options.onSnapshotStatus?.(peer, status)),
      snapshotStreams: this.snapshotStreams,
    };
  }

  /** Listens on every listen URL; returns the bound addresses as host:port. */
  async start(): Promise<string[]> {
    assert(this.server === undefined && !this.stopped, 'PeerTransport.start() called twice or after stop()');
    const server = new grpc.Server({
      'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.enable_channelz': 0,
    });
    const receiver: ReceiverEnvironment = {
      memberId: this.options.memberId,
      clusterId: this.options.clusterId,
      logger: this.logger,
      handlers: this.options.handlers,
      ...(this.options.metrics === undefined ? {} : { metrics: this.options.metrics }),
      ...(this.options.streams === undefined ? {} : { streams: this.options.streams }),
      maxSnapshotBytes: this.options.maxSnapshotBytes ?? bufferConstants.MAX_LENGTH,
      snapshotStreams: this.snapshotStreams,
    };
    server.addService(peerDefinitions().server, peerService(receiver));
    this.server = server;
    const addresses: string[] = [];
    try {
      for (const url of this.options.listenUrls) {
        const port = await PeerPort.listen(url, {
          grpcServer: server,
          onStream: (socket, rest) => receiveRawStream(receiver, socket, rest),
          tls: this.options.tls,
          logger: this.logger,
        });
        this.ports.push(port);
        addresses.push(port.address);
      }
    } catch (error) {
      for (const port of this.ports) port.close();
      server.forceShutdown();
      throw error;
    }
    this.logger.info('peer transport listening', { addresses });
    return addresses;
  }

  addPeer(id: bigint, urls: readonly string[]): void {
    assert(id !== this.options.memberId, 'a member is not its own peer');
    if (this.stopped) return;
    const existing = this.peers.get(id);
    if (existing !== undefined) {
      existing.updateUrls(urls);
      return;
    }
    this.peers.set(id, new Peer(id, urls, this.peerEnv));
  }

  updatePeer(id: bigint, urls: readonly string[]): void {
    this.addPeer(id, urls);
  }

  /** Drops the peer's queue and cancels its stream and snapshot (no status is reported). */
  removePeer(id: bigint): void {
    this.peers.get(id)?.stop();
    this.peers.delete(id);
  }

  send(messages: readonly Message[]): void {
    if (messages.length === 0) return;
    // A Ready's messages, grouped per peer so each peer writes them together.
    const byPeer = new Map<Peer, Message[]>();
    for (const m of messages) {
      const peer = this.peers.get(m.to);
      if (peer !== undefined) {
        const group = byPeer.get(peer);
        if (group === undefined) byPeer.set(peer, [m]);
        else group.push(m);
        continue;
      }
      // The core may address a member it has just removed; Raft treats this as a lost message.
      this.logger.debug('dropped a message to an unknown peer', { to: m.to, type: m.type });
      if (m.type === 'snap') this.peerEnv.snapshotStatus(m.to, 'failure');
    }
    for (const [peer, group] of byPeer) peer.send(group);
  }

  async leaseRenew(leader: bigint, id: bigint, signal?: AbortSignal): Promise<number> {
    const { LeaseRenew } = peerDefinitions().client;
    const response = await this.peerFor(leader).unary(LeaseRenew, { id: id.toString() }, signal);
    return toSafeNumber(response.ttl, 'ttl');
  }

  async leaseTimeToLive(leader: bigint, id: bigint, keys: boolean, signal?: AbortSignal): Promise<LeaseTimeToLive> {
    const { LeaseTimeToLive } = peerDefinitions().client;
    const response = await this.peerFor(leader).unary(LeaseTimeToLive, { id: id.toString(), keys }, signal);
    return { ttl: toSafeNumber(response.ttl, 'ttl'), grantedTtl: toSafeNumber(response.granted_ttl, 'granted_ttl'), keys: response.keys };
  }

  /** True while the outgoing stream to `peer` is accepted by it. */
  isActive(peer: bigint): boolean {
    return this.peers.get(peer)?.isActive() ?? false;
  }

  /** How messages reach `peer` now (undefined while not connected). */
  via(peer: bigint): 'raft-stream' | 'grpc' | undefined {
    return this.peers.get(peer)?.via();
  }

  /** Messages and estimated bytes waiting for `peer` (for metrics and tests). */
  pending(peer: bigint): { messages: number; bytes: number } | undefined {
    return this.peers.get(peer)?.pending();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const peer of this.peers.values()) peer.stop();
    this.peers.clear();
    for (const port of this.ports) port.close();
    // Not tryShutdown: the peers' inbound streams are long-lived and would hold it open.
    this.server?.forceShutdown();
    await nextTurn(); // let the listening sockets close before a restart binds the same port
  }

  private peerFor(id: bigint): Peer {
    const peer = this.peers.get(id);
    if (peer === undefined || this.stopped) throw new GavelError('NoLeader', `gavel: leader ${id} is not a known peer`);
    return peer;
  }

  /** Callbacks into the node run in a later turn, never re-entrantly from send(). */
  private later(fn: () => void): void {
    setImmediate(() => {
      if (!this.stopped) fn();
    });
  }
}

function definedLimits(options: Partial<PeerLimits>): Partial<PeerLimits> {
  const keys = Object.keys(DEFAULT_PEER_LIMITS) as (keyof PeerLimits)[];
  return Object.fromEntries(keys.filter((k) => options[k] !== undefined).map((k) => [k, options[k]]));
}

function toSafeNumber(value: string, field: string): number {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed)) throw new GavelError('InvalidArgument', `gavel: leader answered ${field} ${value}`);
  return parsed;
}
