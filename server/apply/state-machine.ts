/**
 * The replicated state machine: MVCC store + lessor, changed only by applying committed log
 * entries in order. apply() is synchronous and deterministic; it returns the result for the
 * waiting proposer and the level operations that record the change. The caller writes those
 * operations in ONE batch together with the applied index, so a crash either keeps both or
 * neither and replaying the log from the stored applied index is idempotent.
 */
import { GavelError, assertNever, assert } from '../errors.js';
import { MvccStore } from '../mvcc/store.js';
import { changesToBatch } from '../mvcc/backend.js';
import type { MvccEvent, PutResponse, DeleteRangeResponse, TxnResponse } from '../mvcc/types.js';
import { Lessor } from '../lease/lessor.js';
import { deleteRangeFromWire, putFromWire, toBigInt, toNumber, txnFromWire } from '../api/convert.js';
import { decodeRequest } from './request.js';
import type { WireInternalRequest } from '../api/wire.js';
import { leaseOps, type BatchOp } from '../storage/layout.js';

export type ApplyResult =
  | { readonly type: 'put'; readonly revision: number; readonly response: PutResponse }
  | { readonly type: 'deleteRange'; readonly revision: number; readonly response: DeleteRangeResponse }
  | { readonly type: 'txn'; readonly revision: number; readonly response: TxnResponse }
  | { readonly type: 'compaction'; readonly revision: number }
  | { readonly type: 'leaseGrant'; readonly revision: number; readonly id: bigint; readonly ttlSeconds: number }
  | { readonly type: 'leaseRevoke'; readonly revision: number }
  | { readonly type: 'leaseCheckpoint'; readonly revision: number }
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

export class StateMachine {
  private listeners: EventListener[] = [];

  constructor(
    readonly store: MvccStore,
    readonly lessor: Lessor,
    private appliedIndexValue: number,
  ) {}

  get appliedIndex(): number {
    return this.appliedIndexValue;
  }

  onEvents(listener: EventListener): void {
    this.listeners.push(listener);
  }

  /** Applies the entry at `index`; entries at or below the applied index are skipped (replay). */
  apply(index: number, data: Uint8Array): AppliedEntry | undefined {
    if (index <= this.appliedIndexValue) return undefined;
    assert(index === this.appliedIndexValue + 1, `apply out of order: ${index} after ${this.appliedIndexValue}`);
    this.appliedIndexValue = index;
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

  private applyRequest(request: WireInternalRequest): Omit<AppliedEntry, 'requestId'> {
    const leaseExists = (id: bigint): boolean => this.lessor.exists(id);
    const kind = request.request;
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
        return { result: { type: 'compaction', revision: w.revision }, ops: changesToBatch(w.changes), revision: w.revision, events: [] };
      }
      case 'lease_grant': {
        const grant = required(request.lease_grant);
        const granted = this.lessor.grant(toBigInt(grant.ID), toNumber(grant.TTL));
        const revision = this.store.currentRevision;
        return {
          result: { type: 'leaseGrant', revision, id: granted.id, ttlSeconds: granted.ttlSeconds },
          ops: leaseOps.put(granted.id, granted.ttlSeconds),
          revision,
          events: [],
        };
      }
      case 'lease_revoke': {
        const id = toBigInt(required(request.lease_revoke).ID);
        const keys = this.lessor.revoke(id);
        const w = keys.length > 0 ? this.store.deleteKeys(keys) : undefined;
        const revision = w?.revision ?? this.store.currentRevision;
        const ops = [...(w ? changesToBatch(w.changes) : []), ...leaseOps.del(id)];
        return { result: { type: 'leaseRevoke', revision }, ops, revision, events: w?.events ?? [] };
      }
      case 'lease_checkpoint': {
        const ops: BatchOp[] = [];
        for (const checkpoint of required(request.lease_checkpoint).checkpoints ?? []) {
          const id = toBigInt(checkpoint.ID);
          if (!this.lessor.exists(id)) continue;
          this.lessor.checkpoint(id, toNumber(checkpoint.remaining_TTL));
        }
        const revision = this.store.currentRevision;
        return { result: { type: 'leaseCheckpoint', revision }, ops, revision, events: [] };
      }
      case undefined:
        throw new GavelError('InvalidArgument', 'empty internal request');
      default:
        return assertNever(kind);
    }
  }

  /** Keeps the lessor's key attachments in step with the KV: a key belongs to the lease it was last put with. */
  private trackLeases(events: readonly MvccEvent[]): void {
    for (const event of events) {
      const previous = event.prevKv?.lease ?? 0n;
      const next = event.type === 'put' ? event.kv.lease : 0n;
      if (previous !== 0n && previous !== next && this.lessor.exists(previous)) this.lessor.detach(previous, event.kv.key);
      if (next !== 0n && next !== previous) this.lessor.attach(next, event.kv.key);
    }
  }
}

function required<T>(value: T | null | undefined): T {
  if (value === null || value === undefined) throw new GavelError('InvalidArgument', 'malformed internal request');
  return value;
}
