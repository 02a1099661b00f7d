/**
 * The coordinator: a FIFO queue per lock name, holders and waiters bound to leases, fencing
 * tokens, Chubby's lock-delay. Like the lessor it has two halves with different rules:
 *
 * - Replicated state (acquire, release, endDelay, removeLease, restore) changes only when a
 *   committed entry applies, identically on every member: grant decisions are made here, at
 *   apply time, from the entry's index and the state alone. No clock, no randomness, and where
 *   one step touches several locks they are visited in name order.
 * - Leader-local state is when each lock-delay ends on the leader's clock (promote, demote,
 *   dueDelays). A delay ends only when the leader's end-delay entry applies, so time never
 *   enters the replicated state; a new leader gives every running delay its full length again
 *   (a delay may grow through a failover, never shrink).
 *
 * Fencing token of a grant = max(last token + 1, index of the granting entry): the log index in
 * the usual case, strictly increasing per lock and overall, and unique when one entry grants
 * several holders. Each step returns the level operations that record it and the locks it
 * changed (for the streams waiting on them).
 */
import type { Clock } from '../clock.js';
import { assert, GavelError } from '../errors.js';
import type { BatchOp } from '../storage/layout.js';
import { LockQueue, type LockDelay, type LockMode, type Place } from './lock-queue.js';
import { coordinatorOps, type CoordinatorRecords } from './records.js';

export type { LockMode, Place } from './lock-queue.js';

/** Waiters per lock; beyond it an acquire is refused (bound every queue). */
export const MAX_WAITERS_PER_LOCK = 10_000;
/** Locks with holders, waiters or a delay at once. */
export const MAX_LOCKS = 100_000;
/** Chubby bounds lock-delay at one minute. */
export const MAX_LOCK_DELAY_MS = 60_000;
/** A handed-out end-delay is handed out again after this long if it has not applied (lost proposal). */
const END_DELAY_RETRY_MS = 1_000;
/** WAIT and BUSY carry at most this many holders. */
export const HOLDERS_SHOWN = 64;

export interface AcquireInput {
  /** The lock name's bytes as a latin1 string (see lockKey()). */
  readonly key: string;
  readonly lease: bigint;
  readonly owner: string;
  readonly mode: LockMode;
  readonly limit: number;
  readonly lockDelayMs: number;
  /** Only re-attach to an existing place. */
  readonly reattach: boolean;
  /** TryAcquire: grant now or answer busy; never queue. */
  readonly tryOnly: boolean;
}

export interface ReleaseInput {
  readonly key: string;
  readonly lease: bigint;
  readonly owner: string;
  /** Release only the hold with this token; 0 = whatever the place is. */
  readonly token: number;
  /** Remove the place only while it waits (an acquire deadline). */
  readonly waitingOnly: boolean;
}

export type CoordinatorOutcome =
  | { readonly type: 'granted'; readonly token: number }
  | { readonly type: 'waiting'; readonly position: number }
  | { readonly type: 'busy' }
  | { readonly type: 'released'; readonly released: boolean }
  | { readonly type: 'delayEnded'; readonly ended: boolean };

export interface CoordinatorStep {
  readonly ops: BatchOp[];
  /** Keys of the locks whose queue changed. */
  readonly changed: ReadonlySet<string>;
}

export interface HolderView {
  readonly lease: bigint;
  readonly owner: string;
  readonly mode: LockMode;
  readonly token: number;
}

export interface WaiterView {
  readonly lease: bigint;
  readonly owner: string;
  readonly mode: LockMode;
  readonly position: number;
}

/** Where a caller stands: what the Acquire stream reports. */
export type PlaceView =
  | { readonly state: 'holder'; readonly token: number }
  | { readonly state: 'waiter'; readonly position: number; readonly holders: readonly HolderView[]; readonly holderCount: number; readonly delayed: boolean };

export interface LockView {
  readonly holders: readonly HolderView[];
  readonly waiters: readonly WaiterView[];
  readonly limit: number;
  readonly delayed: boolean;
}

/** A lock name's bytes → the key the coordinator uses (latin1: one char per byte, lossless). */
export function lockKey(name: Uint8Array): string {
  return Buffer.from(name.buffer, name.byteOffset, name.byteLength).toString('latin1');
}

