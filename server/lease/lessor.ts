/**
 * The lessor, after etcd's server/lease/lessor.go, without goroutines or timers.
 *
 * Two halves with different rules:
 * - Replicated state (grant, revoke, attach, detach, checkpoint, snapshot/restore) changes only
 *   when the applier applies a committed entry, so it is identical on every member and must be
 *   deterministic: no clock reads there.
 * - Leader-local state (promote, demote, stamp, renew, expiredLeases, dueCheckpoints,
 *   nextExpiryMs) is each lease's deadline and its checkpoint schedule. Expiry is not replicated:
 *   only the leader watches deadlines, and it expires a lease by proposing a revoke that goes
 *   through the log. Followers keep no deadlines at all.
 *
 * Expiry judges the client, not the member's backlog: a keep-alive counts from the moment it
 * ARRIVED (stamp(), called before anything makes it wait), and the moment a lease expires is the
 * moment expiredLeases() hands it out for its revoke; until then a keep-alive still renews it,
 * after that none does.
 *
 * Checkpoints cost what matters, not what exists: a lease is scheduled for a checkpoint only
 * while a failover could otherwise extend its life by more than the checkpoint interval (its
 * remaining TTL is longer than the interval), one interval after its countdown was last known to
 * the log; dueCheckpoints() hands out at most a bounded batch, earliest first. Every operation
 * here is O(log n) per lease touched, except promote/demote (O(n), once per leader change).
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
  /**
   * --lease-checkpoint-interval: how stale the log's view of a lease's countdown may grow before the
   * leader records it again. Undefined: no checkpoints are scheduled (a member that never fails over).
   */
  readonly checkpointIntervalMs?: number;
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

/** One lease's remaining TTL for a checkpoint proposal. */
export interface LeaseCheckpoint {
  readonly id: bigint;
  readonly remainingTtlSeconds: number;
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
  /**
   * Attached keys by their latin1 image (one char per byte); absent while there are none. Most
   * leases are sessions with a key or two, or none: an empty Map with its hash table costs about
   * 300 bytes, a third of a lease's memory at 200,000 leases.
   */
  keys: Map<string, Bytes> | undefined;
  /** Leader only: when the lease expires on the injected clock. Undefined on followers. */
  expiryMs: number | undefined;
  /**
   * Leader only: the deadline without the grace a new leader adds at promote. Checkpoints
   * record remaining TTL from this, so repeated failovers cannot stack their graces.
   */
  baseExpiryMs?: number;
  /** Leader only: a checkpoint with this lease's remaining TTL was handed out and may not have applied yet. */
  checkpointPending?: boolean;
  /** Leader only: expiredLeases() handed it out for its revoke; from then on no keep-alive renews it. */
  revoking?: boolean;
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
  /** Leader only: when each lease that needs one is due for a checkpoint (see scheduleCheckpoint). */
  private readonly checkpointsDue = new LeaseQueue();
  private primary = false;
  private readonly clock: Clock;
  private readonly minTtlSeconds: number;
  private readonly expiredRetryMs: number;
  private readonly checkpointIntervalMs: number | undefined;

