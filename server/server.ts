/**
 * One gavel member: opens storage, rebuilds the state machine, starts the Raft node and the
 * peer transport, and serves the gRPC API. The I/O shell around the pure parts (mvcc, lessor,
 * watch hub, raft core).
 */
import * as grpc from '@grpc/grpc-js';
import type { Config } from './config.js';
import { autoCompactionOf } from './config.js';
import type { Logger } from './log.js';
import { systemClock, type Clock } from './clock.js';
import { Storage } from './storage/layout.js';
import { minLeaseTtlSeconds } from './lease/lessor.js';
import { StateMachine } from './apply/state-machine.js';
import { loadMachineState } from './apply/load.js';
import { pruneSnapshotFiles, resumeSnapshotInstall, snapshotDirectory } from './apply/snapshot.js';
import { createRaftLog, openRaftLog, walDirectory } from './storage/raft-wal.js';
import type { Wal, WalState } from './storage/wal.js';
import { rm } from 'node:fs/promises';
import { MemberSnapshots } from './node/snapshots.js';
import { openBackup } from './node/backup.js';
import { Compactor } from './mvcc/compactor.js';
import { hashLevel } from './mvcc/backend.js';
import { GavelError } from './errors.js';
import { WatchHub } from './watch/hub.js';
import { RaftNode } from './node/raft-node.js';
import { ShellStorage } from './node/shell-storage.js';
import { bootstrapNewCluster, confStateOf, identityOps, loadIdentity, restoreRaftStorage, type Identity } from './cluster/bootstrap.js';
import { discoverIdentity } from './cluster/join.js';
import { PeerTransport } from './transport/transport.js';
import { loadTls, type MemberTls, type TlsMaterial } from './tls.js';
import { serviceDefinition } from './proto.js';
import { MemberMetrics } from './metrics/registry.js';
import { instrumentService } from './metrics/grpc.js';
import { memberEndpoints, serveMetrics, type HealthSource } from './metrics/http.js';
import type { Server as HttpServer } from 'node:http';
import { clientGrpcServerOptions, GRPC_OVERHEAD_BYTES, listenClientUrls, type ClientPort } from './http/client-port.js';
import { handlerChain } from './http/handlers.js';
import { API_VERSION } from './api/maintenance.js';
import type { ApiContext } from './api/context.js';
import { kvService } from './api/kv.js';
import { proposeDueDelayEnds } from './coordinator/delays.js';
import { Client } from '../client/client.js';
import type { ServiceName } from '../client/channel.js';
import { InProcessChannel } from './api/in-process.js';
import { lockService } from './api/lock.js';
import { electionService } from './api/election.js';
import { leaseService } from './api/lease.js';
import { watchService } from './api/watch.js';
import { clusterService, maintenanceService } from './api/maintenance.js';
import { authService } from './api/auth.js';
import { coordinatorService } from './api/coordinator.js';
import { CoordinatorStats } from './coordinator/stats.js';
import { createCompactionPolicy, describeAutoCompaction } from './mvcc/auto-compaction.js';
import { AutoCompactor } from './node/auto-compactor.js';
import { DiskSizeCache, logQuota, QuotaGuard, withQuota } from './api/quota.js';
import { effectiveQuotaBytes, MAX_SUGGESTED_QUOTA_BYTES } from './alarm/quota.js';
import { afterInputTurn, LEASE_CHECKPOINT_ROUND_MS, LEASE_EXPIRY_ROUND_MS, LeaseDuties } from './lease/leader-duties.js';
import { createGateway } from './gateway/gateway.js';

const WATCH_TICK_INTERVAL_MS = 100;
/** How often the leader looks for lock-delays whose time is up (it then proposes their end). */
const LOCK_DELAY_CHECK_MS = 50;
/** End-delay proposals per check, bounded like lease revokes. */
const LOCK_DELAY_ENDS_PER_CHECK = 100;
const PUBLISH_RETRY_MS = 500;
const PUBLISH_WAIT_MS = 10_000;
const HEALTH_READ_TIMEOUT_MS = 1000;

export interface MemberEvents {
  /** This member was removed from the cluster: the process should stop. */
  readonly onRemoved?: () => void;
}