/** One step's writes: places and locks touched, the token record when it moved. */
class StepWriter {
  readonly ops: BatchOp[] = [];
  readonly changed = new Set<string>();
}

interface DelayDeadline {
  readonly id: number;
  dueMs: number;
}

export class Coordinator {
  private readonly locks = new Map<string, LockQueue>();
  /** Every place of a lease, with the key of its lock: a lease's end frees them all. */
  private readonly leasePlaces = new Map<bigint, Map<Place, string>>();
  private lastTokenValue = 0;
  /** Leader only: when each running lock-delay ends on the clock. */
  private readonly delayDeadlines = new Map<string, DelayDeadline>();
  private primary = false;

  constructor(private readonly clock: Clock) {}

  static restore(records: CoordinatorRecords, clock: Clock): Coordinator {
    const coordinator = new Coordinator(clock);
    coordinator.lastTokenValue = records.lastToken;
    const byLock = new Map<string, Place[]>();
    for (const { lockKey: key, place } of records.places) {
      const list = byLock.get(key) ?? [];
      list.push(place);
      byLock.set(key, list);
    }
    for (const lock of records.locks) {
      const queue = LockQueue.restore(lock.key, lock.limit, lock.delay, byLock.get(lock.key) ?? []);
      byLock.delete(lock.key);
      assert(!queue.empty, `restored lock ${JSON.stringify(lock.key)} is empty`);
      for (const holder of queue.holders) assert((holder.token ?? 0) <= records.lastToken, 'restored token above the last token');
      coordinator.locks.set(lock.key, queue);
      for (const place of [...queue.holders, ...queue.waiters]) coordinator.indexPlace(place, lock.key);
    }
    assert(byLock.size === 0, 'restored places without their lock record');
    return coordinator;
  }

  // ---- replicated state: called by the applier only ----

  acquire(index: number, input: AcquireInput, leaseExists: (id: bigint) => boolean): CoordinatorStep & { outcome: CoordinatorOutcome } {
    if (!leaseExists(input.lease)) throw new GavelError('LeaseNotFound');
    assert(input.lockDelayMs >= 0 && input.lockDelayMs <= MAX_LOCK_DELAY_MS, `lock-delay ${input.lockDelayMs}`);
    const existing = this.locks.get(input.key);
    const place = existing?.find(input.lease, input.owner);
    // Re-attach: the same (name, lease, owner) asks again; nothing changes.
    if (place !== undefined) {
      const outcome: CoordinatorOutcome = place.token !== undefined ? { type: 'granted', token: place.token } : input.tryOnly ? { type: 'busy' } : { type: 'waiting', position: existing!.position(place) };
      return { outcome, ops: [], changed: new Set() };
    }
    if (input.reattach) throw new GavelError('LockPlaceNotFound');
    if (existing !== undefined && existing.limit !== input.limit) {
      throw new GavelError('LockLimitMismatch', `gavel: lock has limit ${existing.limit}, the request asked for ${input.limit}`);
    }
    if (input.tryOnly && existing !== undefined && (existing.waiters.length > 0 || existing.delay !== undefined || !existing.compatible(input.mode))) {
      return { outcome: { type: 'busy' }, ops: [], changed: new Set() };
    }
    if (existing === undefined && this.locks.size >= MAX_LOCKS) throw new GavelError('LockQueueFull', 'gavel: too many locks');
    if (existing !== undefined && existing.waiters.length >= MAX_WAITERS_PER_LOCK) throw new GavelError('LockQueueFull');
    const lock = existing ?? new LockQueue(input.key, input.limit);
    this.locks.set(input.key, lock);
    const joined: Place = { lease: input.lease, owner: input.owner, mode: input.mode, joinedIndex: index, lockDelayMs: input.lockDelayMs, token: undefined };
    const step = new StepWriter();
    lock.enqueue(joined);
    this.indexPlace(joined, input.key);
    step.ops.push(coordinatorOps.putPlace(input.key, joined));
    this.settle(lock, index, step);
    const outcome: CoordinatorOutcome = joined.token !== undefined ? { type: 'granted', token: joined.token } : { type: 'waiting', position: lock.position(joined) };
    assert(!input.tryOnly || outcome.type === 'granted', 'a try-only acquire queued');
    return { outcome, ...step };
  }

