/**
 * One gavel member: opens storage, rebuilds the state machine, starts the node and serves the
 * gRPC API. The I/O shell around the pure parts (mvcc, lessor, watch hub, raft core).
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import type { Config } from './config.js';
import { listenHost } from './config.js';
import type { Logger } from './log.js';
import { systemClock, type Clock } from './clock.js';
import { Storage, decodeBigInt, decodeNumber, encodeNumber, loadLeases, metaKey } from './storage/layout.js';
import { loadStore } from './mvcc/backend.js';
import { Lessor, minLeaseTtlSeconds } from './lease/lessor.js';
import { StateMachine } from './apply/state-machine.js';
import { WatchHub } from './watch/hub.js';
import { SingleNode } from './node/single-node.js';
import type { Consensus } from './node/consensus.js';
import { serviceDefinition } from './proto.js';
import type { ApiContext } from './api/context.js';
import { kvService } from './api/kv.js';
import { leaseService } from './api/lease.js';
import { watchService } from './api/watch.js';
import { clusterService, maintenanceService } from './api/maintenance.js';

/** gRPC may carry a little more than a request's payload (etcd allows 512 KiB of overhead). */
const GRPC_OVERHEAD_BYTES = 512 * 1024;
const LEASE_EXPIRY_INTERVAL_MS = 250;
const WATCH_TICK_INTERVAL_MS = 100;
/** etcd revokes at most this many expired leases per second, so an expiry storm cannot swamp the log. */
const LEASE_REVOKES_PER_SECOND = 1000;

export class Member {
  private readonly timers: NodeJS.Timeout[] = [];
  private closing: Promise<void> | undefined;

  private constructor(
    readonly config: Config,
    private readonly logger: Logger,
    private readonly storage: Storage,
    readonly machine: StateMachine,
    readonly node: Consensus,
    private readonly watchHub: WatchHub,
    private readonly grpcServer: grpc.Server,
    readonly clientAddresses: readonly string[],
  ) {}

  static async start(config: Config, logger: Logger, clock: Clock = systemClock): Promise<Member> {
    const storage = await Storage.open(config.dataDir);
    try {
      return await Member.startOn(storage, config, logger, clock);
    } catch (error) {
      await storage.close();
      throw error;
    }
  }

  private static async startOn(storage: Storage, config: Config, logger: Logger, clock: Clock): Promise<Member> {
    const identity = await loadIdentity(storage);
    const store = await loadStore(storage.space('kv'), storage.space('kvmeta'));
    const lessor = new Lessor({ minTtlSeconds: minLeaseTtlSeconds(config.electionTimeoutMs, config.heartbeatIntervalMs), clock });
    for (const lease of await loadLeases(storage)) lessor.grant(lease.id, lease.ttlSeconds);
    for (const { key, lease } of store.keysWithLease()) if (lessor.exists(lease)) lessor.attach(lease, key);
    const applied = decodeNumber(await storage.get('meta', metaKey('applied-index'))) ?? 0;
    const machine = new StateMachine(store, lessor, applied);
    const watchHub = new WatchHub(store, {
      clock,
      maxResponseBytes: config.maxRequestBytes,
      progressIntervalMs: config.watchProgressNotifyIntervalMs,
      maxWatchersPerStream: config.maxWatchersPerStream,
    });
    machine.onEvents((revision, events) => watchHub.notify(revision, [...events]));

    const grpcServer = new grpc.Server({
      'grpc.max_receive_message_length': config.maxRequestBytes + GRPC_OVERHEAD_BYTES,
      'grpc.max_send_message_length': -1,
    });
    const addresses = await bindAll(grpcServer, config);
    const clientUrls = config.advertiseClientUrls.map((url, i) => withPort(url, addresses[i] ?? addresses[0] ?? ''));
    const node = await SingleNode.open(storage, machine, {
      memberId: identity.memberId,
      clusterId: identity.clusterId,
      self: { id: identity.memberId, name: config.name, peerUrls: config.initialAdvertisePeerUrls.map(String).map(trimSlash), clientUrls, isLearner: false },
      maxRequestBytes: config.maxRequestBytes,
      maxPendingProposals: config.maxPendingProposals,
      snapshotCount: config.snapshotCount,
      logger,
    });
    // The one member is the leader: leases start counting down from now (a restart gives every
    // lease its full TTL again, as etcd does).
    lessor.promote();

    const ctx: ApiContext = { config, node, machine, watchHub, logger, diskSizeBytes: () => storage.diskSizeBytes() };
    grpcServer.addService(serviceDefinition('etcdserverpb.KV'), kvService(ctx));
    grpcServer.addService(serviceDefinition('etcdserverpb.Watch'), watchService(ctx));
    grpcServer.addService(serviceDefinition('etcdserverpb.Lease'), leaseService(ctx));
    grpcServer.addService(serviceDefinition('etcdserverpb.Maintenance'), maintenanceService(ctx));
    grpcServer.addService(serviceDefinition('etcdserverpb.Cluster'), clusterService(ctx));
    // Declared now so clients get UNIMPLEMENTED (not "unknown service") until their handlers land.
    grpcServer.addService(serviceDefinition('etcdserverpb.Auth'), {});
    grpcServer.addService(serviceDefinition('v3lockpb.Lock'), {});
    grpcServer.addService(serviceDefinition('v3electionpb.Election'), {});

    const member = new Member(config, logger, storage, machine, node, watchHub, grpcServer, addresses);
    member.startLoops();
    logger.info('member started', {
      name: config.name,
      memberId: identity.memberId.toString(16),
      dataDir: config.dataDir,
      revision: store.currentRevision,
      appliedIndex: machine.appliedIndex,
    });
    for (const address of addresses) logger.info('serving client requests', { address });
    return member;
  }