export class Member {
  private readonly timers: NodeJS.Timeout[] = [];
  private closing: Promise<void> | undefined;
  /** Coordinator figures for metrics: holders, waiters, queue length per lock, sequencer rejections. */
  coordinatorStats!: CoordinatorStats;
  /** --auto-compaction-*: undefined when off. */
  private autoCompactor: AutoCompactor | undefined;

  private constructor(
    readonly config: Config,
    private readonly logger: Logger,
    private readonly storage: Storage,
    readonly machine: StateMachine,
    readonly node: RaftNode,
    private readonly transport: PeerTransport,
    private readonly watchHub: WatchHub,
    private readonly grpcServer: grpc.Server,
    private readonly clientPorts: readonly ClientPort[],
    readonly clientUrls: readonly string[],
    private readonly httpServers: readonly HttpServer[],
    private readonly metrics: MemberMetrics,
    /** Deletes compacted versions from level in the background. */
    readonly compactor: Compactor,
    private readonly snapshots: MemberSnapshots,
    private readonly wal: Wal,
  ) {}

  static async start(config: Config, logger: Logger, events: MemberEvents = {}, clock: Clock = systemClock): Promise<Member> {
    // Certificate files are read before anything is opened: a bad one stops the start here.
    const tls = loadTls(config);
    const storage = await Storage.open(config.dataDir);
    try {
      return await Member.startOn(storage, config, logger, events, clock, tls);
    } catch (error) {
      await storage.close();
      throw error;
    }
  }