  release(index: number, input: ReleaseInput): CoordinatorStep & { outcome: CoordinatorOutcome } {
    const lock = this.locks.get(input.key);
    const place = lock?.find(input.lease, input.owner);
    const refused = { outcome: { type: 'released', released: false } as CoordinatorOutcome, ops: [], changed: new Set<string>() };
    if (lock === undefined || place === undefined) return refused;
    if (input.waitingOnly && place.token !== undefined) return refused;
    if (input.token !== 0 && place.token !== input.token) return refused;
    const step = new StepWriter();
    this.removePlace(lock, place, step);
    this.settle(lock, index, step);
    return { outcome: { type: 'released', released: true }, ...step };
  }

  /** The leader's end of a lock-delay; a stale one (another delay started since) ends nothing. */
  endDelay(index: number, key: string, delayId: number): CoordinatorStep & { outcome: CoordinatorOutcome } {
    const lock = this.locks.get(key);
    if (lock?.delay?.id !== delayId) return { outcome: { type: 'delayEnded', ended: false }, ops: [], changed: new Set() };
    lock.delay = undefined;
    this.delayDeadlines.delete(key);
    const step = new StepWriter();
    this.settle(lock, index, step);
    return { outcome: { type: 'delayEnded', ended: true }, ...step };
  }

  /**
   * A lease ended: all its places go, in this same step. `expired` (the leader saw it run out,
   * as opposed to a revoke): each lock it held with a lock-delay is delayed.
   */
  removeLease(index: number, lease: bigint, expired: boolean): CoordinatorStep {
    const places = this.leasePlaces.get(lease);
    const step = new StepWriter();
    if (places === undefined) return step;
    const touched = new Map<string, LockQueue>();
    for (const [place, key] of places) {
      const lock = this.locks.get(key);
      assert(lock !== undefined, 'a lease place without its lock');
      const held = place.token !== undefined;
      this.removePlace(lock, place, step);
      if (held && expired && place.lockDelayMs > 0) this.startDelay(lock, index, place.lockDelayMs);
      touched.set(key, lock);
    }
    // Name order, so that the tokens handed out do not depend on the order places were indexed.
    for (const key of [...touched.keys()].sort()) this.settle(touched.get(key)!, index, step);
    return step;
  }

  // ---- reads ----

  get lastToken(): number {
    return this.lastTokenValue;
  }

  place(key: string, lease: bigint, owner: string): PlaceView | undefined {
    const lock = this.locks.get(key);
    const place = lock?.find(lease, owner);
    if (lock === undefined || place === undefined) return undefined;
    if (place.token !== undefined) return { state: 'holder', token: place.token };
    return { state: 'waiter', position: lock.position(place), holders: lock.holders.slice(0, HOLDERS_SHOWN).map(holderView), holderCount: lock.holders.length, delayed: lock.delay !== undefined };
  }

  describe(key: string): LockView {
    const lock = this.locks.get(key);
    if (lock === undefined) return { holders: [], waiters: [], limit: 0, delayed: false };
    return {
      holders: lock.holders.map(holderView),
      waiters: lock.waiters.map((p, i) => ({ lease: p.lease, owner: p.owner, mode: p.mode, position: i + 1 })),
      limit: lock.limit,
      delayed: lock.delay !== undefined,
    };
  }

  /** Chubby's CheckSequencer: does `token` belong to a current holder of the lock? */
  checkSequencer(key: string, token: number): boolean {
    return this.locks.get(key)?.holders.some((h) => h.token === token) ?? false;
  }

  /** For metrics: holders over all locks. */
  holderCount(): number {
    let count = 0;
    for (const lock of this.locks.values()) count += lock.holders.length;
    return count;
  }

  /** For metrics: waiters over all locks. */
  waiterCount(): number {
    let count = 0;
    for (const lock of this.locks.values()) count += lock.waiters.length;
    return count;
  }