  constructor(options: LessorOptions) {
    assert(Number.isSafeInteger(options.minTtlSeconds) && options.minTtlSeconds >= 1, 'minTtlSeconds must be an integer >= 1');
    const retryMs = options.expiredRetryMs ?? DEFAULT_EXPIRED_RETRY_MS;
    assert(Number.isFinite(retryMs) && retryMs > 0, 'expiredRetryMs must be > 0');
    const interval = options.checkpointIntervalMs;
    assert(interval === undefined || (Number.isFinite(interval) && interval > 0), 'checkpointIntervalMs must be > 0');
    this.clock = options.clock;
    this.minTtlSeconds = options.minTtlSeconds;
    this.expiredRetryMs = retryMs;
    this.checkpointIntervalMs = interval;
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
        keys: undefined,
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

  /** Leader only: how many leases are scheduled for a checkpoint (the others do not need one). */
  get scheduledCheckpoints(): number {
    return this.checkpointsDue.size;
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
    const lease: LeaseState = { id, ttlSeconds: granted, remainingTtlSeconds: 0, keys: undefined, expiryMs: undefined };
    this.leasesById.set(id, lease);
    if (this.primary) this.refresh(lease, this.clock.now());
    return { id, ttlSeconds: granted };
  }

  /** Removes the lease; returns its keys (sorted) so the applier deletes them in the same revision. */
  revoke(id: bigint): Bytes[] {
    const lease = this.leasesById.get(id);
    if (lease === undefined) throw new GavelError('LeaseNotFound');
    this.leasesById.delete(id);
    this.deadlines.remove(id);
    this.checkpointsDue.remove(id);
    return sortedKeys(lease);
  }

  exists(id: bigint): boolean {
    return this.leasesById.has(id);
  }

  attach(id: bigint, key: Bytes): void {
    const lease = this.leasesById.get(id);
    if (lease === undefined) throw new GavelError('LeaseNotFound');
    (lease.keys ??= new Map()).set(keyString(key), Uint8Array.from(key));
  }

  /** Lenient on purpose: the applier detaches while deleting a revoked lease's keys. */
  detach(id: bigint, key: Bytes): void {
    const lease = this.leasesById.get(id);
    if (lease?.keys === undefined) return;
    lease.keys.delete(keyString(key));
    if (lease.keys.size === 0) lease.keys = undefined;
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
   * one was recorded), plus extraMs, so no lease expires because of the failover itself. O(n),
   * once per leader change.
   */
  promote(extraMs = 0): void {
    assert(Number.isFinite(extraMs) && extraMs >= 0, `promote extraMs ${extraMs}`);
    this.primary = true;
    this.deadlines.clear();
    this.checkpointsDue.clear();
    const now = this.clock.now();
    for (const lease of this.leasesById.values()) {
      const seconds = lease.remainingTtlSeconds > 0 ? lease.remainingTtlSeconds : lease.ttlSeconds;
      lease.revoking = false;
      lease.baseExpiryMs = now + seconds * 1000;
      this.schedule(lease, lease.baseExpiryMs + extraMs);
      // The log's view of this countdown is exact as of now; it goes stale from here.
      this.scheduleCheckpoint(lease, now);
    }
  }

  /** Losing leadership: stop expiring and checkpointing; followers keep no deadlines. */
  demote(): void {
    this.primary = false;
    this.deadlines.clear();
    this.checkpointsDue.clear();
    for (const lease of this.leasesById.values()) {
      lease.expiryMs = undefined;
      lease.baseExpiryMs = undefined;
      lease.revoking = false;
    }
  }

  /**
   * A keep-alive for `id` has just arrived: it counts from now. Call it BEFORE anything makes the
   * keep-alive wait (the applied index, the answer's turn), and pass the returned arrival time to
   * renew(): however long the answer takes, the member's backlog cannot expire the lease. A lease
   * not known here yet (its grant still being applied) or already handed out for its revoke is
   * left alone; renew() gives the answer.
   */
  stamp(id: bigint): number {
    const now = this.clock.now();
    const lease = this.leasesById.get(id);
    if (this.primary && lease !== undefined && lease.revoking !== true) this.refresh(lease, now);
    return now;
  }

  /**
   * The answer to a keep-alive that arrived at arrivedMs (see stamp): deadline = arrival + TTL;
   * returns the granted TTL (etcd's keep-alive answer). A lease handed out for its revoke is "not
   * found": etcd makes such a renew wait for the revoke and then answers not-found; we answer at
   * once. A lease whose deadline passed but which is not handed out yet is still renewed: expiry
   * happens at the hand-out, and only the leader's own delay put the two apart.
   * A renewed lease whose checkpoint recorded a shorter remaining TTL needs that checkpoint
   * cleared (the caller proposes checkpoint(id, 0), as etcd does): see takeStaleCheckpoint.
   */
  renew(id: bigint, arrivedMs = this.clock.now()): number {
    assert(Number.isFinite(arrivedMs), `renew arrivedMs ${arrivedMs}`);
    if (!this.primary) throw new GavelError('NotLeader');
    const lease = this.leasesById.get(id);
    if (lease === undefined || lease.revoking === true) throw new GavelError('LeaseNotFound');
    this.refresh(lease, arrivedMs);
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
   * revokes. From here on the lease is expired: keep-alives answer not-found. A handed-out lease
   * is not handed out again before expiredRetryMs has passed (the revoke may still be in flight;
   * if it got lost, it is retried then).
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
      this.mustGet(next.id).revoking = true;
      this.checkpointsDue.remove(next.id);
      this.deadlines.upsert(next.id, now + this.expiredRetryMs);
    }
    return expired;
  }

