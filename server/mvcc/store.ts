/**
 * etcd's MVCC model as a pure in-memory core: no I/O, no clock. Every write creates at most ONE
 * main revision (its changes get sub revisions 0..n-1) and returns the events to publish and the
 * changes to persist; a write that changes nothing creates no revision. The whole history since
 * the last compaction is held here; level (backend.ts) is the durable copy.
 *
 * Per key the versions are kept in revision order; a tombstone ends a generation (etcd's keyIndex,
 * flattened: a generation is a run of versions closed by a tombstone). Keys are kept in byte-wise
 * order (sorted-key-list.ts) for range scans, plus a Map for single-key lookups.
 */
import { assert, assertNever, GavelError } from '../errors.js';
import { encodeKeyValue, encodeRevisionKey } from './codec.js';
import { compareKeyValue } from './compare.js';
import { crc32 } from './crc32.js';
import { compareBytes, copyBytes, EMPTY_BYTES, isOpenRangeEnd, keyInRange, keyString } from './key-range.js';
import { finishRange, needsAllKeys } from './range-query.js';
import { SortedKeyList } from './sorted-key-list.js';
import type { StoreChange } from './store-change.js';
import {
  CompareTarget,
  type Bytes,
  type Compare,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type KeyRange,
  type KeyValue,
  type MvccEvent,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type RequestOp,
  type ResponseOp,
  type Revision,
  type TxnRequest,
  type TxnResponse,
} from './types.js';

export type { StoreChange } from './store-change.js';

export interface WriteResult<R> {
  readonly response: R;
  /** The new main revision, or the current one when nothing was written. */
  readonly revision: number;
  /** In sub-revision order; prevKv is the key's previous live version. */
  readonly events: MvccEvent[];
  /** What to persist, in the same level batch as the applied index. */
  readonly changes: StoreChange[];
}

/** One stored version as the backend holds it (input of MvccStore.restore). */
export interface PersistedVersion {
  readonly revision: Revision;
  readonly kv: KeyValue;
  readonly tombstone: boolean;
}

export interface StoreMeta {
  readonly compactedRevision: number;
  /** The current revision recorded at the last compaction; 0 when unknown. */
  readonly currentRevision: number;
}

export type LeaseExists = (leaseId: bigint) => boolean;

interface VersionRecord {
  readonly revision: Revision;
  readonly kv: KeyValue;
  readonly tombstone: boolean;
  /** The key's previous live version; cleared on versions at or below the compacted revision. */
  prevKv: KeyValue | undefined;
}

interface KeyHistory {
  readonly key: Bytes;
  /** In revision order. Empty only transiently (a rolled-back or compacted key is removed). */
  readonly versions: VersionRecord[];
}

/** A write in progress: its versions are already visible in the key index (read-your-writes). */
interface PendingWrite {
  readonly main: number;
  readonly records: VersionRecord[];
  /** Keys this write added to the index, removed again on rollback. */
  readonly createdKeys: KeyHistory[];
}

/** Which branch each txn took, in pre-order over nested txns (etcd's txnPath). */
interface TxnPath {
  readonly taken: boolean[];
  next: number;
}

/** Rough per-version bookkeeping cost beyond key and value bytes, for sizeBytes. */
const VERSION_OVERHEAD_BYTES = 64;

/** What a compare sees for a missing key (etcd compares an all-zero KeyValue). */
const ABSENT_KV: KeyValue = {
  key: EMPTY_BYTES,
  createRevision: 0,
  modRevision: 0,
  version: 0,
  value: EMPTY_BYTES,
  lease: 0n,
};

export class MvccStore {
  #currentRevision = 1;
  #compactedRevision = 0;
  #keys = new SortedKeyList<KeyHistory>();
  readonly #byKey = new Map<string, KeyHistory>();
  /** Versions with main > compacted (plus the retained ones AT compacted), in revision order. */
  #history: VersionRecord[] = [];
  #sizeBytes = 0;
  #writing = false;

