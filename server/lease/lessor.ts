/**
 * The lessor, after etcd's server/lease/lessor.go, without goroutines or timers.
 *
 * Two halves with different rules:
 * - Replicated state (grant, revoke, attach, detach, checkpoint, snapshot/restore) changes only
 *   when the applier applies a committed entry, so it is identical on every member and must be
 *   deterministic: no clock reads there.
 * - Leader-local state (promote, demote, renew, expiredLeases, nextExpiryMs) is each lease's
 *   deadline. Expiry is not replicated: only the leader watches deadlines, and it expires a lease
 *   by proposing a revoke that goes through the log. Followers keep no deadlines at all.
 */
import type { Clock } from '../clock.js';
import { assert, GavelError } from '../errors.js';
import type { Bytes } from '../mvcc/types.js';
import { LeaseQueue } from './lease-queue.js';
import { isValidLeaseId, NO_LEASE } from './lease-id.js';

export { isValidLeaseId, MAX_LEASE_ID, NO_LEASE, randomLeaseId } from './lease-id.js';

/** etcd's MaxLeaseTTL: a larger TTL is refused with "etcdserver: too large lease TTL". */
export const MAX_LEASE_TTL_SECONDS = 9_000_000_000;

/** etcd's defaultExpiredleaseRetryInterval: how long a handed-out expired lease waits before it is handed out again. */
export const DEFAULT_EXPIRED_RETRY_MS = 3_000;

export interface LessorOptions {
  readonly clock: Clock;
  /** Granted TTLs below this are raised to it (see minLeaseTtlSeconds). */
  readonly minTtlSeconds: number;
  readonly expiredRetryMs?: number;
}

export interface GrantedLease {
  readonly id: bigint;
  /** The TTL actually granted (after raising it to the minimum). */
  readonly ttlSeconds: number;
}

export interface LeaseTimeToLive {
  /** Seconds left, truncated; on a member that is not the leader, the granted TTL. */
  readonly ttlSeconds: number;
  readonly grantedTtlSeconds: number;
  /** Attached keys, sorted byte-wise. */
  readonly keys: Bytes[];
}

export interface LeaseSnapshotEntry {
  readonly id: bigint;
  readonly ttlSeconds: number;
  /** The last checkpointed remaining TTL; 0 = none. */
  readonly remainingTtlSeconds: number;
}

interface LeaseState {
  readonly id: bigint;
  readonly ttlSeconds: number;
  remainingTtlSeconds: number;
  /** Attached keys by their latin1 image (one char per byte). */
  readonly keys: Map<string, Bytes>;
  /** Leader only: when the lease expires on the injected clock. Undefined on followers. */
  expiryMs: number | undefined;
  /**
   * Leader only: the deadline without the grace a new leader adds at promote. Checkpoints
   * record remaining TTL from this, so repeated failovers cannot stack their graces.
   */
  baseExpiryMs?: number;
  /** Leader only: a checkpoint with this lease's remaining TTL was handed out and may not have applied yet. */
  checkpointPending?: boolean;
}

/**
 * etcd's minimum lease TTL: 1.5 election timeouts, rounded up to whole seconds, so that a lease
 * cannot expire during one leader election. etcd counts in ticks: ElectionTicks =
 * electionMs / heartbeatMs (integer division), minTTL = (3 * ElectionTicks / 2) * heartbeat.
 */
export function minLeaseTtlSeconds(electionTimeoutMs: number, heartbeatIntervalMs: number): number {
  assert(heartbeatIntervalMs > 0 && electionTimeoutMs >= heartbeatIntervalMs, 'election timeout must be >= heartbeat interval > 0');
  const electionTicks = Math.floor(electionTimeoutMs / heartbeatIntervalMs);
  const minTtlMs = Math.floor((3 * electionTicks) / 2) * heartbeatIntervalMs;
  return Math.ceil(minTtlMs / 1000);
}

export class Lessor {
  private readonly leasesById = new Map<bigint, LeaseState>();
  /** Leader only: the next time each lease must be looked at (its expiry, or a retry time once handed out). */
  private readonly deadlines = new LeaseQueue();
  private primary = false;
  private readonly clock: Clock;
  private readonly minTtlSeconds: number;
  private readonly expiredRetryMs: number;

  constructor(options: LessorOptions) {
    assert(Number.isSafeInteger(options.minTtlSeconds) && options.minTtlSeconds >= 1, 'minTtlSeconds must be an integer >= 1');
    const retryMs = options.expiredRetryMs ?? DEFAULT_EXPIRED_RETRY_MS;
    assert(Number.isFinite(retryMs) && retryMs > 0, 'expiredRetryMs must be > 0');
    this.clock = options.clock;
    this.minTtlSeconds = options.minTtlSeconds;
    this.expiredRetryMs = retryMs;
  }