  private static async startOn(storage: Storage, config: Config, logger: Logger, events: MemberEvents, clock: Clock, tls: MemberTls): Promise<Member> {
    const loadOptions = {
      minLeaseTtlSeconds: minLeaseTtlSeconds(config.electionTimeoutMs, config.heartbeatIntervalMs),
      clock,
      authTokenTtlSeconds: config.authTokenTtlSeconds,
      leaseCheckpointIntervalMs: config.leaseCheckpointIntervalMs,
    };
    // The Raft log (moved out of level on a data dir written by an older gavel); then a crash in
    // the middle of a snapshot install is finished before anything is loaded.
    const raftLog = await openRaftLog(storage, config.dataDir, logger);
    const snapshotDir = snapshotDirectory(config.dataDir);
    const resumed = await resumeSnapshotInstall(storage, raftLog?.state.snapshot);
    if (resumed !== undefined) logger.warn('finished a snapshot install interrupted by a crash', { file: resumed });
    await pruneSnapshotFiles(snapshotDir);
    const machine = new StateMachine(await loadMachineState(storage, loadOptions));
    const quotaBytes = effectiveQuotaBytes(config.quotaBackendBytes);
    logQuota(logger, config.quotaBackendBytes, quotaBytes, MAX_SUGGESTED_QUOTA_BYTES);
    let node: RaftNode | undefined;
    let memberRef: Member | undefined;
    const raftStorage = new ShellStorage();
    const snapshots = new MemberSnapshots({ storage, directory: snapshotDir, logger, estimateBytes: () => machine.store.sizeBytes });
    // Compactions drop versions from the index at once; their records leave level in the background.
    const compactor = new Compactor({
      kv: storage.space('kv'),
      write: (ops) => storage.write(ops, false),
      store: () => machine.store,
      reclaim: (start, end) => storage.compactSpaceRange('kv', start, end),
      logger: logger.child({ component: 'compactor' }),
    });
    machine.onCompaction((revision) => compactor.schedule(revision));
    compactor.resume();
    const { identity, peers, wal } = await resolveIdentity(storage, config, machine, raftStorage, logger, tls.peer, raftLog);
    const watchHub = new WatchHub(
      {
        get currentRevision() {
          return machine.store.currentRevision;
        },
        get compactedRevision() {
          return machine.store.compactedRevision;
        },
        eventsInRange: (from, to, range, max) => machine.store.eventsInRange(from, to, range, max),
      },
      { clock, maxResponseBytes: config.maxRequestBytes, progressIntervalMs: config.watchProgressNotifyIntervalMs, maxWatchersPerStream: config.maxWatchersPerStream },
    );
    machine.onEvents((revision, changes) => watchHub.notify(revision, [...changes]));
    const metrics = new MemberMetrics({
      hasLeader: () => (node?.status().leader ?? 0n) !== 0n,
      isLeader: () => node?.isLeader() ?? false,
      commitIndex: () => node?.status().commitIndex ?? 0,
      appliedIndex: () => machine.appliedIndex,
      pendingProposals: () => node?.pendingProposals() ?? 0,
      dbSizeBytes: () => storage.diskSizeBytes(),
      keyCount: () => machine.store.keyCount,
      quotaBackendBytes: () => (quotaBytes === Number.POSITIVE_INFINITY ? config.quotaBackendBytes : quotaBytes),
      lockNames: new Set(config.metricsLockNames.split(',').filter((n) => n.length > 0)),
      watchFigures: () => ({ streams: watchHub.streamCount, watchers: watchHub.watcherCount, slowWatchers: watchHub.unsyncedWatcherCount }),
    });
    const hex = (peer: bigint): string => peer.toString(16);

    const transport = new PeerTransport({
      memberId: identity.memberId,
      clusterId: identity.clusterId,
      logger: logger.child({ component: 'transport' }),
      listenUrls: [...config.listenPeerUrls],
      ...(tls.peer === undefined ? {} : { tls: tls.peer }),
      handlers: {
        onMessage: (message) => node?.step(message),
        leaseRenew: (id) => requireNode(node).renewLease(id),
        leaseTimeToLive: (id, keys) => requireNode(node).leaseTimeToLive(id, keys),
        members: () => machine.membership.list(),
      },
      onUnreachable: (peer) => node?.reportUnreachable(peer),
      metrics: {
        sentBytes: (peer, bytes) => metrics.peerSent.inc({ To: hex(peer) }, bytes),
        receivedBytes: (peer, bytes) => metrics.peerReceived.inc({ From: hex(peer) }, bytes),
        roundTrip: (peer, seconds) => metrics.peerRoundTrip.observe({ To: hex(peer) }, seconds),
        peerUnreachable: (peer) => logger.warn('peer unreachable', { peer: hex(peer) }),
      },
      streams: metrics.streams,
      onSnapshotStatus: (peer, status) => node?.reportSnapshot(peer, status),
      snapshotStreams: snapshots,
    });
    node = new RaftNode({
      memberId: identity.memberId,
      clusterId: identity.clusterId,
      clusterToken: config.initialClusterToken,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      electionTimeoutMs: config.electionTimeoutMs,
      snapshotCount: config.snapshotCount,
      maxRequestBytes: config.maxRequestBytes,
      maxPendingProposals: config.maxPendingProposals,
      logger,
      storage,
      wal,
      machine,
      raftStorage,
      network: transport,
      reload: () => loadMachineState(storage, loadOptions),
      snapshots,
      snapshotDirectory: snapshotDir,
      beforeRestore: () => compactor.stop(),
      onRestored: () => {
        compactor.resume();
        watchHub.restored();
      },
      // Publish name and client URLs as soon as there is a leader to take the proposal.
      onLeaderChange: (leader, isLeader) => {
        if (leader !== 0n) memberRef?.publishAttributes();
      },
      onRemoved: () => events.onRemoved?.(),
      metrics,
    });
    await transport.start();
    for (const peer of peers) transport.addPeer(peer.id, peer.peerUrls);
    node.syncPeers();

    const grpcServer = new grpc.Server(clientGrpcServerOptions(config));
    const diskSize = new DiskSizeCache(() => storage.diskSizeBytes(), clock);
    // A defragmentation shrinks the database: the quota must not judge by the size before it.
    // It first waits for the compactor: space is only given back once compacted versions are
    // deleted. A compaction just applied reaches the compactor when its state batch is written
    // (a few milliseconds later), so the wait starts once level holds everything applied.
    const defragment = async (): Promise<void> => {
      await machine.whenIndexDurable(machine.appliedIndex);
      await compactor.idle();
      await storage.defragment();
      diskSize.invalidate();
    };
    const ctx: ApiContext = {
      config, node, machine, watchHub, logger, defragment, lockMetrics: metrics.locks, streams: metrics.streams,
      diskSizeBytes: () => storage.diskSizeBytes(),
      compactionFinished: (revision) => compactor.whenFinished(revision),
      hashKv: (revision) => hashStore(storage, machine, revision),
      openBackup: async (chunkBytes, signal) => {
        const started = performance.now();
        const backup = await openBackup(storage, machine, chunkBytes, signal);
        let observed = false;
        const close = async (): Promise<void> => {
          await backup.close();
          if (observed) return;
          observed = true;
          metrics.backendSnapshot.observe((performance.now() - started) / 1000);
        };
        return { ...backup, close };
      },
    };
    const coordinatorStats = new CoordinatorStats(() => machine.coordinator);
    metrics.locks.attachCoordinator(coordinatorStats);
    const services = addServices(grpcServer, ctx, metrics, coordinatorStats, new QuotaGuard(ctx, diskSize, quotaBytes));
    const startCommit = node.status().commitIndex;
    const health: HealthSource = {
      healthy: async () => {
        if (node === undefined || node.status().leader === 0n) return { ok: false, reason: 'no leader' };
        // etcd's /health also proves the member can serve a linearizable read.
        const read = node.readBarrier();
        const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), HEALTH_READ_TIMEOUT_MS).unref());
        return Promise.race([read, timeout]).then(
          () => ({ ok: true, reason: '' }),
          () => ({ ok: false, reason: 'linearizable read timed out' }),
        );
      },
      ready: () => node !== undefined && node.status().leader !== 0n && machine.appliedIndex >= startCommit,
    };
    const endpoints = memberEndpoints(metrics, health, API_VERSION);
    // The client port's HTTP/1.1 side, first handler first: the JSON gateway (/v3/...), then /version, /metrics, /health.
    const gateway = createGateway({ services, maxMessageBytes: config.maxRequestBytes + GRPC_OVERHEAD_BYTES, logger: logger.child({ component: 'gateway' }) });
    const clientHttp = handlerChain([gateway, endpoints]);
    const clientPorts = await listenClientUrls(config.listenClientUrls, { grpcServer, http: clientHttp, tls: tls.client, logger });
    const addresses = clientPorts.map((port) => port.address);
    const clientUrls = config.advertiseClientUrls.map((url, i) => withPort(url, addresses[i] ?? addresses[0] ?? ''));
    const http = await serveMetrics(config.listenMetricsUrls, handlerChain([endpoints]), tls.client).catch(async (error: unknown) => {
      for (const port of clientPorts) port.close();
      throw error;
    });
    for (const address of http.addresses) logger.info('serving metrics and health', { address });
    const member = new Member(config, logger, storage, machine, node, transport, watchHub, grpcServer, clientPorts, clientUrls, http.servers, metrics, compactor, snapshots, wal);
    memberRef = member;
    member.coordinatorStats = coordinatorStats;
    member.autoCompactor = createAutoCompactor(config, machine, node, logger, clock);
    node.start();
    member.startLoops();
    // Like etcd, announce readiness once this member's name and client URLs are in the registry
    // (bounded: a member that cannot reach a quorum still serves, and says so).
    const published = await member.waitPublished(PUBLISH_WAIT_MS);
    if (!published) logger.warn('serving before this member could publish its attributes: no leader yet');
    logger.info('member started', {
      name: config.name,
      memberId: identity.memberId.toString(16),
      clusterId: identity.clusterId.toString(16),
      dataDir: config.dataDir,
      revision: machine.store.currentRevision,
      appliedIndex: machine.appliedIndex,
    });
    // Test harnesses and scripts wait for this line: gRPC and HTTP both answer from here on.
    for (const address of addresses) logger.info('serving client requests', { address, serves: 'gRPC, the JSON gateway /v3/, /version, /metrics, /health, /livez, /readyz' });
    return member;
  }

  private startLoops(): void {
    this.timers.push(setInterval(() => this.watchHub.tick(), WATCH_TICK_INTERVAL_MS));
    const duties = new LeaseDuties({
      lessor: () => this.machine.lessor,
      isLeader: () => this.node.isLeader(),
      propose: (mutation) => this.node.propose(mutation),
      logger: this.logger,
      onExpired: (count) => {
        this.metrics.leaseExpired.inc(count);
        this.metrics.locks.sessionExpiries.inc(count);
      },
    });
    // Expiry decides right after the member has read its input (keep-alives count on arrival).
    this.timers.push(setInterval(() => afterInputTurn(systemClock, () => duties.expireRound()), LEASE_EXPIRY_ROUND_MS));
    this.timers.push(setInterval(() => this.endLockDelays(), LOCK_DELAY_CHECK_MS));
    this.timers.push(setInterval(() => duties.checkpointRound(), LEASE_CHECKPOINT_ROUND_MS));
    for (const timer of this.timers) timer.unref();
    this.autoCompactor?.start();
  }

  /** etcd's publish: once a leader exists, record this member's name and client URLs in the registry. */
  private publishing = false;

  /** Resolves true once the registry holds this member's attributes, false after timeoutMs. */
  async waitPublished(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.isPublished()) return true;
      this.publishAttributes();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.isPublished();
  }

  private isPublished(): boolean {
    const current = this.machine.membership.get(this.node.status().memberId);
    return current !== undefined && current.name === this.config.name && sameList(current.clientUrls, this.clientUrls);
  }

  /**
   * etcd's publish: record this member's name and client URLs in the replicated registry.
   * Called at start and on every leader change; a failed attempt retries on a timer too.
   */
  publishAttributes(): void {
    if (this.publishing || this.closing) return;
    if (this.isPublished()) return;
    const memberId = this.node.status().memberId;
    this.publishing = true;
    this.node.propose({ member_attributes: { id: memberId.toString(), name: this.config.name, client_urls: [...this.clientUrls] } }).then(
      () => {
        this.publishing = false;
        this.logger.info('published member attributes', { name: this.config.name, clientUrls: this.clientUrls });
      },
      () => {
        this.publishing = false;
        setTimeout(() => this.publishAttributes(), PUBLISH_RETRY_MS).unref();
      },
    );
  }

  /** Only the leader ends lock-delays, by proposing the end when its clock says the time is up. */
  private endLockDelays(): void {
    if (!this.node.isLeader()) return;
    proposeDueDelayEnds(this.machine.coordinator, this.node, this.logger, LOCK_DELAY_ENDS_PER_CHECK);
  }

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.autoCompactor?.stop();
    // Hand leadership over while the transport still runs, then stop taking requests.
    await this.node.close();
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.grpcServer.forceShutdown();
        resolve();
      }, 2000);
      this.grpcServer.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    this.watchHub.close();
    for (const port of this.clientPorts) port.close();
    for (const server of this.httpServers) server.close();
    await this.transport.stop();
    await this.compactor.stop();
    this.snapshots.close();
    await this.wal.close();
    await this.storage.close();
    this.logger.info('member stopped');
  }
}

