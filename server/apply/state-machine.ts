/**
 * The replicated state machine: MVCC store, lessor and cluster membership, changed only by
 * applying committed log entries in order. apply() is synchronous and deterministic; it returns
 * the result for the waiting proposer and the level operations that record the change. The
 * caller writes those operations in ONE batch together with the applied index, so a crash keeps
 * both or neither and replaying the log from the stored applied index is idempotent.
 */
import { GavelError, assertNever, assert } from '../errors.js';
import type { MvccStore } from '../mvcc/store.js';
import { changesToBatch } from '../mvcc/backend.js';
import type { MvccEvent, PutResponse, DeleteRangeResponse, TxnResponse } from '../mvcc/types.js';
import type { Lessor } from '../lease/lessor.js';
import { deleteRangeFromWire, putFromWire, toBigInt, toNumber, txnFromWire } from '../api/convert.js';
import { decodeRequest } from './request.js';
import type { WireInternalRequest } from '../api/wire.js';
import { leaseOps, type BatchOp } from '../storage/layout.js';
import type { Membership } from '../cluster/membership.js';
import { decodeAddContext } from '../cluster/membership.js';
import type { ConfChange } from '../raft/index.js';
import type { Coordinator } from '../coordinator/coordinator.js';
import { applyCoordinator, type CoordinatorResult } from '../coordinator/apply.js';
import { applyAuth, authorizeRequest, type AuthState } from './auth.js';
import type { AlarmStore } from '../alarm/alarms.js';
import { applyAlarm, refuseWhenCapped, type AlarmResult } from '../alarm/apply.js';

export type ApplyResult =
  | { readonly type: 'put'; readonly revision: number; readonly response: PutResponse }
  | { readonly type: 'deleteRange'; readonly revision: number; readonly response: DeleteRangeResponse }
  | { readonly type: 'txn'; readonly revision: number; readonly response: TxnResponse }
  | { readonly type: 'compaction'; readonly revision: number }
  | { readonly type: 'leaseGrant'; readonly revision: number; readonly id: bigint; readonly ttlSeconds: number }
  | { readonly type: 'leaseRevoke'; readonly revision: number }
  | { readonly type: 'leaseCheckpoint'; readonly revision: number }
  | { readonly type: 'member'; readonly revision: number }
  | CoordinatorResult
  | (AlarmResult & { readonly revision: number })
  /** An auth mutation; `index` is the entry's log index (it names an Authenticate's token). */
  | { readonly type: 'auth'; readonly revision: number; readonly index: number }
  | { readonly type: 'error'; readonly revision: number; readonly error: GavelError };

export interface AppliedEntry {
  readonly requestId: bigint;
  readonly result: ApplyResult;
  readonly ops: readonly BatchOp[];
  readonly revision: number;
  readonly events: readonly MvccEvent[];
}

/** Called after each applied write revision (watch hub). */
export type EventListener = (revision: number, events: readonly MvccEvent[]) => void;

/** Called once a compaction's entry is durable in level: the compactor may delete what it dropped. */
export type CompactionListener = (revision: number) => void;

/** Called when coordinator locks changed: their keys, or 'all' after a snapshot replaced the state. */
export type CoordinatorListener = (changed: ReadonlySet<string> | 'all') => void;

/** The parts a snapshot replaces at once. */
export interface MachineState {
  readonly store: MvccStore;
  readonly lessor: Lessor;
  readonly membership: Membership;
  readonly coordinator: Coordinator;
  readonly auth: AuthState;
  /** Raised alarms (server/alarm/): NOSPACE refuses the writes that add data. */
  readonly alarms: AlarmStore;
  readonly appliedIndex: number;
}

/** A point in the apply stream that a level batch makes durable (StateMachine.durableMark). */
export interface DurableMark {
  readonly index: number;
  readonly revision: number;
  readonly compactions: readonly number[];
  readonly store: MvccStore;
}

