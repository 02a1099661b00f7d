/**
 * etcd's MVCC model: a pure core over an in-memory key index, with the versions themselves read
 * on demand. Every write creates at most ONE main revision (its changes get sub revisions
 * 0..n-1) and returns the events to publish and the changes to persist; a write that changes
 * nothing creates no revision.
 *
 * What lives where (as etcd: keyIndex in memory, values in bbolt):
 * - memory: the key index (key-index.ts: per key the revisions of its versions, plus the newest
 *   version's generation and lease), a revision-ordered list of the same versions
 *   (revision-log.ts) and a bounded cache of decoded versions (version-cache.ts);
 * - level, 'kv' space: every version's record under its revision key (backend.ts), read through
 *   the synchronous VersionReader. A version written by an applied entry is pinned in the cache
 *   until its level batch has landed (markDurable), because until then level cannot answer it.
 *
 * Without a reader the store is memory-only (unit tests, the central coordinator): nothing is ever
 * marked durable, so every version stays pinned.
 *
 * Compaction drops versions from the index at once (the answer to every read changes there);
 * deleting their records from level is the shell's job, in bounded batches (compactor.ts), using
 * holds() to tell a dropped version from a live one.
 */
import { assert, assertNever, GavelError } from '../errors.js';
import { decodeKeyValue, encodeKeyValue, encodeRevisionKey, storedBytes, type RecordHeader } from './codec.js';
import { compareKeyValue } from './compare.js';
import { crc32 } from './crc32.js';
import { copyBytes, EMPTY_BYTES, isOpenRangeEnd, keyString } from './key-range.js';
import {
  compactEntry, holdsVersion, indexOfRevision, isLive, isTombstoneAt, mainAt, metaOf, newEntry, popVersion, pushVersion,
  revisionAt, setMeta, subCode, versionCount, visibleAt, type EntryMeta, type KeyEntry,
} from './key-index.js';
import { finishRange, needsAllKeys } from './range-query.js';
import { RevisionLog } from './revision-log.js';
import { SortedKeyList } from './sorted-key-list.js';
import type { StoreChange } from './store-change.js';
import { cacheKey, VersionCache } from './version-cache.js';
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
  /** The compaction whose dropped versions are all deleted from level; 0 when unknown. */
  readonly finishedCompactRevision?: number;
}

export type LeaseExists = (leaseId: bigint) => boolean;

/** Reads one stored version record by its revision key (backend.ts encodings); synchronous. */
export interface VersionReader {
  read(revisionKey: Uint8Array): Uint8Array | undefined;
}

export interface StoreOptions {
  /** Where versions not in memory are read from; without one the store keeps everything in memory. */
  readonly reader?: VersionReader;
  /** Bytes of decoded versions cached beyond the pinned ones (default DEFAULT_CACHE_BYTES). */
  readonly cacheBytes?: number;
}

/** Enough for every hot lock and election key of a busy cluster; cold reads go to level. */
export const DEFAULT_CACHE_BYTES = 32 * 1024 * 1024;

/** A version staged by a write in progress: already visible in the index (read-your-writes). */
interface Staged {
  readonly entry: KeyEntry;
  readonly revision: Revision;
  readonly tombstone: boolean;
  readonly kv: KeyValue;
  readonly prevKv: KeyValue | undefined;
  /** The entry's newest generation before this version, put back on rollback. */
  readonly before: EntryMeta;
}

interface PendingWrite {
  readonly main: number;
  readonly staged: Staged[];
  /** Keys this write added to the index, removed again on rollback. */
  readonly createdEntries: KeyEntry[];
}

/** Which branch each txn took, in pre-order over nested txns (etcd's txnPath). */
interface TxnPath {
  readonly taken: boolean[];
  next: number;
}

/** A key range as latin1 bounds: key alone (end undefined, single), or [start, end) / [start, ∞). */
interface StringRange {
  readonly start: string;
  readonly single: boolean;
  /** undefined: no upper bound. */
  readonly end: string | undefined;
}

