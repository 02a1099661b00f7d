/**
 * `gavel --mode central`: the textbook central coordinator as one process, without consensus.
 * It serves gavel.v1.Coordinator and etcdserverpb.Lease (holders and waiters are bound to
 * leases); KV, Watch, Lock, Election, Cluster, Maintenance and Auth answer UNIMPLEMENTED, which
 * is how the client library's `mutex(..., { mode: 'auto' })` knows to use the coordinator.
 *
 * The simplest and fastest deployment (one fsync per group of requests, no replication round
 * trip) and a single point of failure: while it is down nobody can take a lock. Its state is
 * journaled in level under --data-dir (central-node.ts), so a restart keeps holders and queues;
 * leases get their full TTL again on restart, as etcd does, and running lock-delays their full
 * length. It reuses the member's pieces: the state machine, the coordinator core, the Lease and
 * Coordinator adapters, metrics and health.
 */
import { proposeDueDelayEnds } from '../coordinator/delays.js';
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import { UsageError, type Config } from '../config.js';
import type { Logger } from '../log.js';
import { systemClock, type Clock } from '../clock.js';
import { Storage, decodeBigInt, encodeNumber, metaKey } from '../storage/layout.js';
import { StateMachine } from '../apply/state-machine.js';
import { loadMachineState } from '../apply/load.js';
import { loadIdentity } from '../cluster/bootstrap.js';
import { WatchHub } from '../watch/hub.js';
import { loadTls } from '../tls.js';
import { serviceDefinition } from '../proto.js';
import { MemberMetrics } from '../metrics/registry.js';
import { instrumentService } from '../metrics/grpc.js';
import { memberEndpoints, serveMetrics } from '../metrics/http.js';
import { clientGrpcServerOptions, listenClientUrls, type ClientPort } from '../http/client-port.js';
import { handlerChain } from '../http/handlers.js';
import { API_VERSION } from '../api/maintenance.js';
import type { ApiContext } from '../api/context.js';
import { leaseService } from '../api/lease.js';
import { coordinatorService } from '../api/coordinator.js';
import { CoordinatorStats } from '../coordinator/stats.js';
import { CentralNode } from './central-node.js';

const LEASE_EXPIRY_INTERVAL_MS = 250;
const LOCK_DELAY_CHECK_MS = 50;
const EXPIRIES_PER_CHECK = 250;
/** No elections here: a lease needs no minimum TTL to survive one. */
const MIN_LEASE_TTL_SECONDS = 1;
const CENTRAL_ID_KEY = metaKey('central-id');

/** The services a member has and central mode does not: declared, so each answers UNIMPLEMENTED. */
const ABSENT_SERVICES = ['etcdserverpb.KV', 'etcdserverpb.Watch', 'etcdserverpb.Cluster', 'etcdserverpb.Maintenance', 'etcdserverpb.Auth', 'v3lockpb.Lock', 'v3electionpb.Election'];