  private startLoops(): void {
    this.timers.push(setInterval(() => this.watchHub.tick(), WATCH_TICK_INTERVAL_MS));
    this.timers.push(setInterval(() => this.expireLeases(), LEASE_EXPIRY_INTERVAL_MS));
    for (const timer of this.timers) timer.unref();
  }

  /** Only the leader expires leases, and only by proposing the revoke: keys vanish when it commits. */
  private expireLeases(): void {
    if (!this.node.isLeader()) return;
    const limit = Math.ceil((LEASE_REVOKES_PER_SECOND * LEASE_EXPIRY_INTERVAL_MS) / 1000);
    const expired = this.machine.lessor.expiredLeases(limit);
    if (expired.length === 0) return;
    this.logger.info('leases expired', { count: expired.length });
    for (const id of expired) {
      this.node.propose({ lease_revoke: { ID: id.toString() } }).catch((error: unknown) => {
        this.logger.warn('failed to revoke expired lease', { lease: id.toString(16), error });
      });
    }
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
    this.watchHub.close();
    await this.node.close();
    await this.storage.close();
    this.logger.info('member stopped');
  }
}

async function loadIdentity(storage: Storage): Promise<{ memberId: bigint; clusterId: bigint }> {
  const memberId = await decodeBigInt(await storage.get('meta', metaKey('member-id')));
  const clusterId = await decodeBigInt(await storage.get('meta', metaKey('cluster-id')));
  if (memberId !== undefined && clusterId !== undefined) return { memberId, clusterId };
  const fresh = { memberId: randomId(), clusterId: randomId() };
  await storage.write(
    [
      { type: 'put', space: 'meta', key: metaKey('member-id'), value: encodeNumber(fresh.memberId) },
      { type: 'put', space: 'meta', key: metaKey('cluster-id'), value: encodeNumber(fresh.clusterId) },
    ],
    true,
  );
  return fresh;
}

/** A non-zero uint64 that also fits int64, since some clients print ids as signed numbers. */
function randomId(): bigint {
  const id = randomBytes(8).readBigUInt64BE() & 0x7fff_ffff_ffff_ffffn;
  return id === 0n ? 1n : id;
}

async function bindAll(server: grpc.Server, config: Config): Promise<string[]> {
  const addresses: string[] = [];
  for (const url of config.listenClientUrls) {
    const host = listenHost(url);
    const target = host.includes(':') ? `[${host}]:${url.port}` : `${host}:${url.port}`;
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(target, grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(new Error(`cannot listen on ${url.href}: ${error.message}`)) : resolve(bound))),
    );
    addresses.push(host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
  }
  return addresses;
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