/** A deleted or absent key's generation (etcd compares an all-zero KeyValue). */
const NO_GENERATION: EntryMeta = { createRevision: 0, version: 0, lease: 0n };

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
  #finishedCompactRevision = 0;
  /** Bumped by every compaction: long walks (hash, snapshot) notice one happened under them. */
  #compactions = 0;
  #keys = new SortedKeyList<KeyEntry>();
  readonly #byKey = new Map<string, KeyEntry>();
  #log = new RevisionLog();
  readonly #cache: VersionCache;
  readonly #reader: VersionReader | undefined;
  #versionCount = 0;
  /** Stored bytes of the versions level holds, dropped ones included until the compactor deletes them. */
  #storedBytes = 0;
  #durableRevision = 0;
  #writing = false;

  constructor(options: StoreOptions = {}) {
    this.#reader = options.reader;
    this.#cache = new VersionCache(options.cacheBytes ?? DEFAULT_CACHE_BYTES);
  }

  /**
   * Rebuild a store from persisted versions in revision order (the backend's key order). Without
   * a reader their values are kept in memory; with one only the index is built.
   */
  static restore(versions: Iterable<PersistedVersion>, meta: StoreMeta, options: StoreOptions = {}): MvccStore {
    const builder = new StoreBuilder(meta, options);
    for (const version of versions) {
      const { kv } = version;
      const header = { key: keyString(kv.key), createRevision: kv.createRevision, modRevision: kv.modRevision, version: kv.version, lease: kv.lease };
      builder.add(version.revision, version.tombstone, header, storedBytes(kv, version.tombstone), options.reader === undefined ? kv : undefined);
    }
    return builder.finish();
  }

  /** 1 for an empty store, as etcd: the first write gets revision 2. */
  get currentRevision(): number {
    return this.#currentRevision;
  }

  get compactedRevision(): number {
    return this.#compactedRevision;
  }

  get finishedCompactRevision(): number {
    return this.#finishedCompactRevision;
  }

  /** Changes whenever a compaction drops versions from the index. */
  get compactionEpoch(): number {
    return this.#compactions;
  }

  /** Keys with any version held, live or deleted but not yet compacted (etcd_debugging_mvcc_keys_total). */
  get keyCount(): number {
    return this.#keys.size;
  }

  /** Versions held by the index. */
  get versionCount(): number {
    return this.#versionCount;
  }

  /** Approximate bytes of history stored (Status dbSizeInUse); shrinks as the compactor deletes. */
  get sizeBytes(): number {
    return this.#storedBytes;
  }

  /** Decoded versions held in memory: pinned (not yet in level) and cached bytes. */
  get cacheStats(): { readonly pinned: number; readonly cachedBytes: number } {
    return { pinned: this.#cache.pinnedCount, cachedBytes: this.#cache.recentBytes };
  }

  /** Keys returned share stored bytes: callers must not mutate them. */
  range(request: RangeRequest): RangeResponse {
    return this.#rangeAt(request, this.#currentRevision);
  }

  /** The newest live version of key, if any. */
  get(key: Bytes): KeyValue | undefined {
    const entry = this.#byKey.get(keyString(key));
    return entry && this.#latest(entry);
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
    const sorted = keys.map(keyString).sort();
    return this.#write((write) => {
      let deleted = 0;
      // A repeated key finds its own tombstone and counts once.
      for (const key of sorted) if (this.#stageDelete(write, key)) deleted++;
      return { deleted };
    });
  }

  /**
   * Drop from the index every version not visible at or after revision: per key, keep the newest
   * version <= revision unless it is a tombstone. Does not create a revision. The records of the
   * dropped versions stay in level until the shell's compactor deletes them (holds() says which).
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
    let emptied = false;
    for (const entry of this.#keys) {
      this.#versionCount -= compactEntry(entry, revision);
      emptied ||= entry.revisions.length === 0;
    }
    if (emptied) this.#dropEmptyKeys();
    this.#log.compact(revision);
    this.#compactedRevision = revision;
    this.#compactions++;
    const changes: StoreChange[] = [{ type: 'meta', compactedRevision: revision, currentRevision: this.#currentRevision }];
    return { response: {}, revision: this.#currentRevision, events: [], changes };
  }

  /** The compactor deleted every dropped version up to revision from level, freeing bytes. */
  compactionFinished(revision: number, freedBytes: number): StoreChange[] {
    assert(revision <= this.#compactedRevision, `compaction ${revision} finished before it was made`);
    this.#storedBytes = Math.max(0, this.#storedBytes - freedBytes);
    this.#finishedCompactRevision = Math.max(this.#finishedCompactRevision, revision);
    return [{ type: 'meta', finishedCompactRevision: this.#finishedCompactRevision }];
  }

  /** Whether the index still holds this version: a stored record it does not hold was compacted away. */
  holds(revision: Revision, tombstone: boolean, key: string): boolean {
    const entry = this.#byKey.get(key);
    return entry !== undefined && holdsVersion(entry, revision, tombstone);
  }

  /** The level batch holding every version up to revision has been written: unpin them. */
  markDurable(revision: number): void {
    this.#durableRevision = Math.max(this.#durableRevision, revision);
    // A memory-only store has nowhere to read an unpinned version back from.
    if (this.#reader !== undefined) this.#cache.markDurable(revision);
  }

  /** Every version up to this revision is in level (markDurable); a fresh or restored store starts there. */
  get durableRevision(): number {
    return this.#durableRevision;
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
    const bounds = stringRange(range);
    const log = this.#log;
    const events: MvccEvent[] = [];
    for (let index = log.firstAtOrAbove(fromRevision); index < log.length; index++) {
      const main = log.mainAt(index);
      if (main > last) break;
      const entry = log.entryAt(index);
      if (inStringRange(entry.key, bounds)) events.push(this.#eventAt(entry, { main, sub: log.subAt(index) }));
      if (events.length >= maxEvents && (index + 1 >= log.length || log.mainAt(index + 1) !== main)) break;
    }
    return events;
  }

  /** Live keys with a lease, in key order (to rebuild lease attachments at startup). */
  *keysWithLease(): Generator<{ readonly key: Bytes; readonly lease: bigint }> {
    for (const entry of this.#keys) {
      if (isLive(entry) && entry.lease !== 0n) yield { key: Buffer.from(entry.key, 'latin1'), lease: entry.lease };
    }
  }

  /**
   * Maintenance.HashKV: a CRC-32 over the stored bytes (revision key, then record) of every version
   * the store holds at or below revision (0 = current), in revision order — level's order, so a
   * member computes the same value by scanning level (backend.ts hashLevel) with hashFilter().
   * Throws Compacted / FutureRevision like a read at that revision. Walks everything in memory:
   * for tests and memory-only stores; members hash from level.
   */
  hash(revision = 0): number {
    const filter = this.hashFilter(revision);
    const held: { revision: Revision; tombstone: boolean; kv: KeyValue }[] = [];
    for (const entry of this.#keys) {
      for (let index = 0; index < versionCount(entry); index++) {
        const version = revisionAt(entry, index);
        if (version.main <= filter.hashRevision) held.push({ revision: version, tombstone: isTombstoneAt(entry, index), kv: this.#read(entry, index) });
      }
    }
    held.sort((a, b) => compareRevisions(a.revision, b.revision));
    let crc = 0;
    for (const { revision: version, tombstone, kv } of held) {
      crc = crc32(encodeRevisionKey(version, tombstone), crc);
      crc = crc32(encodeKeyValue(kv), crc);
    }
    return crc;
  }

  /**
   * What a hash at revision counts, for a scan of level in revision order: stored versions up to
   * hashRevision that the index holds (level may still keep versions a compaction dropped). The
   * answer is only valid while compactionEpoch stays the same.
   */
  hashFilter(revision = 0): { readonly hashRevision: number; readonly epoch: number; counts(version: Revision, tombstone: boolean, key: string): boolean } {
    const hashRevision = this.#readRevision(revision, this.#currentRevision);
    const compacted = this.#compactedRevision;
    return {
      hashRevision,
      epoch: this.#compactions,
      counts: (version, tombstone, key) => version.main <= hashRevision && (version.main > compacted || this.holds(version, tombstone, key)),
    };
  }

  /** The store's revision counters, as restore() takes them. */
  get meta(): StoreMeta {
    return { compactedRevision: this.#compactedRevision, currentRevision: this.#currentRevision, finishedCompactRevision: this.#finishedCompactRevision };
  }

  // ---- reading versions ----

  /** The version at index of entry, from the cache or level. The index holding it means level does. */
  #read(entry: KeyEntry, index: number): KeyValue {
    const revision = revisionAt(entry, index);
    const key = cacheKey(revision.main, revision.sub);
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    assert(this.#reader !== undefined, `version ${revision.main}.${revision.sub} is neither in memory nor readable`);
    const bytes = this.#reader.read(encodeRevisionKey(revision, isTombstoneAt(entry, index)));
    assert(bytes !== undefined, `version ${revision.main}.${revision.sub} of a held key is missing from level`);
    const kv = decodeKeyValue(bytes);
    assert(kv.modRevision === revision.main && keyString(kv.key) === entry.key, `level record ${revision.main}.${revision.sub} does not match the index`);
    this.#cache.remember(key, kv);
    return kv;
  }

  #latest(entry: KeyEntry): KeyValue | undefined {
    return isLive(entry) ? this.#read(entry, versionCount(entry) - 1) : undefined;
  }

  #eventAt(entry: KeyEntry, revision: Revision): MvccEvent {
    const index = indexOfRevision(entry, revision);
    assert(index >= 0, `revision log names version ${revision.main}.${revision.sub} that its key does not hold`);
    const kv = this.#read(entry, index);
    const type = isTombstoneAt(entry, index) ? 'delete' : 'put';
    // The previous version, if the index still holds it and it was live, is the event's prevKv.
    if (index === 0 || isTombstoneAt(entry, index - 1)) return { type, kv };
    return { type, kv, prevKv: this.#read(entry, index - 1) };
  }

  // ---- reads ----

  #rangeAt(request: RangeRequest, currentRevision: number): RangeResponse {
    const revision = this.#readRevision(request.revision, currentRevision);
    const wanted = needsAllKeys(request) || request.limit <= 0 ? Infinity : request.limit + 1;
    const kvs: KeyValue[] = [];
    let count = 0;
    this.#scan(request, revision, (entry, index) => {
      count++;
      if (!request.countOnly && kvs.length < wanted) kvs.push(this.#read(entry, index));
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

  /** Visit the version visible at revision of each key in range (by its index), in ascending key order. */
  #scan(range: KeyRange, revision: number, visit: (entry: KeyEntry, index: number) => void): void {
    const bounds = stringRange(range);
    if (bounds.single) {
      const entry = this.#byKey.get(bounds.start);
      const index = entry === undefined ? -1 : visibleAt(entry, revision);
      if (index >= 0) visit(entry!, index);
      return;
    }
    this.#keys.forEachFrom(bounds.start, (entry) => {
      if (bounds.end !== undefined && entry.key >= bounds.end) return false;
      const index = visibleAt(entry, revision);
      if (index >= 0) visit(entry, index);
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
    this.#scan(compare, this.#currentRevision, (entry, index) => {
      seen = true;
      satisfied &&= compareKeyValue(compare, this.#compareView(entry, index, compare.target));
    });
    if (seen) return satisfied;
    return compare.target !== CompareTarget.Value && compareKeyValue(compare, ABSENT_KV);
  }

  /** The newest version as a compare sees it: only a value compare needs the record itself. */
  #compareView(entry: KeyEntry, index: number, target: CompareTarget): KeyValue {
    if (target === CompareTarget.Value) return this.#read(entry, index);
    return { key: EMPTY_BYTES, createRevision: entry.createRevision, modRevision: mainAt(entry, index), version: entry.version, value: EMPTY_BYTES, lease: entry.lease };
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
        const readRevision = write.staged.length > 0 ? write.main : this.#currentRevision;
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
    if ((request.ignoreValue || request.ignoreLease) && !this.#isLive(keyString(request.key))) {
      throw new GavelError('KeyNotFound');
    }
    if (request.lease !== 0n && !leaseExists(request.lease)) throw new GavelError('LeaseNotFound');
  }

  #isLive(key: string): boolean {
    const entry = this.#byKey.get(key);
    return entry !== undefined && isLive(entry);
  }

  #applyPut(write: PendingWrite, request: PutRequest): PutResponse {
    const entry = this.#entryForWrite(write, keyString(request.key));
    const previous = this.#latest(entry);
    // Checked up front against the txn's start state; re-checked on the state the txn has built.
    if ((request.ignoreValue || request.ignoreLease) && previous === undefined) throw new GavelError('KeyNotFound');
    const value = request.ignoreValue && previous ? previous.value : copyBytes(request.value);
    const lease = request.ignoreLease && previous ? previous.lease : request.lease;
    const kv: KeyValue = {
      key: previous ? previous.key : copyBytes(request.key),
      createRevision: previous ? previous.createRevision : write.main,
      modRevision: write.main,
      version: previous ? previous.version + 1 : 1,
      value,
      lease,
    };
    this.#stage(write, entry, kv, false, previous);
    return request.prevKv && previous ? { prevKv: previous } : {};
  }

  #applyDeleteRange(write: PendingWrite, request: DeleteRangeRequest): DeleteRangeResponse {
    const live: string[] = [];
    this.#scan(request, Infinity, (entry) => live.push(entry.key));
    const prevKvs: KeyValue[] = [];
    for (const key of live) {
      const deleted = this.#stageDelete(write, key);
      assert(deleted !== undefined, 'a live key in range could not be deleted');
      if (request.prevKv) prevKvs.push(deleted);
    }
    return { deleted: live.length, prevKvs };
  }

  /** Returns the deleted version, or undefined when the key has no live version (nothing to delete). */
  #stageDelete(write: PendingWrite, key: string): KeyValue | undefined {
    const entry = this.#byKey.get(key);
    const previous = entry && this.#latest(entry);
    if (entry === undefined || previous === undefined) return undefined;
    const kv: KeyValue = { key: previous.key, createRevision: 0, modRevision: write.main, version: 0, value: EMPTY_BYTES, lease: 0n };
    this.#stage(write, entry, kv, true, previous);
    return previous;
  }

  #stage(write: PendingWrite, entry: KeyEntry, kv: KeyValue, tombstone: boolean, prevKv: KeyValue | undefined): void {
    const revision: Revision = { main: write.main, sub: write.staged.length };
    const before = metaOf(entry);
    // In this order, so that a rollback finds every staged version fully staged.
    pushVersion(entry, revision, tombstone);
    setMeta(entry, tombstone ? NO_GENERATION : { createRevision: kv.createRevision, version: kv.version, lease: kv.lease });
    this.#cache.pin(cacheKey(revision.main, revision.sub), revision.main, kv);
    write.staged.push({ entry, revision, tombstone, kv, prevKv, before });
  }

  #entryForWrite(write: PendingWrite, key: string): KeyEntry {
    const existing = this.#byKey.get(key);
    if (existing !== undefined) return existing;
    const entry = newEntry(key);
    this.#keys.insert(entry);
    this.#byKey.set(key, entry);
    write.createdEntries.push(entry);
    return entry;
  }

  #write<R>(body: (write: PendingWrite) => R): WriteResult<R> {
    assert(!this.#writing, 'MvccStore writes are not reentrant');
    const write: PendingWrite = { main: this.#currentRevision + 1, staged: [], createdEntries: [] };
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
    if (write.staged.length === 0) {
      this.#dropCreated(write);
      return { response, revision: this.#currentRevision, events: [], changes: [] };
    }
    assert(write.main === this.#currentRevision + 1, 'a write must take the next main revision');
    const events: MvccEvent[] = [];
    const changes: StoreChange[] = [];
    write.staged.forEach((staged, index) => {
      const { entry, revision, tombstone, kv, prevKv } = staged;
      assert(revision.main === write.main && revision.sub === index, 'sub revisions must be contiguous');
      this.#log.append(revision.main, subCode(revision.sub, tombstone), entry);
      this.#versionCount++;
      this.#storedBytes += storedBytes(kv, tombstone);
      const type = tombstone ? 'delete' : 'put';
      events.push(prevKv === undefined ? { type, kv } : { type, kv, prevKv });
      changes.push({ type: 'put', revision, kv, tombstone });
    });
    this.#currentRevision = write.main;
    return { response, revision: write.main, events, changes };
  }

  /** Undo a failed write: pop its versions and their pins, then drop the keys it created. */
  #rollback(write: PendingWrite): void {
    for (let index = write.staged.length - 1; index >= 0; index--) {
      const staged = write.staged[index]!;
      const main = popVersion(staged.entry);
      assert(main === staged.revision.main, "rollback must find the write's own version last");
      setMeta(staged.entry, staged.before);
      this.#cache.unpinDiscard(cacheKey(staged.revision.main, staged.revision.sub));
    }
    this.#dropCreated(write);
  }

  /** Keys a write created but left without versions (a rollback, or a put that staged nothing) go again. */
  #dropCreated(write: PendingWrite): void {
    for (const entry of write.createdEntries) {
      if (entry.revisions.length > 0) continue;
      const removed = this.#keys.remove(entry.key);
      assert(removed === entry, 'a rolled-back key must be in the index');
      this.#byKey.delete(entry.key);
    }
  }

  #dropEmptyKeys(): void {
    this.#keys.retain((entry) => {
      if (entry.revisions.length > 0) return true;
      this.#byKey.delete(entry.key);
      return false;
    });
  }

  // ---- restore (StoreBuilder) ----

  /** Installs what a StoreBuilder assembled; called once, on a fresh store. */
  static fromBuilt(built: BuiltIndex, options: StoreOptions): MvccStore {
    const store = new MvccStore(options);
    store.#keys = SortedKeyList.fromSorted(built.entries);
    for (const entry of built.entries) store.#byKey.set(entry.key, entry);
    store.#log = built.log;
    store.#versionCount = built.versionCount;
    store.#storedBytes = built.storedBytes;
    store.#compactedRevision = built.compactedRevision;
    store.#finishedCompactRevision = built.finishedCompactRevision;
    store.#currentRevision = built.currentRevision;
    store.#durableRevision = built.currentRevision;
    for (const [key, main, kv] of built.pinned) store.#cache.pin(key, main, kv);
    return store;
  }
}