export class CentralCoordinator {
  private readonly timers: NodeJS.Timeout[] = [];
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly logger: Logger,
    private readonly storage: Storage,
    readonly machine: StateMachine,
    readonly node: CentralNode,
    private readonly grpcServer: grpc.Server,
    private readonly clientPorts: readonly ClientPort[],
    private readonly httpServers: readonly HttpServer[],
    private readonly metrics: MemberMetrics,
    readonly coordinatorStats: CoordinatorStats,
  ) {}

  static async start(config: Config, logger: Logger, clock: Clock = systemClock): Promise<CentralCoordinator> {
    const tls = loadTls(config);
    const storage = await Storage.open(config.dataDir);
    try {
      if ((await loadIdentity(storage)) !== undefined) throw new UsageError(`--data-dir ${config.dataDir} belongs to a cluster member; --mode central needs a data dir of its own`);
      return await CentralCoordinator.startOn(storage, config, logger, clock, tls.client);
    } catch (error) {
      await storage.close();
      throw error;
    }
  }

  private static async startOn(storage: Storage, config: Config, logger: Logger, clock: Clock, clientTls: ReturnType<typeof loadTls>['client']): Promise<CentralCoordinator> {
    const id = await centralId(storage);
    const machine = new StateMachine(await loadMachineState(storage, { minLeaseTtlSeconds: MIN_LEASE_TTL_SECONDS, clock }));
    const node = await CentralNode.open({ memberId: id, storage, machine, maxRequestBytes: config.maxRequestBytes, maxPendingProposals: config.maxPendingProposals, logger });
    // The only "leader": leases get their full TTL from now (as after an etcd restart), delays their full length.
    machine.lessor.promote();
    machine.coordinator.promote();
    const metrics = new MemberMetrics({
      hasLeader: () => true,
      isLeader: () => true,
      commitIndex: () => machine.appliedIndex,
      appliedIndex: () => machine.appliedIndex,
      pendingProposals: () => node.pendingProposals(),
      dbSizeBytes: () => storage.diskSizeBytes(),
      keyCount: () => 0,
    });
    // The adapters' context wants a watch hub; with Watch unserved it stays idle (no KV history here).
    const watchHub = new WatchHub(
      { currentRevision: 0, compactedRevision: 0, eventsInRange: () => [] },
      { clock, maxResponseBytes: config.maxRequestBytes, progressIntervalMs: config.watchProgressNotifyIntervalMs, maxWatchersPerStream: config.maxWatchersPerStream },
    );
    const ctx: ApiContext = { config, node, machine, watchHub, logger, diskSizeBytes: () => storage.diskSizeBytes(), defragment: () => storage.defragment(), compactionFinished: async () => undefined, hashKv: async (revision) => machine.store.hash(revision), lockMetrics: metrics.locks, streams: metrics.streams };
    const stats = new CoordinatorStats(() => machine.coordinator);
    metrics.locks.attachCoordinator(stats);
    const grpcServer = new grpc.Server(clientGrpcServerOptions(config));
    const services: [string, grpc.UntypedServiceImplementation][] = [
      ['gavel.v1.Coordinator', coordinatorService(ctx, stats)],
      ['etcdserverpb.Lease', leaseService(ctx)],
      ...ABSENT_SERVICES.map((name): [string, grpc.UntypedServiceImplementation] => [name, {}]),
    ];
    for (const [name, implementation] of services) {
      const definition = serviceDefinition(name);
      grpcServer.addService(definition, instrumentService(definition, implementation, metrics));
    }
    // One process, no consensus: healthy and ready whenever it runs.
    const endpoints = memberEndpoints(metrics, { healthy: async () => ({ ok: true, reason: '' }), ready: () => true }, API_VERSION);
    const clientPorts = await listenClientUrls(config.listenClientUrls, { grpcServer, http: handlerChain([endpoints]), tls: clientTls, logger });
    const addresses = clientPorts.map((port) => port.address);
    const http = await serveMetrics(config.listenMetricsUrls, handlerChain([endpoints]), clientTls).catch((error: unknown) => {
      for (const port of clientPorts) port.close();
      throw error;
    });
    for (const address of http.addresses) logger.info('serving metrics and health', { address });
    const central = new CentralCoordinator(logger, storage, machine, node, grpcServer, clientPorts, http.servers, metrics, stats);
    central.startLoops();
    logger.warn('central mode: one coordinator process without consensus, a single point of failure', { dataDir: config.dataDir });
    logger.info('central coordinator started', { name: config.name, appliedIndex: machine.appliedIndex, locks: machine.coordinator.lockCount, leases: machine.lessor.size });
    for (const address of addresses) logger.info('serving client requests', { address });
    return central;
  }

  private startLoops(): void {
    this.timers.push(setInterval(() => this.expireLeases(), LEASE_EXPIRY_INTERVAL_MS));
    this.timers.push(setInterval(() => this.endLockDelays(), LOCK_DELAY_CHECK_MS));
    for (const timer of this.timers) timer.unref();
  }

  /** As on a leader: an expiry goes through the journal, and starts lock-delays where asked. */
  private expireLeases(): void {
    const expired = this.machine.lessor.expiredLeases(EXPIRIES_PER_CHECK);
    if (expired.length === 0) return;
    this.logger.info('leases expired', { count: expired.length });
    this.metrics.leaseExpired.inc(expired.length);
    for (const id of expired) {
      this.node.propose({ lease_expire: { ID: id.toString() } }).catch((error: unknown) => this.logger.warn('failed to expire a lease', { lease: id.toString(16), error }));
    }
  }

  private endLockDelays(): void {
    proposeDueDelayEnds(this.machine.coordinator, this.node, this.logger, EXPIRIES_PER_CHECK);
  }

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
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
    await this.node.close();
    for (const port of this.clientPorts) port.close();
    for (const server of this.httpServers) server.close();
    await this.storage.close();
    this.logger.info('central coordinator stopped');
  }
}

/** A stable id for response headers, chosen at the first start. */
async function centralId(storage: Storage): Promise<bigint> {
  const existing = decodeBigInt(await storage.get('meta', CENTRAL_ID_KEY));
  if (existing !== undefined) return existing;
  const id = randomBytes(8).readBigUInt64BE() & 0x7fff_ffff_ffff_ffffn || 1n;
  await storage.write([{ type: 'put', space: 'meta', key: CENTRAL_ID_KEY, value: encodeNumber(id) }], true);
  return id;
}