export class StateMachine {
  private listeners: EventListener[] = [];
  private coordinatorListeners: CoordinatorListener[] = [];
  private compactionListeners: CompactionListener[] = [];
  /** Compactions applied since the last markDurable(). */
  private compactionsApplied: number[] = [];
  /** Callers of whenDurable, by the store revision they wait for. */
  private durableWaiters: { revision: number; resolve: () => void }[] = [];
  /** Callers of whenIndexDurable, by the applied index they wait for. */
  private indexWaiters: { index: number; resolve: () => void }[] = [];
  /** The applied index level holds (with the state it records): moves on markDurable() and restore(). */
  private durableIndex: number;
  private state: MachineState;
  /** The applied index moves on every entry; the rest of the state only with a snapshot. */
  private applied: number;

  constructor(state: MachineState) {
    this.state = state;
    this.applied = state.appliedIndex;
    this.durableIndex = state.appliedIndex;
  }

  get store(): MvccStore {
    return this.state.store;
  }

  get lessor(): Lessor {
    return this.state.lessor;
  }

  get membership(): Membership {
    return this.state.membership;
  }

  get coordinator(): Coordinator {
    return this.state.coordinator;
  }

  get auth(): AuthState {
    return this.state.auth;
  }

  get alarms(): AlarmStore {
    return this.state.alarms;
  }

  get appliedIndex(): number {
    return this.applied;
  }

  onEvents(listener: EventListener): void {
    this.listeners.push(listener);
  }

  onCoordinatorChange(listener: CoordinatorListener): void {
    this.coordinatorListeners.push(listener);
  }

  onCompaction(listener: CompactionListener): void {
    this.compactionListeners.push(listener);
  }

  /**
   * What level will hold once every op apply() returned so far is written: cut it when the batch
   * holding those ops is cut, and pass it to markDurable() when that batch has landed. Entries
   * applied in between belong to the next batch and the next mark.
   */
  durableMark(): DurableMark {
    const mark = { index: this.applied, revision: this.store.currentRevision, compactions: this.compactionsApplied, store: this.store };
    this.compactionsApplied = [];
    return mark;
  }

  /**
   * The batch cut with `mark` (default: everything applied so far) is in level: the store may
   * stop pinning those versions in memory, and compactions applied meanwhile may start deleting.
   */
  markDurable(mark: DurableMark = this.durableMark()): void {
    // A snapshot replaced the state while the batch was being written: it speaks for the old one.
    if (mark.store !== this.store) return;
    this.store.markDurable(mark.revision);
    this.durableIndex = Math.max(this.durableIndex, mark.index);
    this.releaseDurable();
    for (const revision of mark.compactions) for (const listener of this.compactionListeners) listener(revision);
  }

  /** The applied index level holds (with the state it records). */
  get durableAppliedIndex(): number {
    return this.durableIndex;
  }

  /** Resolves once every store version up to revision is in level (readers of level wait for it). */
  whenDurable(revision: number): Promise<void> {
    if (this.store.durableRevision >= revision) return Promise.resolve();
    return new Promise((resolve) => this.durableWaiters.push({ revision, resolve }));
  }

  /**
   * Resolves once level holds the state at applied index `index` or later (every batch up to it
   * was written): a level snapshot taken then is at least that new (backups).
   */
  whenIndexDurable(index: number): Promise<void> {
    if (this.durableIndex >= index) return Promise.resolve();
    return new Promise((resolve) => this.indexWaiters.push({ index, resolve }));
  }

  private releaseDurable(): void {
    const indexDue = this.indexWaiters.filter((waiter) => waiter.index <= this.durableIndex);
    if (indexDue.length > 0) {
      this.indexWaiters = this.indexWaiters.filter((waiter) => waiter.index > this.durableIndex);
      for (const waiter of indexDue) waiter.resolve();
    }
    const durable = this.store.durableRevision;
    if (this.durableWaiters.every((waiter) => waiter.revision > durable)) return;
    const due = this.durableWaiters.filter((waiter) => waiter.revision <= durable);
    this.durableWaiters = this.durableWaiters.filter((waiter) => waiter.revision > durable);
    for (const waiter of due) waiter.resolve();
  }

  /** Replaces the whole state with one restored from a snapshot at a later index. */
  restore(state: MachineState): void {
    assert(state.appliedIndex > this.applied, `snapshot ${state.appliedIndex} is not newer than applied ${this.applied}`);
    // The coordinator's leader-local clock state goes with the old object: carry the role over.
    if (this.state.coordinator.isPrimary) state.coordinator.promote();
    this.state = state;
    this.applied = state.appliedIndex;
    // A snapshot install wrote the whole state to level before the state machine takes it.
    this.durableIndex = state.appliedIndex;
    this.compactionsApplied = [];
    this.releaseDurable();
    for (const listener of this.coordinatorListeners) listener('all');
  }