/** What StoreBuilder hands MvccStore.fromBuilt. */
interface BuiltIndex {
  readonly entries: KeyEntry[];
  readonly log: RevisionLog;
  readonly versionCount: number;
  readonly storedBytes: number;
  readonly compactedRevision: number;
  readonly finishedCompactRevision: number;
  readonly currentRevision: number;
  /** Values kept in memory (memory-only restore). */
  readonly pinned: [ReturnType<typeof cacheKey>, number, KeyValue][];
}

interface HeldAtCompaction {
  readonly revision: Revision;
  readonly tombstone: boolean;
  readonly header: RecordHeader;
  readonly kv: KeyValue | undefined;
}

/**
 * Rebuilds the index from stored versions streamed in revision order, checking each against its
 * key's previous version. Versions at or below the compacted revision may include ones a
 * compaction dropped but the compactor had not deleted yet (a crash, or a snapshot taken in
 * between): per key only the newest of them counts, and not at all if it is a tombstone.
 */
export class StoreBuilder {
  readonly #compacted: number;
  readonly #meta: StoreMeta;
  readonly #options: StoreOptions;
  readonly #byKey = new Map<string, KeyEntry>();
  readonly #log = new RevisionLog();
  /** Per key, its newest version at or below the compacted revision, until the first version above it. */
  #atCompaction: Map<string, HeldAtCompaction> | undefined = new Map();
  #previous: Revision | undefined;
  #versionCount = 0;
  #storedBytes = 0;
  readonly #pinned: [ReturnType<typeof cacheKey>, number, KeyValue][] = [];

