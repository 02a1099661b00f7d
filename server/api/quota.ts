/**
 * The space quota at the API edge, as etcd's v3rpc/quota.go: before a Put, a Txn or a LeaseGrant
 * is proposed, the member that received it checks that its database on disk plus the request's
 * cost stays below --quota-backend-bytes. If not, it raises the NOSPACE alarm through Raft (so
 * every member refuses data-adding writes from then on, server/alarm/apply.ts) and answers
 * `etcdserver: mvcc: database space exceeded` (RESOURCE_EXHAUSTED) without proposing the write.
 *
 * The size is measured (a readdir and stats of the level directory) at most every
 * SIZE_MAX_AGE_MS and shared by the requests in between; etcd's own backend size lags its
 * commits by its batch interval in the same way.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Clock } from '../clock.js';
import { GavelError } from '../errors.js';
import type { Logger } from '../log.js';
import { AlarmType } from '../alarm/alarms.js';
import { AlarmAction } from '../alarm/apply.js';
import { fitsQuota, LEASE_OVERHEAD_BYTES, putCost, txnCost } from '../alarm/quota.js';
import type { ApiContext } from './context.js';
import { callSignal, requiresLeader } from './context.js';
import { toServiceError } from './status.js';
import type { WirePutRequest, WireTxnRequest } from './wire.js';

/** A measured size younger than this is used as is. */
export const SIZE_MAX_AGE_MS = 100;

/** The database size, measured at most every maxAgeMs; concurrent callers share one measurement. */
export class DiskSizeCache {
  private measuredAtMs = Number.NEGATIVE_INFINITY;
  private sizeBytes = 0;
  private pending: Promise<number> | undefined;

  constructor(
    private readonly measure: () => Promise<number>,
    private readonly clock: Clock,
    private readonly maxAgeMs = SIZE_MAX_AGE_MS,
  ) {}

  async current(): Promise<number> {
    if (this.clock.now() - this.measuredAtMs < this.maxAgeMs) return this.sizeBytes;
    this.pending ??= this.refresh();
    return this.pending;
  }

  /** Forget the last measurement (after a defragmentation shrank the database). */
  invalidate(): void {
    this.measuredAtMs = Number.NEGATIVE_INFINITY;
  }

  private async refresh(): Promise<number> {
    const startedMs = this.clock.now();
    try {
      this.sizeBytes = await this.measure();
      this.measuredAtMs = startedMs;
      return this.sizeBytes;
    } finally {
      this.pending = undefined;
    }
  }
}

export class QuotaGuard {
  constructor(
    private readonly ctx: ApiContext,
    private readonly size: DiskSizeCache,
    /** Infinity when the quota is off. */
    readonly quotaBytes: number,
  ) {}

  get enabled(): boolean {
    return this.quotaBytes !== Number.POSITIVE_INFINITY;
  }

  hasLeader(): boolean {
    return this.ctx.node.status().leader !== 0n;
  }

  /** Resolves when a request of this cost fits; else raises NOSPACE and throws NoSpace. */
  async admit(costBytes: number, signal?: AbortSignal): Promise<void> {
    if (!this.enabled) return;
    const sizeBytes = await this.size.current();
    if (fitsQuota(sizeBytes, costBytes, this.quotaBytes)) return;
    await this.raiseNoSpace(sizeBytes, signal);
    throw new GavelError('NoSpace');
  }

  /** etcd's quotaAlarmer: propose ACTIVATE NOSPACE for this member (once: a raised alarm is not proposed again). */
  private async raiseNoSpace(sizeBytes: number, signal?: AbortSignal): Promise<void> {
    const memberId = this.ctx.node.status().memberId;
    if (this.ctx.machine.alarms.has(AlarmType.NOSPACE, memberId)) return;
    this.ctx.logger.warn('database space exceeded; raising the NOSPACE alarm', { sizeBytes, quotaBytes: this.quotaBytes });
    const alarm = { action: AlarmAction.ACTIVATE, memberID: memberId.toString(), alarm: AlarmType.NOSPACE };
    // As etcd, the refusal stands whether or not the alarm could be committed now (no leader...).
    await this.ctx.node.propose({ alarm }, signal).catch((error: unknown) => this.ctx.logger.warn('could not raise the NOSPACE alarm', { error }));
  }
}

type UnaryHandler = grpc.handleUnaryCall<unknown, unknown>;

/**
 * etcd's quotaKVServer and quotaLeaseServer: Put, Txn (KV) and LeaseGrant (Lease) pass the
 * quota before their handler runs. Other methods are untouched.
 */
export function withQuota(service: grpc.UntypedServiceImplementation, guard: QuotaGuard): grpc.UntypedServiceImplementation {
  const costs: Record<string, (request: unknown) => number> = {
    Put: (r) => putCost(r as WirePutRequest),
    Txn: (r) => txnCost(r as WireTxnRequest),
    LeaseGrant: () => LEASE_OVERHEAD_BYTES,
  };
  const guarded: grpc.UntypedServiceImplementation = { ...service };
  for (const [method, cost] of Object.entries(costs)) {
    const handler = service[method];
    if (handler !== undefined) guarded[method] = guardUnary(handler as UnaryHandler, cost, guard);
  }
  return guarded;
}

function guardUnary(handler: UnaryHandler, cost: (request: unknown) => number, guard: QuotaGuard): UnaryHandler {
  return (call, callback) => {
    // A client that requires a leader hears "no leader" first, as from etcd's interceptor.
    if (!guard.enabled || (requiresLeader(call) && !guard.hasLeader())) {
      handler(call, callback);
      return;
    }
    const signal = callSignal(call);
    Promise.resolve()
      .then(() => guard.admit(cost(call.request), signal))
      .then(
        () => handler(call, callback),
        (error: unknown) => callback(toServiceError(error) as grpc.ServiceError),
      );
  };
}

/** Logs the quota in force at start, as etcd's NewBackendQuota does. */
export function logQuota(logger: Logger, configuredBytes: number, quotaBytes: number, maxSuggestedBytes: number): void {
  if (quotaBytes === Number.POSITIVE_INFINITY) {
    logger.info('disabled backend quota', { quotaSizeBytes: configuredBytes });
    return;
  }
  if (quotaBytes > maxSuggestedBytes) logger.warn('quota exceeds the maximum value', { quotaSizeBytes: quotaBytes, quotaMaximumSizeBytes: maxSuggestedBytes });
  logger.info(configuredBytes === 0 ? 'enabled backend quota with default value' : 'enabled backend quota', { quotaSizeBytes: quotaBytes });
}