/**
 * --auto-compaction-*: every member runs the policy's clock (followers keep sampling revisions);
 * only the leader proposes. Undefined when auto-compaction is off.
 */
function createAutoCompactor(config: Config, machine: StateMachine, node: RaftNode, logger: Logger, clock: Clock): AutoCompactor | undefined {
  const settings = autoCompactionOf(config);
  logger.info('auto compaction', { setting: describeAutoCompaction(settings) });
  if (settings === undefined) return undefined;
  return new AutoCompactor({
    policy: createCompactionPolicy(settings, clock, machine.store.currentRevision),
    view: () => ({ currentRevision: machine.store.currentRevision, compactedRevision: machine.store.compactedRevision, isLeader: node.isLeader() }),
    propose: (revision) => node.propose({ compaction: { revision: String(revision), physical: false } }),
    logger: logger.child({ component: 'compactor' }),
    clock,
  });
}

/** Adds every service to the gRPC server; returns them as served (instrumented), for the JSON gateway. */
function addServices(server: grpc.Server, ctx: ApiContext, metrics: MemberMetrics, coordinatorStats: CoordinatorStats, quota: QuotaGuard): Map<ServiceName, grpc.UntypedServiceImplementation> {
  // Put, Txn and LeaseGrant pass the space quota first (etcd's quotaKVServer, quotaLeaseServer).
  const core = new Map<ServiceName, grpc.UntypedServiceImplementation>([
    ['etcdserverpb.KV', withQuota(kvService(ctx), quota)],
    ['etcdserverpb.Watch', watchService(ctx)],
    ['etcdserverpb.Lease', withQuota(leaseService(ctx), quota)],
    ['etcdserverpb.Maintenance', maintenanceService(ctx)],
    ['etcdserverpb.Cluster', clusterService(ctx)],
  ]);
  // Lock and Election run the client library's recipes against this member, in-process, as
  // their caller: the recipes' KV calls are checked against the caller's permissions.
  const channel = new InProcessChannel(core);
  const local = new Client({ channel });
  const clients = (caller: string | undefined): Client => (caller === undefined ? local : new Client({ channel: channel.as(caller) }));
  const services: [ServiceName, grpc.UntypedServiceImplementation][] = [
    ...core,
    ['v3lockpb.Lock', lockService(ctx, clients)],
    ['v3electionpb.Election', electionService(ctx, clients)],
    ['etcdserverpb.Auth', authService(ctx)],
    ['gavel.v1.Coordinator', coordinatorService(ctx, coordinatorStats)],
  ];
  const served = new Map<ServiceName, grpc.UntypedServiceImplementation>();
  for (const [name, implementation] of services) {
    const definition = serviceDefinition(name);
    const instrumented = instrumentService(definition, implementation, metrics);
    server.addService(definition, instrumented);
    served.set(name, instrumented);
  }
  return served;
}

