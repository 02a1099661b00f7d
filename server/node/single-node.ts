/**
 * A one-member node: the log belongs to this member alone, so an entry is committed as soon as
 * it is durable. It keeps the shape of the Raft shell (propose → persist log → commit → apply →
 * resolve the waiter) so the Raft-driven node can replace it without touching the API layer.
 *
 * Group commit: every proposal that arrives in one event-loop turn goes into one log batch with
 * sync=true. The state batch (MVCC + lease changes + applied index) follows without sync: the
 * synced log is what makes an acknowledged write durable, and level's write-ahead log keeps the
 * state batch ordered before any later synced batch.
 */
import { randomBytes } from 'node:crypto';
import { GavelError } from '../errors.js';
import type { Logger } from '../log.js';
import { encodeRequest, type Mutation } from '../apply/request.js';
import type { ApplyResult, StateMachine } from '../apply/state-machine.js';
import { metaOps, u64Key, type BatchOp, type Storage } from '../storage/layout.js';
import type { Consensus, MemberInfo, NodeStatus } from './consensus.js';
import { deferred, type Deferred } from './deferred.js';

export interface SingleNodeOptions {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly self: MemberInfo;
  readonly maxRequestBytes: number;
  readonly maxPendingProposals: number;
  /** Applied entries between log compactions. */
  readonly snapshotCount: number;
  readonly logger: Logger;
}

interface Pending {
  readonly id: bigint;
  readonly data: Uint8Array;
}

export class SingleNode implements Consensus {
  private readonly waiters = new Map<bigint, Deferred<ApplyResult>>();
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private nextRequestId: bigint;
  private lastIndex: number;
  private commitIndex: number;
  private compactedThrough: number;
  private closed = false;
  private readonly barrierWaiters: { index: number; deferred: Deferred<void> }[] = [];

  private constructor(
    private readonly storage: Storage,
    private readonly machine: StateMachine,
    private readonly options: SingleNodeOptions,
    lastIndex: number,
    firstIndex: number,
  ) {
    this.lastIndex = lastIndex;
    this.commitIndex = lastIndex;
    this.compactedThrough = firstIndex - 1;
    // Request ids only need to be unique among this member's waiting proposals; a random start
    // keeps ids of a restarted member from matching entries replayed from before the restart.
    this.nextRequestId = randomBytes(8).readBigUInt64BE() >> 16n;
  }

  /** Opens the node and replays committed log entries the state machine has not applied yet. */
  static async open(storage: Storage, machine: StateMachine, options: SingleNodeOptions): Promise<SingleNode> {
    let first = 0;
    let last = 0;
    const replay: { index: number; data: Uint8Array }[] = [];
    for await (const [key, value] of storage.space('log').iterator()) {
      const index = Number(new DataView(key.buffer, key.byteOffset, 8).getBigUint64(0));
      if (first === 0) first = index;
      last = index;
      if (index > machine.appliedIndex) replay.push({ index, data: value });
    }
    // Entries before the first one in the log were compacted after their state became durable.
    const lastIndex = Math.max(last, machine.appliedIndex);
    const node = new SingleNode(storage, machine, options, lastIndex, first === 0 ? lastIndex + 1 : first);
    if (replay.length > 0) {
      const ops: BatchOp[] = [];
      for (const entry of replay) ops.push(...(machine.apply(entry.index, entry.data)?.ops ?? []));
      ops.push(metaOps.appliedIndex(machine.appliedIndex));
      await storage.write(ops, true);
      options.logger.info('replayed log entries', { count: replay.length, appliedIndex: machine.appliedIndex });
    }
    return node;
  }