  /** Rebuild a store from persisted versions in revision order (the backend's key order). */
  static restore(versions: Iterable<PersistedVersion>, meta: StoreMeta): MvccStore {
    const store = new MvccStore();
    store.#restore(versions, meta);
    return store;
  }

  /** 1 for an empty store, as etcd: the first write gets revision 2. */
  get currentRevision(): number {
    return this.#currentRevision;
  }

  get compactedRevision(): number {
    return this.#compactedRevision;
  }

  /** Keys with any version held, live or deleted but not yet compacted (etcd_debugging_mvcc_keys_total). */
  get keyCount(): number {
    return this.#keys.size;
  }

  /** Approximate bytes of history held (Status dbSize). */
  get sizeBytes(): number {
    return this.#sizeBytes;
  }

  /** Keys returned share stored bytes: callers must not mutate them. */
  range(request: RangeRequest): RangeResponse {
    return this.#rangeAt(request, this.#currentRevision);
  }

  /** The newest live version of key, if any. */
  get(key: Bytes): KeyValue | undefined {
    const history = this.#byKey.get(keyString(key));
    return history && latestLive(history);
  }

  put(request: PutRequest, leaseExists: LeaseExists): WriteResult<PutResponse> {
    this.#checkPut(request, leaseExists);
    return this.#write((write) => this.#applyPut(write, request));
  }

  deleteRange(request: DeleteRangeRequest): WriteResult<DeleteRangeResponse> {
    return this.#write((write) => this.#applyDeleteRange(write, request));
  }

  /**
   * As etcd: every compare (nested ones too) is evaluated against the state at txn start, then the
   * chosen branch is validated against that state, then applied; reads inside see earlier writes.
   * Any error leaves the store unchanged.
   */
  txn(request: TxnRequest, leaseExists: LeaseExists): WriteResult<TxnResponse> {
    const taken = this.#comparePath(request, []);
    this.#checkTxn(request, { taken, next: 0 }, leaseExists);
    return this.#write((write) => this.#applyTxn(write, request, { taken, next: 0 }));
  }