  constructor(meta: StoreMeta, options: StoreOptions = {}) {
    assert(Number.isSafeInteger(meta.compactedRevision) && meta.compactedRevision >= 0, `bad compacted revision ${meta.compactedRevision}`);
    this.#compacted = meta.compactedRevision;
    this.#meta = meta;
    this.#options = options;
  }

  /** One stored version; kv only when the store keeps values in memory (no reader). */
  add(revision: Revision, tombstone: boolean, header: RecordHeader, bytes: number, kv?: KeyValue): void {
    checkRestoredOrder(this.#previous, revision, this.#compacted);
    this.#previous = revision;
    // Counted whether or not the index keeps it: level holds it until the compactor deletes it.
    this.#storedBytes += bytes;
    assert(header.modRevision === revision.main, `restored version ${revision.main} has modRevision ${header.modRevision}`);
    if (revision.main <= this.#compacted) {
      assert(this.#atCompaction !== undefined, 'restored versions must increase');
      this.#atCompaction.set(header.key, { revision, tombstone, header, kv });
      return;
    }
    this.#settleCompacted();
    this.#hold(revision, tombstone, header, kv);
  }

  finish(): MvccStore {
    this.#settleCompacted();
    const entries = [...this.#byKey.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
    const last = this.#previous?.main ?? 0;
    return MvccStore.fromBuilt(
      {
        entries,
        log: this.#log,
        versionCount: this.#versionCount,
        storedBytes: this.#storedBytes,
        compactedRevision: this.#compacted,
        finishedCompactRevision: Math.min(this.#meta.finishedCompactRevision ?? 0, this.#compacted),
        currentRevision: Math.max(1, this.#compacted, this.#meta.currentRevision, last),
        pinned: this.#pinned,
      },
      this.#options,
    );
  }

  /** The first version above the compacted revision: the survivors at or below it join the index. */
  #settleCompacted(): void {
    const held = this.#atCompaction;
    if (held === undefined) return;
    this.#atCompaction = undefined;
    // Survivors AT the compacted revision belong in the revision log too, in sub order.
    const atCompacted: HeldAtCompaction[] = [];
    for (const version of held.values()) {
      if (version.tombstone) continue;
      if (version.revision.main === this.#compacted) atCompacted.push(version);
      else this.#hold(version.revision, false, version.header, version.kv, false);
    }
    atCompacted.sort((a, b) => a.revision.sub - b.revision.sub);
    for (const version of atCompacted) this.#hold(version.revision, false, version.header, version.kv);
  }

  #hold(revision: Revision, tombstone: boolean, header: RecordHeader, kv: KeyValue | undefined, logged = true): void {
    let entry = this.#byKey.get(header.key);
    const live = entry !== undefined && isLive(entry);
    if (revision.main <= this.#compacted) {
      assert(entry === undefined && !tombstone, 'compaction keeps at most one live version per key at or below it');
    } else if (tombstone) {
      assert(live, `restored delete of ${JSON.stringify(header.key)} at ${revision.main} has no live version`);
      assert(header.createRevision === 0 && header.version === 0, 'a restored tombstone must carry no generation');
    } else if (live) {
      assert(header.createRevision === entry!.createRevision && header.version === entry!.version + 1, 'restored version breaks its generation');
    } else {
      assert(header.createRevision === revision.main && header.version === 1, 'restored create must start a generation');
    }
    if (entry === undefined) {
      entry = newEntry(header.key);
      this.#byKey.set(header.key, entry);
    }
    pushVersion(entry, revision, tombstone);
    setMeta(entry, tombstone ? NO_GENERATION : { createRevision: header.createRevision, version: header.version, lease: header.lease });
    if (logged) this.#log.append(revision.main, subCode(revision.sub, tombstone), entry);
    this.#versionCount++;
    if (kv !== undefined) this.#pinned.push([cacheKey(revision.main, revision.sub), revision.main, kv]);
  }
}

// ---- pure helpers ----

function stringRange(range: KeyRange): StringRange {
  const start = keyString(range.key);
  if (range.rangeEnd.byteLength === 0) return { start, single: true, end: undefined };
  return { start, single: false, end: isOpenRangeEnd(range.rangeEnd) ? undefined : keyString(range.rangeEnd) };
}

function inStringRange(key: string, range: StringRange): boolean {
  if (range.single) return key === range.start;
  return key >= range.start && (range.end === undefined || key < range.end);
}

function compareRevisions(a: Revision, b: Revision): number {
  return a.main !== b.main ? a.main - b.main : a.sub - b.sub;
}

/** Restored versions come in strictly increasing revision order, contiguous above the compacted revision. */
function checkRestoredOrder(previous: Revision | undefined, revision: Revision, compacted: number): void {
  assert(revision.main >= 2 && revision.sub >= 0, `restored revision ${revision.main}.${revision.sub} is impossible`);
  assert(previous === undefined || compareRevisions(previous, revision) < 0, 'restored revisions must increase');
  if (revision.main <= compacted) return; // compaction leaves gaps at and below the compacted revision
  const expectedSub = previous?.main === revision.main ? previous.sub + 1 : 0;
  assert(revision.sub === expectedSub, `restored sub revision ${revision.main}.${revision.sub} is not contiguous`);
}