  propose(mutation: Mutation, signal?: AbortSignal): Promise<ApplyResult> {
    if (this.closed) return Promise.reject(new GavelError('Stopped'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.waiters.size >= this.options.maxPendingProposals) return Promise.reject(new GavelError('TooManyRequests'));
    const id = this.nextRequestId++;
    const data = encodeRequest(id, mutation);
    if (data.length > this.options.maxRequestBytes) return Promise.reject(new GavelError('RequestTooLarge'));
    const waiter = deferred<ApplyResult>();
    this.waiters.set(id, waiter);
    this.queue.push({ id, data });
    this.scheduleFlush();
    // An abort stops the wait, not the write: once queued the entry may still commit (etcd's
    // behaviour too), so the caller must treat the outcome as unknown.
    return waiter.promise;
  }

  readBarrier(): Promise<void> {
    if (this.closed) return Promise.reject(new GavelError('Stopped'));
    // Every acknowledged write is applied before it is acknowledged, so the barrier is the
    // commit index at the time of the call.
    if (this.machine.appliedIndex >= this.commitIndex) return Promise.resolve();
    const waiter = deferred<void>();
    this.barrierWaiters.push({ index: this.commitIndex, deferred: waiter });
    return waiter.promise;
  }

  status(): NodeStatus {
    return {
      memberId: this.options.memberId,
      clusterId: this.options.clusterId,
      leader: this.options.memberId,
      term: 1,
      commitIndex: this.commitIndex,
      appliedIndex: this.machine.appliedIndex,
      isLearner: false,
    };
  }

  members(): readonly MemberInfo[] {
    return [this.options.self];
  }

  isLeader(): boolean {
    return !this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.flushing) await this.flushing;
    for (const waiter of this.waiters.values()) waiter.reject(new GavelError('Stopped'));
    this.waiters.clear();
  }

  private scheduleFlush(): void {
    if (this.flushing) return;
    this.flushing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flushLoop());
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0) await this.flushOnce();
    } finally {
      this.flushing = undefined;
      if (this.queue.length > 0 && !this.closed) this.scheduleFlush();
    }
  }

  private async flushOnce(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    const entries = batch.map((pending, i) => ({ index: this.lastIndex + 1 + i, pending }));
    this.lastIndex += batch.length;
    // Persist the log BEFORE anything is applied or acknowledged.
    await this.storage.write(
      entries.map(({ index, pending }) => ({ type: 'put', space: 'log', key: u64Key(index), value: pending.data }) as const),
      true,
    );
    this.commitIndex = this.lastIndex;
    const ops: BatchOp[] = [];
    const results: { id: bigint; result: ApplyResult }[] = [];
    for (const { index, pending } of entries) {
      const applied = this.machine.apply(index, pending.data);
      if (applied === undefined) continue;
      ops.push(...applied.ops);
      results.push({ id: applied.requestId, result: applied.result });
    }
    ops.push(metaOps.appliedIndex(this.machine.appliedIndex));
    await this.storage.write(ops, false);
    for (const { id, result } of results) {
      const waiter = this.waiters.get(id);
      if (waiter === undefined) continue;
      this.waiters.delete(id);
      waiter.resolve(result);
    }
    this.releaseBarriers();
    await this.maybeCompactLog();
  }

  private releaseBarriers(): void {
    for (let i = this.barrierWaiters.length - 1; i >= 0; i--) {
      const barrier = this.barrierWaiters[i];
      if (barrier !== undefined && barrier.index <= this.machine.appliedIndex) {
        this.barrierWaiters.splice(i, 1);
        barrier.deferred.resolve();
      }
    }
  }

  /** Drops log entries whose effects are durable in the state spaces. */
  private async maybeCompactLog(): Promise<void> {
    const applied = this.machine.appliedIndex;
    if (applied - this.compactedThrough < this.options.snapshotCount) return;
    // A synced write makes every earlier state batch durable (level's log is sequential).
    await this.storage.write([metaOps.appliedIndex(applied)], true);
    await this.storage.space('log').clear({ lte: u64Key(applied) });
    this.compactedThrough = applied;
    this.options.logger.info('compacted log', { throughIndex: applied });
  }
}