  /** Lease revoke / expiry: delete these keys (sorted, as etcd, so members agree) in one revision. */
  deleteKeys(keys: readonly Bytes[]): WriteResult<{ deleted: number }> {
    const sorted = [...keys].sort(compareBytes);
    return this.#write((write) => {
      let deleted = 0;
      // A repeated key finds its own tombstone and counts once.
      for (const key of sorted) if (this.#stageDelete(write, key)) deleted++;
      return { deleted };
    });
  }

  /**
   * Drop every version not visible at or after revision: per key, keep the newest version
   * <= revision unless it is a tombstone. Does not create a revision.
   */
  compact(revision: number): WriteResult<Record<string, never>> {
    assert(Number.isSafeInteger(revision), `compact revision ${revision} is not a safe integer`);
    assert(!this.#writing, 'compact during a write');
    if (revision <= this.#compactedRevision) {
      throw new GavelError('Compacted', `revision ${revision} is at or below the compacted revision ${this.#compactedRevision}`);
    }
    if (revision > this.#currentRevision) {
      throw new GavelError('FutureRevision', `revision ${revision} is above the current revision ${this.#currentRevision}`);
    }
    const changes: StoreChange[] = [];
    const removedAtRevision = new Set<VersionRecord>();
    let emptied = false;
    for (const history of this.#keys) {
      for (const record of compactVersions(history, revision)) {
        changes.push({ type: 'remove', revision: record.revision, tombstone: record.tombstone });
        this.#sizeBytes -= versionBytes(record);
        if (record.revision.main === revision) removedAtRevision.add(record);
      }
      emptied ||= history.versions.length === 0;
    }
    if (emptied) this.#dropEmptyKeys();
    this.#history = trimHistory(this.#history, revision, removedAtRevision);
    this.#compactedRevision = revision;
    changes.push({ type: 'meta', compactedRevision: revision, currentRevision: this.#currentRevision });
    return { response: {}, revision: this.#currentRevision, events: [], changes };
  }

  /**
   * Every event with fromRevision <= main <= toRevision on a key in range, in (main, sub) order,
   * for watchers catching up. As etcd, a watcher may start AT the compacted revision (it sees the
   * versions retained there, without prevKv); below it throws Compacted. maxEvents is a soft
   * bound: a revision is never split, so the caller resumes at the last event's main + 1.
   */
  eventsInRange(fromRevision: number, toRevision: number, range: KeyRange, maxEvents = Infinity): MvccEvent[] {
    assert(Number.isSafeInteger(fromRevision) && Number.isSafeInteger(toRevision), 'event revisions must be safe integers');
    assert(maxEvents > 0, `maxEvents ${maxEvents} must be positive`);
    if (fromRevision < this.#compactedRevision) {
      throw new GavelError('Compacted', `revision ${fromRevision} is below the compacted revision ${this.#compactedRevision}`);
    }
    const last = Math.min(toRevision, this.#currentRevision);
    const events: MvccEvent[] = [];
    for (let index = firstAtOrAbove(this.#history, fromRevision); index < this.#history.length; index++) {
      const record = this.#history[index]!;
      if (record.revision.main > last) break;
      if (keyInRange(record.kv.key, range)) events.push(toEvent(record));
      const next = this.#history[index + 1];
      if (events.length >= maxEvents && next?.revision.main !== record.revision.main) break;
    }
    return events;
  }

  /** Live keys with a lease, in key order (to rebuild lease attachments at startup). */
  *keysWithLease(): Generator<KeyValue> {
    for (const history of this.#keys) {
      const kv = latestLive(history);
      if (kv !== undefined && kv.lease !== 0n) yield kv;
    }
  }

  /**
   * Maintenance.HashKV: a CRC-32 over every stored version at or below revision (0 = current), in
   * key then revision order. Throws Compacted / FutureRevision like a read at that revision.
   */
  hash(revision = 0): number {
    const hashRevision = this.#readRevision(revision, this.#currentRevision);
    let crc = 0;
    for (const history of this.#keys) {
      for (const record of history.versions) {
        if (record.revision.main > hashRevision) break;
        crc = crc32(encodeRevisionKey(record.revision, record.tombstone), crc);
        crc = crc32(encodeKeyValue(record.kv), crc);
      }
    }
    return crc;
  }

  // ---- reads ----

  #rangeAt(request: RangeRequest, currentRevision: number): RangeResponse {
    const revision = this.#readRevision(request.revision, currentRevision);
    const wanted = needsAllKeys(request) || request.limit <= 0 ? Infinity : request.limit + 1;
    const kvs: KeyValue[] = [];
    let count = 0;
    this.#scan(request, revision, (kv) => {
      count++;
      if (!request.countOnly && kvs.length < wanted) kvs.push(kv);
    });
    return finishRange(request, kvs, count);
  }

  /** etcd's rangeKeys checks: future first, then compacted; the compacted revision itself is readable. */
  #readRevision(requested: number, currentRevision: number): number {
    assert(Number.isSafeInteger(requested), `revision ${requested} is not a safe integer`);
    if (requested > currentRevision) {
      throw new GavelError('FutureRevision', `revision ${requested} is above the current revision ${currentRevision}`);
    }
    const revision = requested <= 0 ? currentRevision : requested;
    if (revision < this.#compactedRevision) {
      throw new GavelError('Compacted', `revision ${revision} is below the compacted revision ${this.#compactedRevision}`);
    }
    return revision;
  }

  /** Visit the versions visible at revision of the keys in range, in ascending key order. */
  #scan(range: KeyRange, revision: number, visit: (kv: KeyValue) => void): void {
    if (range.rangeEnd.byteLength === 0) {
      const history = this.#byKey.get(keyString(range.key));
      const kv = history && visibleAt(history, revision);
      if (kv !== undefined) visit(kv);
      return;
    }
    const open = isOpenRangeEnd(range.rangeEnd);
    this.#keys.forEachFrom(range.key, (history) => {
      if (!open && compareBytes(history.key, range.rangeEnd) >= 0) return false;
      const kv = visibleAt(history, revision);
      if (kv !== undefined) visit(kv);
      return true;
    });
  }

  // ---- txn ----

  #comparePath(request: TxnRequest, taken: boolean[]): boolean[] {
    const succeeded = request.compare.every((compare) => this.#evaluateCompare(compare));
    taken.push(succeeded);
    for (const op of succeeded ? request.success : request.failure) {
      if (op.type === 'txn') this.#comparePath(op.request, taken);
    }
    return taken;
  }

  /** Every key in range must satisfy it; with no key, a zero KeyValue is compared (VALUE: false). */
  #evaluateCompare(compare: Compare): boolean {
    let seen = false;
    let satisfied = true;
    this.#scan(compare, this.#currentRevision, (kv) => {
      seen = true;
      satisfied &&= compareKeyValue(compare, kv);
    });
    if (seen) return satisfied;
    return compare.target !== CompareTarget.Value && compareKeyValue(compare, ABSENT_KV);
  }

  /** etcd's checkTxn: validate the chosen branches against the state at txn start, before any write. */
  #checkTxn(request: TxnRequest, path: TxnPath, leaseExists: LeaseExists): void {
    const succeeded = path.taken[path.next++];
    assert(succeeded !== undefined, 'txn path is shorter than the txn');
    for (const op of succeeded ? request.success : request.failure) {
      switch (op.type) {
        case 'range':
          this.#readRevision(op.request.revision, this.#currentRevision);
          break;
        case 'put':
          this.#checkPut(op.request, leaseExists);
          break;
        case 'deleteRange':
          break;
        case 'txn':
          this.#checkTxn(op.request, path, leaseExists);
          break;
        default:
          assertNever(op);
      }
    }
  }

  #applyTxn(write: PendingWrite, request: TxnRequest, path: TxnPath): TxnResponse {
    const succeeded = path.taken[path.next++];
    assert(succeeded !== undefined, 'txn path is shorter than the txn');
    const responses: ResponseOp[] = [];
    for (const op of succeeded ? request.success : request.failure) responses.push(this.#applyOp(write, op, path));
    return { succeeded, responses };
  }

  #applyOp(write: PendingWrite, op: RequestOp, path: TxnPath): ResponseOp {
    switch (op.type) {
      case 'range': {
        const readRevision = write.records.length > 0 ? write.main : this.#currentRevision;
        return { type: 'range', response: this.#rangeAt(op.request, readRevision) };
      }
      case 'put':
        return { type: 'put', response: this.#applyPut(write, op.request) };
      case 'deleteRange':
        return { type: 'deleteRange', response: this.#applyDeleteRange(write, op.request) };
      case 'txn':
        return { type: 'txn', response: this.#applyTxn(write, op.request, path) };
      default:
        return assertNever(op);
    }
  }

  // ---- writes ----

  /** etcd's checkPut plus the API's ValueProvided/LeaseProvided, against the committed state. */
  #checkPut(request: PutRequest, leaseExists: LeaseExists): void {
    if (request.ignoreValue && request.value.byteLength !== 0) throw new GavelError('ValueProvided');
    if (request.ignoreLease && request.lease !== 0n) throw new GavelError('LeaseProvided');
    if ((request.ignoreValue || request.ignoreLease) && this.get(request.key) === undefined) {
      throw new GavelError('KeyNotFound');
    }
    if (request.lease !== 0n && !leaseExists(request.lease)) throw new GavelError('LeaseNotFound');
  }

  #applyPut(write: PendingWrite, request: PutRequest): PutResponse {
    const previous = this.get(request.key);
    // Checked up front against the txn's start state; re-checked on the state the txn has built.
    if ((request.ignoreValue || request.ignoreLease) && previous === undefined) throw new GavelError('KeyNotFound');
    const value = request.ignoreValue && previous ? previous.value : copyBytes(request.value);
    const lease = request.ignoreLease && previous ? previous.lease : request.lease;
    this.#stagePut(write, request.key, value, lease);
    return request.prevKv && previous ? { prevKv: previous } : {};
  }

  #applyDeleteRange(write: PendingWrite, request: DeleteRangeRequest): DeleteRangeResponse {
    const live: KeyValue[] = [];
    this.#scan(request, Infinity, (kv) => live.push(kv));
    for (const kv of live) {
      const deleted = this.#stageDelete(write, kv.key);
      assert(deleted, 'a live key in range could not be deleted');
    }
    return { deleted: live.length, prevKvs: request.prevKv ? live : [] };
  }

  #stagePut(write: PendingWrite, key: Bytes, value: Bytes, lease: bigint): void {
    const history = this.#historyForWrite(write, key);
    const previous = latestLive(history);
    const kv: KeyValue = {
      key: history.key,
      createRevision: previous ? previous.createRevision : write.main,
      modRevision: write.main,
      version: previous ? previous.version + 1 : 1,
      value,
      lease,
    };
    this.#stage(write, history, kv, false, previous);
  }

  /** Returns false when the key has no live version (nothing to delete). */
  #stageDelete(write: PendingWrite, key: Bytes): boolean {
    const history = this.#byKey.get(keyString(key));
    const previous = history && latestLive(history);
    if (history === undefined || previous === undefined) return false;
    const kv: KeyValue = { key: history.key, createRevision: 0, modRevision: write.main, version: 0, value: EMPTY_BYTES, lease: 0n };
    this.#stage(write, history, kv, true, previous);
    return true;
  }

  #stage(write: PendingWrite, history: KeyHistory, kv: KeyValue, tombstone: boolean, prevKv: KeyValue | undefined): void {
    const record: VersionRecord = { revision: { main: write.main, sub: write.records.length }, kv, tombstone, prevKv };
    const last = history.versions.at(-1);
    assert(last === undefined || compareRevisions(last.revision, record.revision) < 0, 'key versions must increase');
    history.versions.push(record);
    write.records.push(record);
  }

  #historyForWrite(write: PendingWrite, key: Bytes): KeyHistory {
    const existing = this.#byKey.get(keyString(key));
    if (existing !== undefined) return existing;
    const history: KeyHistory = { key: copyBytes(key), versions: [] };
    this.#keys.insert(history);
    this.#byKey.set(keyString(history.key), history);
    write.createdKeys.push(history);
    return history;
  }

  #write<R>(body: (write: PendingWrite) => R): WriteResult<R> {
    assert(!this.#writing, 'MvccStore writes are not reentrant');
    const write: PendingWrite = { main: this.#currentRevision + 1, records: [], createdKeys: [] };
    this.#writing = true;
    let response: R;
    try {
      response = body(write);
    } catch (error) {
      this.#rollback(write);
      throw error;
    } finally {
      this.#writing = false;
    }
    return this.#commit(write, response);
  }

  #commit<R>(write: PendingWrite, response: R): WriteResult<R> {
    if (write.records.length === 0) return { response, revision: this.#currentRevision, events: [], changes: [] };
    assert(write.main === this.#currentRevision + 1, 'a write must take the next main revision');
    const last = this.#history.at(-1);
    assert(last === undefined || last.revision.main < write.main, 'history revisions must increase');
    const events: MvccEvent[] = [];
    const changes: StoreChange[] = [];
    write.records.forEach((record, index) => {
      assert(record.revision.main === write.main && record.revision.sub === index, 'sub revisions must be contiguous');
      this.#history.push(record);
      this.#sizeBytes += versionBytes(record);
      events.push(toEvent(record));
      changes.push({ type: 'put', revision: record.revision, kv: record.kv, tombstone: record.tombstone });
    });
    this.#currentRevision = write.main;
    return { response, revision: write.main, events, changes };
  }

  /** Undo a failed write: pop its versions, then drop the keys it created. */
  #rollback(write: PendingWrite): void {
    for (let index = write.records.length - 1; index >= 0; index--) {
      const record = write.records[index]!;
      const versions = this.#byKey.get(keyString(record.kv.key))?.versions;
      assert(versions?.at(-1) === record, "rollback must find the write's own version last");
      versions.pop();
    }
    for (const history of write.createdKeys) {
      assert(history.versions.length === 0, 'a rolled-back key must have no versions');
      const removed = this.#keys.remove(history.key);
      assert(removed === history, 'a rolled-back key must be in the index');
      this.#byKey.delete(keyString(history.key));
    }
  }

  #dropEmptyKeys(): void {
    this.#keys.retain((history) => {
      if (history.versions.length > 0) return true;
      this.#byKey.delete(keyString(history.key));
      return false;
    });
  }

  /**
   * Every version the store holds, in revision order: what restore() takes back. Used to build
   * a snapshot for a member that is too far behind to catch up from the log.
   */
  persistedVersions(): PersistedVersion[] {
    const versions: PersistedVersion[] = [];
    for (const history of this.#keys) {
      for (const record of history.versions) versions.push({ revision: record.revision, kv: record.kv, tombstone: record.tombstone });
    }
    return versions.sort((a, b) => compareRevisions(a.revision, b.revision));
  }

  /** The store's revision counters, as restore() takes them. */
  get meta(): StoreMeta {
    return { compactedRevision: this.#compactedRevision, currentRevision: this.#currentRevision };
  }

  // ---- restore ----

  #restore(versions: Iterable<PersistedVersion>, meta: StoreMeta): void {
    const compacted = meta.compactedRevision;
    assert(Number.isSafeInteger(compacted) && compacted >= 0, `bad compacted revision ${compacted}`);
    let previous: Revision | undefined;
    const histories: KeyHistory[] = [];
    for (const version of versions) {
      checkRestoredOrder(previous, version.revision, compacted);
      previous = version.revision;
      const history = this.#restoredHistory(version.kv.key, histories);
      const record = restoredRecord(history, version, compacted);
      history.versions.push(record);
      if (record.revision.main >= compacted) this.#history.push(record);
      this.#sizeBytes += versionBytes(record);
    }
    this.#keys = SortedKeyList.fromSorted(histories.sort((a, b) => compareBytes(a.key, b.key)));
    this.#compactedRevision = compacted;
    this.#currentRevision = Math.max(1, compacted, meta.currentRevision, previous?.main ?? 0);
  }

  #restoredHistory(key: Bytes, histories: KeyHistory[]): KeyHistory {
    const existing = this.#byKey.get(keyString(key));
    if (existing !== undefined) return existing;
    const history: KeyHistory = { key, versions: [] };
    histories.push(history); // sorted once at the end of restore
    this.#byKey.set(keyString(key), history);
    return history;
  }
}