  /** Rebuilds the replicated state from snapshot(); attached keys come from the KV store's leased keys. */
  static restore(entries: readonly LeaseSnapshotEntry[], options: LessorOptions): Lessor {
    const lessor = new Lessor(options);
    for (const entry of entries) {
      assert(isValidLeaseId(entry.id), `restored lease id ${entry.id} is not a positive int64`);
      assert(!lessor.leasesById.has(entry.id), `restored lease ${entry.id} twice`);
      assert(Number.isSafeInteger(entry.ttlSeconds) && entry.ttlSeconds >= 1, `restored lease ${entry.id} has ttl ${entry.ttlSeconds}`);
      assert(Number.isSafeInteger(entry.remainingTtlSeconds) && entry.remainingTtlSeconds >= 0, `restored lease ${entry.id} has remaining ttl ${entry.remainingTtlSeconds}`);
      lessor.leasesById.set(entry.id, {
        id: entry.id,
        ttlSeconds: entry.ttlSeconds,
        remainingTtlSeconds: entry.remainingTtlSeconds,
        keys: new Map(),
        expiryMs: undefined,
      });
    }
    return lessor;
  }

  get isPrimary(): boolean {
    return this.primary;
  }

  get size(): number {
    return this.leasesById.size;
  }

  // ---- replicated state: called by the applier only ----

  grant(id: bigint, ttlSeconds: number): GrantedLease {
    // etcd: granting NoLease is "lease not found"; the API layer picks a random id for 0 before proposing.
    if (id === NO_LEASE) throw new GavelError('LeaseNotFound');
    if (!isValidLeaseId(id)) throw new GavelError('InvalidArgument', `etcdserver: lease id ${id} is not a positive int64`);
    assert(Number.isSafeInteger(ttlSeconds), `lease TTL ${ttlSeconds} is not a safe integer`);
    if (ttlSeconds > MAX_LEASE_TTL_SECONDS) throw new GavelError('LeaseTtlTooLarge');
    if (this.leasesById.has(id)) throw new GavelError('LeaseExists');
    const granted = Math.max(ttlSeconds, this.minTtlSeconds);
    const lease: LeaseState = { id, ttlSeconds: granted, remainingTtlSeconds: 0, keys: new Map(), expiryMs: undefined };
    this.leasesById.set(id, lease);
    if (this.primary) {
      this.schedule(lease, this.clock.now() + granted * 1000);
      lease.baseExpiryMs = lease.expiryMs;
    }
    return { id, ttlSeconds: granted };
  }

  /** Removes the lease; returns its keys (sorted) so the applier deletes them in the same revision. */
  revoke(id: bigint): Bytes[] {
    const lease = this.leasesById.get(id);
    if (lease === undefined) throw new GavelError('LeaseNotFound');
    this.leasesById.delete(id);
    this.deadlines.remove(id);
    return sortedKeys(lease);
  }

  exists(id: bigint): boolean {
    return this.leasesById.has(id);
  }

  attach(id: bigint, key: Bytes): void {
    const lease = this.leasesById.get(id);
    if (lease === undefined) throw new GavelError('LeaseNotFound');
    lease.keys.set(keyString(key), Uint8Array.from(key));
  }

  /** Lenient on purpose: the applier detaches while deleting a revoked lease's keys. */
  detach(id: bigint, key: Bytes): void {
    this.leasesById.get(id)?.keys.delete(keyString(key));
  }

  /** All lease ids, ascending. */
  leases(): bigint[] {
    return [...this.leasesById.keys()].sort(compareBigint);
  }

  /** etcd's lease checkpoint: persist the remaining TTL so a new leader does not restart a long TTL from full. */
  checkpoint(id: bigint, remainingTtlSeconds: number): void {
    assert(Number.isSafeInteger(remainingTtlSeconds) && remainingTtlSeconds >= 0, `checkpoint remaining ttl ${remainingTtlSeconds}`);
    const lease = this.leasesById.get(id);
    // etcd ignores a checkpoint for a lease that is gone (revoked between proposal and apply).
    if (lease !== undefined) lease.remainingTtlSeconds = remainingTtlSeconds;
  }

  snapshot(): LeaseSnapshotEntry[] {
    return this.leases().map((id) => {
      const lease = this.mustGet(id);
      return { id, ttlSeconds: lease.ttlSeconds, remainingTtlSeconds: lease.remainingTtlSeconds };
    });
  }

  timeToLive(id: bigint): LeaseTimeToLive | undefined {
    const lease = this.leasesById.get(id);
    if (lease === undefined) return undefined;
    return { ttlSeconds: this.remainingSeconds(lease), grantedTtlSeconds: lease.ttlSeconds, keys: sortedKeys(lease) };
  }

  // ---- leader-local state ----

  /**
   * Becoming leader: every lease gets a full fresh deadline (its checkpointed remaining TTL if
   * one was recorded), plus extraMs, so no lease expires because of the failover itself.
   */
  promote(extraMs = 0): void {
    assert(Number.isFinite(extraMs) && extraMs >= 0, `promote extraMs ${extraMs}`);
    this.primary = true;
    this.deadlines.clear();
    const now = this.clock.now();
    for (const lease of this.leasesById.values()) {
      const seconds = lease.remainingTtlSeconds > 0 ? lease.remainingTtlSeconds : lease.ttlSeconds;
      this.schedule(lease, now + seconds * 1000 + extraMs);
      lease.baseExpiryMs = now + seconds * 1000;
    }
  }