  private advanceTo(index: number): void {
    assert(index === this.applied + 1, `apply out of order: ${index} after ${this.applied}`);
    this.applied = index;
  }

  /** Applies the normal entry at `index`; entries at or below the applied index are skipped (replay). */
  apply(index: number, data: Uint8Array): AppliedEntry | undefined {
    if (index <= this.applied) return undefined;
    this.advanceTo(index);
    if (data.length === 0) return undefined; // an empty entry (a new leader's no-op)
    const request = decodeRequest(data);
    const requestId = toBigInt(request.id);
    let applied: Omit<AppliedEntry, 'requestId'>;
    try {
      applied = this.applyRequest(request);
    } catch (error) {
      // Deterministic rejections (lease not found, compacted, ...) are answers, not failures:
      // every member reaches the same one and writes nothing.
      if (!(error instanceof GavelError)) throw error;
      applied = { result: { type: 'error', revision: this.store.currentRevision, error }, ops: [], revision: this.store.currentRevision, events: [] };
    }
    if (applied.events.length > 0) {
      for (const listener of this.listeners) listener(applied.revision, applied.events);
    }
    return { requestId, ...applied };
  }

  /** Applies a committed membership change; returns the ops that record the new registry. */
  applyConfChange(index: number, change: ConfChange): readonly BatchOp[] {
    if (index <= this.applied) return [];
    this.advanceTo(index);
    switch (change.type) {
      case 'addNode':
        this.membership.add(change.nodeId, decodeAddContext(change.context), false);
        break;
      case 'addLearner':
        this.membership.add(change.nodeId, decodeAddContext(change.context), true);
        break;
      case 'removeNode':
        this.membership.remove(change.nodeId);
        break;
      default:
        assertNever(change.type);
    }
    return this.membership.ops();
  }

