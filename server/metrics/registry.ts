/**
 * The member's Prometheus metrics, one prom-client Registry per member. Names, types and labels
 * are etcd's where the meaning is the same, so existing etcd dashboards and alerts work; what is
 * ours is named gavel_*. Labels are bounded: methods, codes and peer ids, never keys.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { GrpcServerMetrics } from './grpc-tally.js';
import { LockMetrics } from './locks.js';
import { StreamAccounting } from './streams.js';

/** etcd's buckets for disk latencies: 1 ms doubling to about 8 s. */
const DISK_BUCKETS = Array.from({ length: 14 }, (_, i) => 0.001 * 2 ** i);
/** etcd's buckets for peer round trips: 0.1 ms doubling. */
const RTT_BUCKETS = Array.from({ length: 16 }, (_, i) => 0.0001 * 2 ** i);
/** etcd's buckets for backend snapshots (backups): 10 ms doubling to about 11 minutes. */
const SNAPSHOT_BUCKETS = Array.from({ length: 17 }, (_, i) => 0.01 * 2 ** i);

export interface MetricsSources {
  hasLeader(): boolean;
  isLeader(): boolean;
  commitIndex(): number;
  appliedIndex(): number;
  pendingProposals(): number;
  dbSizeBytes(): Promise<number>;
  keyCount(): number;
  /** --quota-backend-bytes in force (etcd's default when 0; negative when the quota is off). */
  quotaBackendBytes?(): number;
  /** Lock names with a `name` label of their own on gavel_lock_*. */
  lockNames?: ReadonlySet<string>;
  /** The watch hub's streams, watchers and slow (unsynced) watchers; absent where Watch is not served. */
  watchFigures?(): { streams: number; watchers: number; slowWatchers: number };
}

export class MemberMetrics {
  readonly registry = new Registry();
  readonly leaderChanges: Counter;
  readonly proposalsFailed: Counter;
  readonly slowApply: Counter;
  readonly walFsync: Histogram;
  readonly backendCommit: Histogram;
  /** A backup's life, from taking its level snapshot to releasing it (etcd observes its bolt snapshot's the same way). */
  readonly backendSnapshot: Histogram;
  readonly peerRoundTrip: Histogram<'To'>;
  readonly peerSent: Counter<'To'>;
  readonly peerReceived: Counter<'From'>;
  readonly leaseExpired: Counter;
  readonly locks: LockMetrics;
  /** What long-lived streams buffer for their clients (gavel_server_stream*). */
  readonly streams: StreamAccounting;
  /** go-grpc-prometheus' grpc_server_* (metrics/grpc.ts counts every call through it). */
  readonly grpc: GrpcServerMetrics;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    new Gauge({ name: 'etcd_server_has_leader', help: 'Whether or not a leader exists. 1 is existence, 0 is not.', registers, collect() { this.set(sources.hasLeader() ? 1 : 0); } });
    new Gauge({ name: 'etcd_server_is_leader', help: 'Whether or not this member is a leader. 1 if is, 0 otherwise.', registers, collect() { this.set(sources.isLeader() ? 1 : 0); } });
    this.leaderChanges = new Counter({ name: 'etcd_server_leader_changes_seen_total', help: 'The number of leader changes seen.', registers });
    // Gauges, as in etcd: they mirror raft indexes rather than count events.
    new Gauge({ name: 'etcd_server_proposals_committed_total', help: 'The total number of consensus proposals committed.', registers, collect() { this.set(sources.commitIndex()); } });
    new Gauge({ name: 'etcd_server_proposals_applied_total', help: 'The total number of consensus proposals applied.', registers, collect() { this.set(sources.appliedIndex()); } });
    new Gauge({ name: 'etcd_server_proposals_pending', help: 'The current number of pending proposals to commit.', registers, collect() { this.set(sources.pendingProposals()); } });
    this.proposalsFailed = new Counter({ name: 'etcd_server_proposals_failed_total', help: 'The total number of failed proposals seen.', registers });
    this.slowApply = new Counter({ name: 'etcd_server_slow_apply_total', help: 'The total number of slow apply requests (likely overloaded from slow disk).', registers });
    this.walFsync = new Histogram({ name: 'etcd_disk_wal_fsync_duration_seconds', help: 'The latency distributions of fsync called by WAL.', buckets: DISK_BUCKETS, registers });
    this.backendCommit = new Histogram({ name: 'etcd_disk_backend_commit_duration_seconds', help: 'The latency distributions of commit called by backend.', buckets: DISK_BUCKETS, registers });
    this.backendSnapshot = new Histogram({ name: 'etcd_disk_backend_snapshot_duration_seconds', help: 'The latency distribution of backend snapshots.', buckets: SNAPSHOT_BUCKETS, registers });
    this.peerRoundTrip = new Histogram({ name: 'etcd_network_peer_round_trip_time_seconds', help: 'Round-Trip-Time histogram between peers', labelNames: ['To'], buckets: RTT_BUCKETS, registers });
    this.peerSent = new Counter({ name: 'etcd_network_peer_sent_bytes_total', help: 'The total number of bytes sent to peers.', labelNames: ['To'], registers });
    this.peerReceived = new Counter({ name: 'etcd_network_peer_received_bytes_total', help: 'The total number of bytes received from peers.', labelNames: ['From'], registers });
    new Gauge({ name: 'etcd_mvcc_db_total_size_in_bytes', help: 'Total size of the underlying database physically allocated in bytes.', registers, async collect() { this.set(await sources.dbSizeBytes()); } });
    new Gauge({ name: 'etcd_server_quota_backend_bytes', help: 'Current backend storage quota size in bytes.', registers, collect() { this.set(sources.quotaBackendBytes?.() ?? 0); } });
    new Gauge({ name: 'etcd_debugging_mvcc_keys_total', help: 'Total number of keys.', registers, collect() { this.set(sources.keyCount()); } });
    this.leaseExpired = new Counter({ name: 'etcd_debugging_server_lease_expired_total', help: 'The total number of expired leases.', registers });
    this.locks = new LockMetrics(this.registry, sources.lockNames ?? new Set());
    this.streams = new StreamAccounting(this.registry);
    const watch = sources.watchFigures;
    if (watch !== undefined) {
      new Gauge({ name: 'etcd_debugging_mvcc_watch_stream_total', help: 'Total number of watch streams.', registers, collect() { this.set(watch().streams); } });
      new Gauge({ name: 'etcd_debugging_mvcc_watcher_total', help: 'Total number of watchers.', registers, collect() { this.set(watch().watchers); } });
      new Gauge({ name: 'etcd_debugging_mvcc_slow_watcher_total', help: 'Total number of unsynced slow watchers.', registers, collect() { this.set(watch().slowWatchers); } });
    }
    this.grpc = new GrpcServerMetrics(this.registry);
  }
}
