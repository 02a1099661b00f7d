/** What the transport is given: the member's handlers and optional metrics hooks. */
import type { Message } from '../raft/types.js';

export interface LeaseTimeToLive {
  /** Seconds left; -1 when the lease does not exist. */
  readonly ttl: number;
  readonly grantedTtl: number;
  readonly keys: Uint8Array[];
}

export interface TransportHandlers {
  /** Called in arrival order per sending peer. Must not throw (a throw is a programmer error). */
  onMessage(m: Message): void;
  /** Leader side of a follower's keep-alive: the renewed TTL in seconds. */
  leaseRenew(id: bigint): Promise<number>;
  leaseTimeToLive(id: bigint, keys: boolean): Promise<LeaseTimeToLive>;
  /** The membership registry, answered to members joining the cluster. */
  members(): readonly { id: bigint; name: string; peerUrls: readonly string[]; clientUrls: readonly string[]; isLearner: boolean }[];
}

/** Hooks for metrics (e.g. etcd_network_peer_sent_bytes_total, _round_trip_time_seconds). */
export interface TransportMetrics {
  sentBytes(peer: bigint, bytes: number): void;
  receivedBytes(peer: bigint, bytes: number): void;
  roundTrip(peer: bigint, seconds: number): void;
  peerUnreachable(peer: bigint): void;
}