  private applyRequest(request: WireInternalRequest): Omit<AppliedEntry, 'requestId'> {
    const leaseExists = (id: bigint): boolean => this.lessor.exists(id);
    // While NOSPACE is raised, writes that add data are refused first, as by etcd's capped applier.
    refuseWhenCapped(this.alarms, request);
    // A client's request is checked here, against the auth state as of this entry (server/apply/auth.ts).
    authorizeRequest(this.auth.store, request, (id) => this.lessor.timeToLive(id)?.keys ?? []);
    const kind = request.request;
    const revision = this.store.currentRevision;
    switch (kind) {
      case 'put': {
        const w = this.store.put(putFromWire(required(request.put)), leaseExists);
        this.trackLeases(w.events);
        return { result: { type: 'put', revision: w.revision, response: w.response }, ops: changesToBatch(w.changes), revision: w.revision, events: w.events };
      }
      case 'delete_range': {
        const w = this.store.deleteRange(deleteRangeFromWire(required(request.delete_range)));
        this.trackLeases(w.events);
        return { result: { type: 'deleteRange', revision: w.revision, response: w.response }, ops: changesToBatch(w.changes), revision: w.revision, events: w.events };
      }
      case 'txn': {
        const w = this.store.txn(txnFromWire(required(request.txn)), leaseExists);
        this.trackLeases(w.events);
        return { result: { type: 'txn', revision: w.revision, response: w.response }, ops: changesToBatch(w.changes), revision: w.revision, events: w.events };
      }
      case 'compaction': {
        const w = this.store.compact(toNumber(required(request.compaction).revision));
        this.compactionsApplied.push(this.store.compactedRevision);
        return { result: { type: 'compaction', revision: w.revision }, ops: changesToBatch(w.changes), revision: w.revision, events: [] };
      }
      case 'lease_grant': {
        const grant = required(request.lease_grant);
        const granted = this.lessor.grant(toBigInt(grant.ID), toNumber(grant.TTL));
        return { result: { type: 'leaseGrant', revision, id: granted.id, ttlSeconds: granted.ttlSeconds }, ops: leaseOps.put(granted.id, granted.ttlSeconds), revision, events: [] };
      }
      case 'lease_revoke':
        return this.applyRevoke(toBigInt(required(request.lease_revoke).ID), false);
      case 'lease_expire':
        return this.applyRevoke(toBigInt(required(request.lease_expire).ID), true);
      case 'coordinator': {
        const applied = applyCoordinator(this.coordinator, this.appliedIndex, required(request.coordinator), leaseExists);
        this.notifyCoordinator(applied.changed);
        return { result: { ...applied.result, revision }, ops: applied.ops, revision, events: [] };
      }
      case 'lease_checkpoint': {
        const ops: BatchOp[] = [];
        for (const checkpoint of required(request.lease_checkpoint).checkpoints ?? []) {
          const id = toBigInt(checkpoint.ID);
          const remaining = toNumber(checkpoint.remaining_TTL);
          if (!this.lessor.exists(id) || remaining < 0) continue;
          this.lessor.checkpoint(id, remaining);
          const info = this.lessor.timeToLive(id);
          if (info !== undefined) for (const op of leaseOps.put(id, info.grantedTtlSeconds, remaining)) ops.push(op);
        }
        return { result: { type: 'leaseCheckpoint', revision }, ops, revision, events: [] };
      }
      case 'member_attributes': {
        const attributes = required(request.member_attributes);
        this.membership.setAttributes(toBigInt(attributes.id), attributes.name, attributes.client_urls ?? []);
        return { result: { type: 'member', revision }, ops: this.membership.ops(), revision, events: [] };
      }
      case 'member_peer_urls': {
        const update = required(request.member_peer_urls);
        this.membership.setPeerUrls(toBigInt(update.id), update.peer_urls ?? []);
        return { result: { type: 'member', revision }, ops: this.membership.ops(), revision, events: [] };
      }
      case 'alarm': {
        const applied = applyAlarm(this.alarms, required(request.alarm));
        return { result: { ...applied.result, revision }, ops: applied.ops, revision, events: [] };
      }
      case 'auth_enable':
      case 'auth_disable':
      case 'authenticate':
      case 'auth_user_add':
      case 'auth_user_delete':
      case 'auth_user_change_password':
      case 'auth_user_grant_role':
      case 'auth_user_revoke_role':
      case 'auth_role_add':
      case 'auth_role_delete':
      case 'auth_role_grant_permission':
      case 'auth_role_revoke_permission':
        return { result: { type: 'auth', revision, index: this.appliedIndex }, ops: applyAuth(this.auth, request, this.appliedIndex), revision, events: [] };
      case undefined:
        throw new GavelError('InvalidArgument', 'empty internal request');
      default:
        return assertNever(kind);
    }
  }

  /**
   * Revoking deletes every attached key in one revision, then the lease itself, and frees the
   * lease's coordinator places in the same step. `expired`: the leader saw it run out (lock-delays start).
   */
  private applyRevoke(id: bigint, expired: boolean): Omit<AppliedEntry, 'requestId'> {
    const keys = this.lessor.revoke(id);
    const freed = this.coordinator.removeLease(this.appliedIndex, id, expired);
    this.notifyCoordinator(freed.changed);
    const w = keys.length > 0 ? this.store.deleteKeys(keys) : undefined;
    const revision = w?.revision ?? this.store.currentRevision;
    const ops = [...(w ? changesToBatch(w.changes) : []), ...leaseOps.del(id), ...freed.ops];
    return { result: { type: 'leaseRevoke', revision }, ops, revision, events: w?.events ?? [] };
  }

  private notifyCoordinator(changed: ReadonlySet<string>): void {
    if (changed.size === 0) return;
    for (const listener of this.coordinatorListeners) listener(changed);
  }

  /** Keeps the lessor's key attachments in step with the KV: a key belongs to the lease it was last put with. */
  private trackLeases(events: readonly MvccEvent[]): void {
    for (const event of events) {
      const previous = event.prevKv?.lease ?? 0n;
      const next = event.type === 'put' ? event.kv.lease : 0n;
      if (previous !== 0n && previous !== next) this.lessor.detach(previous, event.kv.key);
      if (next !== 0n && next !== previous) this.lessor.attach(next, event.kv.key);
    }
  }
}

function required<T>(value: T | null | undefined): T {
  if (value === null || value === undefined) throw new GavelError('InvalidArgument', 'malformed internal request');
  return value;
}