// ---- pure helpers ----

function compareRevisions(a: Revision, b: Revision): number {
  return a.main !== b.main ? a.main - b.main : a.sub - b.sub;
}

function latestLive(history: KeyHistory): KeyValue | undefined {
  const last = history.versions.at(-1);
  return last === undefined || last.tombstone ? undefined : last.kv;
}

function visibleAt(history: KeyHistory, revision: number): KeyValue | undefined {
  const versions = history.versions;
  let index = versions.length - 1;
  if (index >= 0 && versions[index]!.revision.main > revision) index = lastAtOrBelow(versions, revision);
  const record = versions[index];
  return record === undefined || record.tombstone ? undefined : record.kv;
}

/** The index of the last version with main <= revision, or -1. */
function lastAtOrBelow(versions: readonly VersionRecord[], revision: number): number {
  let low = 0;
  let high = versions.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (versions[middle]!.revision.main <= revision) low = middle + 1;
    else high = middle;
  }
  return low - 1;
}

/** The index of the first version with main >= revision. */
function firstAtOrAbove(versions: readonly VersionRecord[], revision: number): number {
  return lastAtOrBelow(versions, revision - 1) + 1;
}

/** Remove from one key what compaction at revision drops; returns the removed versions. */
function compactVersions(history: KeyHistory, revision: number): VersionRecord[] {
  const index = lastAtOrBelow(history.versions, revision);
  if (index < 0) return [];
  const kept = history.versions[index]!;
  const removed = history.versions.splice(0, kept.tombstone ? index + 1 : index);
  // The kept version's predecessor is gone: etcd cannot answer its prevKv either.
  if (!kept.tombstone) kept.prevKv = undefined;
  return removed;
}