  /** For metrics: the waiters of one lock. */
  queueLength(key: string): number {
    return this.locks.get(key)?.waiters.length ?? 0;
  }

  /** For metrics: locks with holders, waiters or a running delay. */
  get lockCount(): number {
    return this.locks.size;
  }

  /** Every record, for a snapshot. */
  records(): BatchOp[] {
    const ops: BatchOp[] = [coordinatorOps.lastToken(this.lastTokenValue)];
    for (const [key, lock] of this.locks) {
      ops.push(coordinatorOps.putLock(key, lock.limit, lock.delay));
      for (const place of [...lock.holders, ...lock.waiters]) ops.push(coordinatorOps.putPlace(key, place));
    }
    return ops;
  }

  // ---- leader-local state ----

  get isPrimary(): boolean {
    return this.primary;
  }

  /** Becoming leader (or starting in central mode): every running delay runs its full length from now. */
  promote(): void {
    this.primary = true;
    this.delayDeadlines.clear();
    const now = this.clock.now();
    for (const [key, lock] of this.locks) if (lock.delay !== undefined) this.delayDeadlines.set(key, { id: lock.delay.id, dueMs: now + lock.delay.delayMs });
  }

  demote(): void {
    this.primary = false;
    this.delayDeadlines.clear();
  }

  /**
   * Up to `limit` delays whose time is up on the leader's clock, for the leader to propose their
   * end. A handed-out one is handed out again only after END_DELAY_RETRY_MS (its entry may be lost).
   */
  dueDelays(limit: number): { key: string; delayId: number }[] {
    if (!this.primary) return [];
    const now = this.clock.now();
    const due: { key: string; delayId: number }[] = [];
    for (const [key, deadline] of this.delayDeadlines) {
      if (due.length >= limit) break;
      if (deadline.dueMs > now) continue;
      due.push({ key, delayId: deadline.id });
      deadline.dueMs = now + END_DELAY_RETRY_MS;
    }
    return due;
  }

  // ---- helpers ----

  /** Grants whoever may be granted now, then records the lock (or forgets an empty one). */
  private settle(lock: LockQueue, index: number, step: StepWriter): void {
    const tokenBefore = this.lastTokenValue;
    for (let head = lock.grantable(); head !== undefined; head = lock.grantable()) {
      const token = Math.max(this.lastTokenValue + 1, index);
      this.lastTokenValue = token;
      step.ops.push(coordinatorOps.putPlace(lock.key, lock.grantHead(token)));
    }
    if (this.lastTokenValue !== tokenBefore) step.ops.push(coordinatorOps.lastToken(this.lastTokenValue));
    if (lock.empty) {
      this.locks.delete(lock.key);
      this.delayDeadlines.delete(lock.key);
      step.ops.push(coordinatorOps.delLock(lock.key));
    } else {
      step.ops.push(coordinatorOps.putLock(lock.key, lock.limit, lock.delay));
    }
    step.changed.add(lock.key);
  }

  private startDelay(lock: LockQueue, index: number, delayMs: number): void {
    // A second expiry while delayed restarts the delay with the longer of the two.
    const delay: LockDelay = { id: index, delayMs: Math.max(delayMs, lock.delay?.delayMs ?? 0) };
    lock.delay = delay;
    if (this.primary) this.delayDeadlines.set(lock.key, { id: delay.id, dueMs: this.clock.now() + delay.delayMs });
  }

  private removePlace(lock: LockQueue, place: Place, step: StepWriter): void {
    lock.remove(place);
    const places = this.leasePlaces.get(place.lease);
    places?.delete(place);
    if (places?.size === 0) this.leasePlaces.delete(place.lease);
    step.ops.push(coordinatorOps.delPlace(lock.key, place));
  }

  private indexPlace(place: Place, key: string): void {
    let places = this.leasePlaces.get(place.lease);
    if (places === undefined) {
      places = new Map();
      this.leasePlaces.set(place.lease, places);
    }
    places.set(place, key);
  }
}

function holderView(place: Place): HolderView {
  assert(place.token !== undefined, 'a holder without a token');
  return { lease: place.lease, owner: place.owner, mode: place.mode, token: place.token };
}