/** Attempts at HashKV when compactions keep changing what it counts. */
const HASH_ATTEMPTS = 3;

/**
 * HashKV from level: once every version up to the revision is on disk, one scan through a level
 * snapshot (sequential reads, in steps; the member keeps serving). A compaction during the scan
 * starts it over, a few times at most.
 */
async function hashStore(storage: Storage, machine: StateMachine, revision: number): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const hashRevision = machine.store.hashFilter(revision).hashRevision;
    await machine.whenDurable(hashRevision);
    const snapshot = storage.db.snapshot();
    try {
      return await hashLevel(storage.space('kv'), snapshot, () => machine.store, revision);
    } catch (error) {
      if (attempt >= HASH_ATTEMPTS || !(error instanceof GavelError && error.code === 'Compacted')) throw error;
    } finally {
      await snapshot.close();
    }
  }
}

/**
 * Who this member is: from disk on a restart, from --initial-cluster for a new cluster, from peers
 * when joining. Without an identity on disk nothing was ever served, so a Raft log left by a start
 * that crashed half-way is discarded and the member starts over.
 */
async function resolveIdentity(
  storage: Storage,
  config: Config,
  machine: StateMachine,
  raftStorage: ShellStorage,
  logger: Logger,
  peerTls: TlsMaterial | undefined,
  raftLog: { wal: Wal; state: WalState } | undefined,
): Promise<{ identity: Identity; peers: readonly { id: bigint; peerUrls: readonly string[] }[]; wal: Wal }> {
  const existing = await loadIdentity(storage);
  if (existing !== undefined) {
    if (raftLog === undefined) {
      // A member that joined and crashed before its first Raft write: it starts with an empty log.
      return { identity: existing, peers: [], wal: await createRaftLog(config.dataDir, undefined, undefined) };
    }
    restoreRaftStorage(raftLog.state, machine, raftStorage);
    return { identity: existing, peers: [], wal: raftLog.wal };
  }
  if (raftLog !== undefined) {
    await raftLog.wal.close();
    await rm(walDirectory(config.dataDir), { recursive: true, force: true });
  }
  if (config.initialClusterState === 'new') {
    const { identity, wal } = await bootstrapNewCluster(storage, config, machine, raftStorage, logger);
    return { identity, peers: [], wal };
  }
  const discovered = await discoverIdentity(config, logger, peerTls);
  const wal = await createRaftLog(config.dataDir, undefined, undefined);
  await storage.write(identityOps(discovered.identity), true);
  logger.info('joining an existing cluster', { memberId: discovered.identity.memberId.toString(16), clusterId: discovered.identity.clusterId.toString(16) });
  return { ...discovered, wal };
}

function requireNode(node: RaftNode | undefined): RaftNode {
  if (node === undefined) throw new Error('peer request before the node started');
  return node;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** An advertised URL with port 0 advertises the port actually bound. */
function withPort(url: URL, address: string): string {
  if (url.port !== '0') return trimSlash(url.href);
  const port = address.slice(address.lastIndexOf(':') + 1);
  const copy = new URL(url.href);
  copy.port = port;
  return trimSlash(copy.href);
}

function trimSlash(href: string): string {
  return href.endsWith('/') ? href.slice(0, -1) : href;
}