/** Keep versions with main > revision, plus those AT revision that compaction retained. */
function trimHistory(history: VersionRecord[], revision: number, removedAtRevision: ReadonlySet<VersionRecord>): VersionRecord[] {
  let index = firstAtOrAbove(history, revision);
  const trimmed: VersionRecord[] = [];
  for (; index < history.length && history[index]!.revision.main === revision; index++) {
    const record = history[index]!;
    if (!removedAtRevision.has(record)) trimmed.push(record);
  }
  for (; index < history.length; index++) trimmed.push(history[index]!);
  return trimmed;
}

function toEvent(record: VersionRecord): MvccEvent {
  const type = record.tombstone ? 'delete' : 'put';
  return record.prevKv === undefined ? { type, kv: record.kv } : { type, kv: record.kv, prevKv: record.prevKv };
}

function versionBytes(record: VersionRecord): number {
  return record.kv.key.byteLength + record.kv.value.byteLength + VERSION_OVERHEAD_BYTES;
}

/** Restored versions come in strictly increasing revision order, contiguous above the compacted revision. */
function checkRestoredOrder(previous: Revision | undefined, revision: Revision, compacted: number): void {
  assert(revision.main >= 2 && revision.sub >= 0, `restored revision ${revision.main}.${revision.sub} is impossible`);
  assert(previous === undefined || compareRevisions(previous, revision) < 0, 'restored revisions must increase');
  if (revision.main <= compacted) return; // compaction leaves gaps at and below the compacted revision
  const expectedSub = previous?.main === revision.main ? previous.sub + 1 : 0;
  assert(revision.sub === expectedSub, `restored sub revision ${revision.main}.${revision.sub} is not contiguous`);
}

/** Rebuild one version and check it against the key's previous one (invariants checked after reading). */
function restoredRecord(history: KeyHistory, version: PersistedVersion, compacted: number): VersionRecord {
  const { revision, kv, tombstone } = version;
  assert(kv.modRevision === revision.main, `restored version ${revision.main} has modRevision ${kv.modRevision}`);
  const previous = latestLive(history);
  if (revision.main <= compacted) {
    assert(history.versions.length === 0 && !tombstone, 'compaction keeps at most one live version per key at or below it');
    return { revision, kv, tombstone, prevKv: undefined };
  }
  if (tombstone) {
    assert(previous !== undefined, `restored delete of ${keyString(kv.key)} at ${revision.main} has no live version`);
    assert(kv.createRevision === 0 && kv.version === 0, 'a restored tombstone must carry no generation');
  } else if (previous !== undefined) {
    assert(kv.createRevision === previous.createRevision && kv.version === previous.version + 1, 'restored version breaks its generation');
  } else {
    assert(kv.createRevision === revision.main && kv.version === 1, 'restored create must start a generation');
  }
  return { revision, kv, tombstone, prevKv: previous };
}