  /**
   * Leader only: each lease's remaining TTL in whole seconds (rounded down, at least 1), counted
   * from its deadline without the promote grace, for a checkpoint proposal. A new leader starts
   * from these instead of the full TTL, which bounds a lease's life under repeated failovers.
   */
  checkpoints(): { id: bigint; remainingTtlSeconds: number }[] {
    if (!this.primary) return [];
    const now = this.clock.now();
    const result: { id: bigint; remainingTtlSeconds: number }[] = [];
    for (const lease of this.leasesById.values()) {
      const base = lease.baseExpiryMs ?? lease.expiryMs;
      if (base === undefined) continue;
      // Rounded down, so every checkpoint after any elapsed time lowers the value: a new leader's
      // grace (at least one second) covers the rounding, so no lease expires early.
      result.push({ id: lease.id, remainingTtlSeconds: Math.max(1, Math.floor((base - now) / 1000)) });
      lease.checkpointPending = true;
    }
    return result;
  }

  /** Losing leadership: stop expiring; followers keep no deadlines. */
  demote(): void {
    this.primary = false;
    this.deadlines.clear();
    for (const lease of this.leasesById.values()) lease.expiryMs = undefined;
  }

  /**
   * A keep-alive on the leader: deadline = now + TTL; returns the granted TTL (etcd's keep-alive
   * answer). A lease whose deadline already passed is "not found": etcd makes such a renew wait
   * for the revoke and then answers not-found; we answer at once.
   * A renewed lease whose checkpoint recorded a shorter remaining TTL needs that checkpoint
   * cleared (the caller proposes checkpoint(id, 0), as etcd does): see checkpointNeedsClearing.
   */
  renew(id: bigint): number {
    if (!this.primary) throw new GavelError('NotLeader');
    const lease = this.leasesById.get(id);
    if (lease === undefined) throw new GavelError('LeaseNotFound');
    const now = this.clock.now();
    if (lease.expiryMs !== undefined && lease.expiryMs <= now) throw new GavelError('LeaseNotFound');
    this.schedule(lease, now + lease.ttlSeconds * 1000);
    lease.baseExpiryMs = now + lease.ttlSeconds * 1000;
    return lease.ttlSeconds;
  }

  /**
   * Whether a lease carries a checkpointed remaining TTL that a renew made stale. Reported once:
   * the leader forgets it locally until the clearing checkpoint commits (at most two checkpoint
   * entries per lease per interval, as etcd).
   */
  takeStaleCheckpoint(id: bigint): boolean {
    const lease = this.leasesById.get(id);
    // A checkpoint still in flight counts too: it was computed before this renew and would
    // otherwise apply after it, leaving a stale remaining TTL for the next leader. The clear is
    // proposed after that checkpoint, so the log applies them in that order.
    if (lease === undefined || (lease.remainingTtlSeconds === 0 && lease.checkpointPending !== true)) return false;
    lease.remainingTtlSeconds = 0;
    lease.checkpointPending = false;
    return true;
  }

  /**
   * Up to `limit` leases whose deadline has passed, earliest first, for the leader to propose
   * revokes. A handed-out lease is not handed out again before expiredRetryMs has passed (the
   * revoke may still be in flight; if it got lost, it is retried then).
   */
  expiredLeases(limit: number): bigint[] {
    assert(Number.isSafeInteger(limit) && limit >= 0, `expiredLeases limit ${limit}`);
    if (!this.primary) return [];
    const now = this.clock.now();
    const expired: bigint[] = [];
    while (expired.length < limit) {
      const next = this.deadlines.peek();
      if (next === undefined || next.deadlineMs > now) break;
      expired.push(next.id);
      this.deadlines.upsert(next.id, now + this.expiredRetryMs);
    }
    return expired;
  }

  /** The earliest deadline on the clock (absolute ms), for scheduling the next expiredLeases(); undefined if none or not leader. */
  nextExpiryMs(): number | undefined {
    return this.primary ? this.deadlines.peek()?.deadlineMs : undefined;
  }

  // ---- helpers ----

  private schedule(lease: LeaseState, expiryMs: number): void {
    lease.expiryMs = expiryMs;
    this.deadlines.upsert(lease.id, expiryMs);
  }

  private remainingSeconds(lease: LeaseState): number {
    if (!this.primary || lease.expiryMs === undefined) return lease.ttlSeconds;
    // Truncated toward zero like etcd's int64(Remaining().Seconds()); clamped at 0 (expired, revoke pending).
    return Math.max(0, Math.trunc((lease.expiryMs - this.clock.now()) / 1000));
  }

  private mustGet(id: bigint): LeaseState {
    const lease = this.leasesById.get(id);
    assert(lease !== undefined, `lease ${id} missing`);
    return lease;
  }
}

function keyString(key: Bytes): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

function sortedKeys(lease: LeaseState): Bytes[] {
  return [...lease.keys.values()].sort((a, b) => Buffer.compare(a, b));
}

function compareBigint(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