  /**
   * Up to `limit` due checkpoints, earliest first: each lease's remaining TTL in whole seconds
   * (rounded down, at least 1), counted from its deadline without the promote grace, for one
   * checkpoint proposal. A new leader starts from these instead of the full TTL. Looks at no more
   * than `limit` leases, so a round costs the same with ten leases or a million. A caller that
   * runs in rounds passes its round length as aheadMs, so no checkpoint is made late.
   */
  dueCheckpoints(limit: number, aheadMs = 0): LeaseCheckpoint[] {
    assert(Number.isSafeInteger(limit) && limit >= 0, `dueCheckpoints limit ${limit}`);
    assert(Number.isFinite(aheadMs) && aheadMs >= 0, `dueCheckpoints aheadMs ${aheadMs}`);
    if (!this.primary) return [];
    const now = this.clock.now();
    const due: LeaseCheckpoint[] = [];
    for (let looked = 0; looked < limit; looked++) {
      const next = this.checkpointsDue.peek();
      if (next === undefined || next.deadlineMs > now + aheadMs) break;
      const lease = this.mustGet(next.id);
      const base = lease.baseExpiryMs;
      assert(base !== undefined && lease.revoking !== true, `lease ${lease.id} scheduled for a checkpoint without a live deadline`);
      if (base <= now) {
        // Expired, its revoke not yet handed out: a checkpoint would tell the next leader nothing useful.
        this.checkpointsDue.remove(lease.id);
        continue;
      }
      // Rounded down, so the log never overstates what is left: a new leader's grace (at least
      // one second) covers the rounding, so no lease expires early.
      due.push({ id: lease.id, remainingTtlSeconds: Math.max(1, Math.floor((base - now) / 1000)) });
      lease.checkpointPending = true;
      this.scheduleCheckpoint(lease, now);
    }
    return due;
  }

  /** The earliest deadline on the clock (absolute ms), for scheduling the next expiredLeases(); undefined if none or not leader. */
  nextExpiryMs(): number | undefined {
    return this.primary ? this.deadlines.peek()?.deadlineMs : undefined;
  }

  /** When the earliest checkpoint is due (absolute ms); undefined if none or not leader. */
  nextCheckpointMs(): number | undefined {
    return this.primary ? this.checkpointsDue.peek()?.deadlineMs : undefined;
  }

  // ---- helpers ----

  /** A keep-alive (or the grant) at arrivedMs: the deadline moves to arrival + TTL, never back. */
  private refresh(lease: LeaseState, arrivedMs: number): void {
    const base = arrivedMs + lease.ttlSeconds * 1000;
    // Answers may complete out of order: an earlier arrival never shortens a later one's deadline.
    if (lease.baseExpiryMs !== undefined && base < lease.baseExpiryMs) return;
    lease.baseExpiryMs = base;
    this.schedule(lease, base);
    this.scheduleCheckpoint(lease, arrivedMs);
  }

  private schedule(lease: LeaseState, expiryMs: number): void {
    lease.expiryMs = expiryMs;
    this.deadlines.upsert(lease.id, expiryMs);
  }

  /**
   * At knownMs the log's view of this lease's countdown (its checkpoint, or its full TTL after a
   * grant, a renew or a promote) was exact; from then on a failover would extend the lease by the
   * time since. A checkpoint is due one interval later, and only if the lease then still has more
   * than that left to live: a shorter one cannot be extended by more than an interval anyway.
   */
  private scheduleCheckpoint(lease: LeaseState, knownMs: number): void {
    const interval = this.checkpointIntervalMs;
    const base = lease.baseExpiryMs;
    if (interval === undefined || base === undefined) return;
    if (base - knownMs > interval) this.checkpointsDue.upsert(lease.id, knownMs + interval);
    else this.checkpointsDue.remove(lease.id);
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
  return lease.keys === undefined ? [] : [...lease.keys.values()].sort((a, b) => Buffer.compare(a, b));
}

function compareBigint(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
