/** Goal: the MVCC store keeps etcd's revision, generation, range, compaction and event semantics. */
import { describe, expect, it } from 'vitest';
import { isGavelError, type GavelErrorCode } from '../../server/errors.js';
import { prefixRangeEnd } from '../../server/mvcc/key-range.js';
import { deleteRangeRequest, putRequest, rangeRequest } from '../../server/mvcc/requests.js';
import { MvccStore } from '../../server/mvcc/store.js';
import { SortOrder, SortTarget, type KeyValue, type PutRequest, type RangeRequest } from '../../server/mvcc/types.js';

const b = (text: string): Uint8Array => new TextEncoder().encode(text);
const t = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
const ALL = Uint8Array.of(0);
const allLeases = (): boolean => true;
const pairs = (kvs: readonly KeyValue[]): string[] => kvs.map((kv) => `${t(kv.key)}=${t(kv.value)}`);
const keys = (kvs: readonly KeyValue[]): string[] => kvs.map((kv) => t(kv.key));

function put(store: MvccStore, key: string, value: string, options: Partial<PutRequest> = {}): number {
  return store.put(putRequest(b(key), b(value), options), allLeases).revision;
}

function get(store: MvccStore, key: string, revision = 0): KeyValue | undefined {
  return store.range(rangeRequest(b(key), { revision })).kvs[0];
}

function scan(store: MvccStore, key: string, end: string | Uint8Array, options: Partial<RangeRequest> = {}) {
  return store.range(rangeRequest(b(key), { rangeEnd: typeof end === 'string' ? b(end) : end, ...options }));
}

function expectCode(action: () => unknown, code: GavelErrorCode): void {
  try {
    action();
  } catch (error) {
    expect(isGavelError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
    return;
  }
  throw new Error(`expected GavelError ${code}, nothing was thrown`);
}

describe('revisions and generations', () => {
  it('starts at revision 1 and gives the first write revision 2, like etcd', () => {
    // Goal: an empty store has etcd's starting revisions.
    const store = new MvccStore();
    expect(store.currentRevision).toBe(1);
    expect(store.compactedRevision).toBe(0);
    expect(put(store, 'a', '1')).toBe(2);
    expect(store.currentRevision).toBe(2);
  });

  it('tracks create revision, mod revision and version across put, delete and re-create', () => {
    // Goal: a delete closes a generation and the next put starts a new one.
    const store = new MvccStore();
    put(store, 'a', '1'); // 2
    put(store, 'a', '2'); // 3
    expect(get(store, 'a')).toMatchObject({ createRevision: 2, modRevision: 3, version: 2 });
    const deleted = store.deleteRange(deleteRangeRequest(b('a')));
    expect(deleted.revision).toBe(4);
    expect(deleted.response.deleted).toBe(1);
    expect(get(store, 'a')).toBeUndefined();
    put(store, 'a', '3'); // 5
    expect(get(store, 'a')).toMatchObject({ createRevision: 5, modRevision: 5, version: 1 });
    put(store, 'a', '4'); // 6
    expect(get(store, 'a')).toMatchObject({ createRevision: 5, modRevision: 6, version: 2 });
    expect(t(get(store, 'a', 3)!.value)).toBe('2');
    expect(get(store, 'a', 4)).toBeUndefined();
    expect(get(store, 'a', 5)).toMatchObject({ createRevision: 5, version: 1 });
    expect(get(store, 'a', 2)).toMatchObject({ createRevision: 2, version: 1 });
  });

  it('creates no revision for a write that changes nothing', () => {
    // Goal: deleting a missing key neither bumps the revision nor emits events or changes.
    const store = new MvccStore();
    put(store, 'a', '1');
    const result = store.deleteRange(deleteRangeRequest(b('zzz')));
    expect(result).toEqual({ response: { deleted: 0, prevKvs: [] }, revision: 2, events: [], changes: [] });
    expect(store.currentRevision).toBe(2);
  });

  it('keeps its own copy of keys and values', () => {
    // Goal: a caller reusing its buffers cannot change stored history.
    const store = new MvccStore();
    const key = b('k');
    const value = b('v1');
    store.put(putRequest(key, value), allLeases);
    key[0] = 0x7a;
    value[1] = 0x39;
    expect(pairs(store.range(rangeRequest(b('k'))).kvs)).toEqual(['k=v1']);
  });
});

describe('put validation and options', () => {
  it('answers prevKv, ignore_value and ignore_lease like etcd', () => {
    // Goal: put options reuse the previous version's value or lease and report it.
    const store = new MvccStore();
    put(store, 'a', 'v1', { lease: 7n });
    const result = store.put(putRequest(b('a'), new Uint8Array(0), { ignoreValue: true, prevKv: true }), allLeases);
    expect(t(result.response.prevKv!.value)).toBe('v1');
    expect(get(store, 'a')).toMatchObject({ version: 2, lease: 0n });
    expect(t(get(store, 'a')!.value)).toBe('v1');
    put(store, 'a', 'v3', { lease: 9n });
    store.put(putRequest(b('a'), b('v4'), { ignoreLease: true }), allLeases);
    expect(get(store, 'a')).toMatchObject({ lease: 9n, version: 4 });
    expect(store.put(putRequest(b('new'), b('x'), { prevKv: true }), allLeases).response).toEqual({});
  });

  it('rejects bad puts without writing', () => {
    // Goal: each put error has etcd's code and leaves the revision unchanged.
    const store = new MvccStore();
    put(store, 'a', 'v1');
    const before = store.currentRevision;
    expectCode(() => store.put(putRequest(b('missing'), new Uint8Array(0), { ignoreValue: true }), allLeases), 'KeyNotFound');
    expectCode(() => store.put(putRequest(b('missing'), b('x'), { ignoreLease: true }), allLeases), 'KeyNotFound');
    expectCode(() => store.put(putRequest(b('a'), b('x'), { ignoreValue: true }), allLeases), 'ValueProvided');
    expectCode(() => store.put(putRequest(b('a'), b('x'), { ignoreLease: true, lease: 5n }), allLeases), 'LeaseProvided');
    expectCode(() => store.put(putRequest(b('a'), b('x'), { lease: 5n }), (id) => id === 6n), 'LeaseNotFound');
    expect(store.currentRevision).toBe(before);
    expect(scan(store, '', ALL).count).toBe(1);
  });
});

describe('range', () => {
  /** a..e with distinct create/mod revisions and versions. */
  function fixture(): MvccStore {
    const store = new MvccStore();
    put(store, 'c', 'v-c1'); // 2
    put(store, 'a', 'v-a1'); // 3
    put(store, 'e', 'v-e1'); // 4
    put(store, 'b', 'v-b1'); // 5
    put(store, 'd', 'v-d1'); // 6
    put(store, 'a', 'v-a2'); // 7
    put(store, 'c', 'v-c2'); // 8
    put(store, 'c', 'v-c3'); // 9
    return store;
  }

  it('follows the range_end conventions', () => {
    // Goal: empty = one key, [0] = every key >= key, [0]..[0] = all keys, [key, end) half-open.
    const store = fixture();
    expect(keys(store.range(rangeRequest(b('b'))).kvs)).toEqual(['b']);
    expect(keys(store.range(rangeRequest(b('bb'))).kvs)).toEqual([]);
    expect(keys(scan(store, 'b', 'd').kvs)).toEqual(['b', 'c']);
    expect(keys(scan(store, 'c', ALL).kvs)).toEqual(['c', 'd', 'e']);
    expect(keys(store.range(rangeRequest(ALL, { rangeEnd: ALL })).kvs)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(keys(scan(store, 'd', 'b').kvs)).toEqual([]);
    put(store, 'ca', 'x');
    put(store, 'c\xff', 'y');
    expect(keys(store.range(rangeRequest(b('c'), { rangeEnd: prefixRangeEnd(b('c')) })).kvs)).toEqual(['c', 'ca', 'c\xff']);
  });

  it('orders keys byte by byte', () => {
    // Goal: keys compare as unsigned bytes, not as UTF-16 strings.
    const store = new MvccStore();
    for (const key of [Uint8Array.of(0xff), Uint8Array.of(0x01, 0x02), Uint8Array.of(0x01), Uint8Array.of(0x80)]) {
      store.put(putRequest(key, b('v')), allLeases);
    }
    const kvs = store.range(rangeRequest(ALL, { rangeEnd: ALL })).kvs;
    expect(kvs.map((kv) => Buffer.from(kv.key).toString('hex'))).toEqual(['01', '0102', '80', 'ff']);
  });

  it('applies limit with more and counts every key in range', () => {
    // Goal: count ignores limit; more says the limit cut the answer.
    const store = fixture();
    expect(scan(store, 'a', ALL, { limit: 2 })).toMatchObject({ more: true, count: 5 });
    expect(keys(scan(store, 'a', ALL, { limit: 2 }).kvs)).toEqual(['a', 'b']);
    expect(scan(store, 'a', ALL, { limit: 5 })).toMatchObject({ more: false, count: 5 });
    expect(scan(store, 'a', ALL, { limit: 6 }).kvs).toHaveLength(5);
  });

  it('answers count_only and keys_only', () => {
    // Goal: count_only returns no kvs; keys_only empties values without touching stored ones.
    const store = fixture();
    expect(scan(store, 'a', ALL, { countOnly: true })).toEqual({ kvs: [], more: false, count: 5 });
    const keysOnly = scan(store, 'a', ALL, { keysOnly: true }).kvs;
    expect(keysOnly.every((kv) => kv.value.byteLength === 0)).toBe(true);
    expect(keysOnly[0]).toMatchObject({ createRevision: 3, modRevision: 7, version: 2 });
    expect(t(get(store, 'a')!.value)).toBe('v-a2');
  });

  it('sorts by every target before applying the limit', () => {
    // Goal: etcd's sort rules, including NONE with a non-key target meaning ASCEND.
    const store = fixture();
    const sorted = (sortTarget: SortTarget, sortOrder: SortOrder, limit = 0) =>
      keys(scan(store, 'a', ALL, { sortTarget, sortOrder, limit }).kvs);
    expect(sorted(SortTarget.Key, SortOrder.Descend)).toEqual(['e', 'd', 'c', 'b', 'a']);
    expect(sorted(SortTarget.Key, SortOrder.Ascend)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(sorted(SortTarget.Create, SortOrder.Ascend)).toEqual(['c', 'a', 'e', 'b', 'd']);
    expect(sorted(SortTarget.Create, SortOrder.None)).toEqual(['c', 'a', 'e', 'b', 'd']);
    expect(sorted(SortTarget.Mod, SortOrder.Descend)).toEqual(['c', 'a', 'd', 'b', 'e']);
    expect(sorted(SortTarget.Version, SortOrder.Descend)).toEqual(['c', 'a', 'b', 'd', 'e']);
    expect(sorted(SortTarget.Value, SortOrder.Descend)).toEqual(['e', 'd', 'c', 'b', 'a']);
    expect(sorted(SortTarget.Key, SortOrder.Descend, 2)).toEqual(['e', 'd']);
    expect(scan(store, 'a', ALL, { sortTarget: SortTarget.Mod, sortOrder: SortOrder.Descend, limit: 2 })).toMatchObject({ more: true, count: 5 });
  });

  it('filters by min/max mod and create revision without changing count', () => {
    // Goal: the revision filters select kvs but count still covers the whole range.
    const store = fixture();
    expect(keys(scan(store, 'a', ALL, { minModRevision: 6 }).kvs)).toEqual(['a', 'c', 'd']);
    expect(keys(scan(store, 'a', ALL, { maxModRevision: 6 }).kvs)).toEqual(['b', 'd', 'e']);
    expect(keys(scan(store, 'a', ALL, { minCreateRevision: 4, maxCreateRevision: 5 }).kvs)).toEqual(['b', 'e']);
    expect(scan(store, 'a', ALL, { minModRevision: 6 }).count).toBe(5);
    expect(scan(store, 'a', ALL, { minModRevision: 6, limit: 2 })).toMatchObject({ more: true, count: 5 });
    expect(scan(store, 'a', ALL, { minModRevision: 6, limit: 3 })).toMatchObject({ more: false });
  });

  it('reads history at a revision and rejects future revisions', () => {
    // Goal: a historical read sees exactly the versions live then.
    const store = fixture();
    expect(pairs(scan(store, 'a', ALL, { revision: 4 }).kvs)).toEqual(['a=v-a1', 'c=v-c1', 'e=v-e1']);
    expect(scan(store, 'a', ALL, { revision: 4 }).count).toBe(3);
    expect(pairs(scan(store, 'c', ALL, { revision: 8, limit: 1 }).kvs)).toEqual(['c=v-c2']);
    expect(scan(store, 'a', ALL, { revision: 1 }).kvs).toEqual([]);
    expectCode(() => scan(store, 'a', ALL, { revision: 10 }), 'FutureRevision');
  });
});

describe('events', () => {
  it('reports each change with prevKv in sub-revision order under one revision', () => {
    // Goal: events and changes mirror the write; delete events carry key and mod revision only.
    const store = new MvccStore();
    const created = store.put(putRequest(b('a'), b('1')), allLeases);
    expect(created.events).toEqual([{ type: 'put', kv: get(store, 'a') }]);
    put(store, 'b', '2');
    const updated = store.put(putRequest(b('a'), b('3')), allLeases);
    expect(updated.events[0]!.prevKv).toMatchObject({ modRevision: 2, version: 1 });
    const deleted = store.deleteRange(deleteRangeRequest(b('a'), { rangeEnd: ALL, prevKv: true }));
    expect(deleted.revision).toBe(5);
    expect(deleted.response.prevKvs.map((kv) => t(kv.key))).toEqual(['a', 'b']);
    expect(deleted.events.map((event) => [event.type, t(event.kv.key), t(event.prevKv!.value)])).toEqual([
      ['delete', 'a', '3'],
      ['delete', 'b', '2'],
    ]);
    expect(deleted.events[0]!.kv).toEqual({ key: b('a'), createRevision: 0, modRevision: 5, version: 0, value: new Uint8Array(0), lease: 0n });
    expect(deleted.changes.map((change) => change.type === 'put' && [change.revision, change.tombstone])).toEqual([
      [{ main: 5, sub: 0 }, true],
      [{ main: 5, sub: 1 }, true],
    ]);
  });

  it('replays history in range, bounded, never splitting a revision', () => {
    // Goal: eventsInRange is the catch-up feed for watchers.
    const store = new MvccStore();
    put(store, 'a', '1'); // 2
    put(store, 'b', '1'); // 3
    store.deleteRange(deleteRangeRequest(b('a'), { rangeEnd: ALL })); // 4: a, b
    put(store, 'a', '2'); // 5
    const everything = store.eventsInRange(1, 100, { key: ALL, rangeEnd: ALL });
    expect(everything.map((event) => `${event.type}:${t(event.kv.key)}@${event.kv.modRevision}`)).toEqual([
      'put:a@2', 'put:b@3', 'delete:a@4', 'delete:b@4', 'put:a@5',
    ]);
    expect(store.eventsInRange(3, 4, { key: b('a'), rangeEnd: new Uint8Array(0) }).map((event) => event.type)).toEqual(['delete']);
    expect(store.eventsInRange(5, 5, { key: b('a'), rangeEnd: new Uint8Array(0) })[0]!.prevKv).toBeUndefined();
    expect(store.eventsInRange(4, 5, { key: b('a'), rangeEnd: b('b') })[0]!.prevKv).toMatchObject({ modRevision: 2 });
    expect(store.eventsInRange(2, 5, { key: ALL, rangeEnd: ALL }, 2)).toHaveLength(2);
    expect(store.eventsInRange(3, 5, { key: ALL, rangeEnd: ALL }, 2).map((event) => event.kv.modRevision)).toEqual([3, 4, 4]);
    expect(store.eventsInRange(6, 9, { key: ALL, rangeEnd: ALL })).toEqual([]);
  });
});

describe('compaction', () => {
  function fixture(): MvccStore {
    const store = new MvccStore();
    put(store, 'a', 'a1'); // 2
    put(store, 'a', 'a2'); // 3
    put(store, 'b', 'b1'); // 4
    store.deleteRange(deleteRangeRequest(b('b'))); // 5
    put(store, 'c', 'c1'); // 6
    put(store, 'a', 'a3'); // 7
    return store;
  }

  it('removes every version not visible at or after the compacted revision', () => {
    // Goal: compaction drops versions from the index (the compactor deletes their records later,
    // guided by holds()) and keeps the compacted revision itself readable.
    const store = fixture();
    const versionsBefore = store.versionCount;
    const result = store.compact(5);
    expect(result.revision).toBe(7);
    expect(result.events).toEqual([]);
    expect(result.changes).toEqual([{ type: 'meta', compactedRevision: 5, currentRevision: 7 }]);
    expect(store.compactedRevision).toBe(5);
    expect(store.versionCount).toBe(versionsBefore - 3);
    const key = (text: string): string => Buffer.from(text).toString('latin1');
    expect(store.holds({ main: 2, sub: 0 }, false, key('a'))).toBe(false);
    expect(store.holds({ main: 3, sub: 0 }, false, key('a'))).toBe(true);
    expect(store.holds({ main: 4, sub: 0 }, false, key('b'))).toBe(false);
    expect(store.holds({ main: 5, sub: 0 }, true, key('b'))).toBe(false);
    expect(store.holds({ main: 7, sub: 0 }, false, key('a'))).toBe(true);
    expect(store.holds({ main: 7, sub: 0 }, true, key('a'))).toBe(false);
    expect(pairs(scan(store, 'a', ALL, { revision: 5 }).kvs)).toEqual(['a=a2']);
    expect(pairs(scan(store, 'a', ALL, { revision: 6 }).kvs)).toEqual(['a=a2', 'c=c1']);
    expect(pairs(scan(store, 'a', ALL).kvs)).toEqual(['a=a3', 'c=c1']);
    expectCode(() => scan(store, 'a', ALL, { revision: 4 }), 'Compacted');
    expect(() => store.hash(5)).not.toThrow(); // the compacted revision itself stays hashable
  });

  it('rejects compaction at or below the compacted revision and above the current one', () => {
    // Goal: etcd's Compacted / FutureRevision answers for compact.
    const store = fixture();
    store.compact(4);
    expectCode(() => store.compact(4), 'Compacted');
    expectCode(() => store.compact(3), 'Compacted');
    expectCode(() => store.compact(8), 'FutureRevision');
    expect(store.compact(7).revision).toBe(7);
    expect(store.currentRevision).toBe(7);
  });

  it('lets a watcher start at the compacted revision but not below it', () => {
    // Goal: as etcd's chooseAll (minRev < compactRev is compacted), events AT the compacted revision survive, without prevKv.
    const store = fixture();
    store.compact(7);
    expectCode(() => store.eventsInRange(6, 7, { key: ALL, rangeEnd: ALL }), 'Compacted');
    const events = store.eventsInRange(7, 7, { key: ALL, rangeEnd: ALL });
    expect(events).toEqual([{ type: 'put', kv: get(store, 'a') }]);
    put(store, 'a', 'a4'); // 8
    expect(store.eventsInRange(8, 8, { key: ALL, rangeEnd: ALL })[0]!.prevKv).toMatchObject({ modRevision: 7 });
  });

  it('drops a fully deleted key from the index and keeps the revision', () => {
    // Goal: compacting past a tombstone forgets the key; the current revision stays.
    const store = new MvccStore();
    put(store, 'a', '1');
    store.deleteRange(deleteRangeRequest(b('a')));
    store.compact(3);
    expect(store.keyCount).toBe(0);
    expect(store.versionCount).toBe(0);
    expect(store.range(rangeRequest(ALL, { rangeEnd: ALL, revision: 3 })).count).toBe(0);
    expect(put(store, 'a', '2')).toBe(4);
    expect(get(store, 'a')).toMatchObject({ createRevision: 4, version: 1 });
  });
});

describe('lease helpers and hash', () => {
  it('deletes lease keys in one revision and lists keys with leases', () => {
    // Goal: lease revoke deletes its keys at one revision; missing keys and duplicates are skipped.
    const store = new MvccStore();
    put(store, 'b', '1', { lease: 5n });
    put(store, 'a', '1', { lease: 5n });
    put(store, 'c', '1');
    expect([...store.keysWithLease()].map((kv) => [t(kv.key), kv.lease])).toEqual([['a', 5n], ['b', 5n]]);
    const result = store.deleteKeys([b('b'), b('zz'), b('a'), b('b')]);
    expect(result.response.deleted).toBe(2);
    expect(result.revision).toBe(5);
    expect(result.events.map((event) => t(event.kv.key))).toEqual(['a', 'b']);
    expect([...store.keysWithLease()]).toEqual([]);
    expect(store.deleteKeys([b('a')])).toMatchObject({ revision: 5, events: [], response: { deleted: 0 } });
  });

  it('hashes the stored versions up to a revision deterministically', () => {
    // Goal: equal histories hash equal; a later write does not change the hash at an older revision.
    const one = new MvccStore();
    const two = new MvccStore();
    for (const store of [one, two]) {
      put(store, 'a', '1');
      put(store, 'b', '2');
    }
    expect(one.hash()).toEqual(two.hash());
    const atThree = one.hash(3);
    put(one, 'a', '3');
    expect(one.hash(3)).toEqual(atThree);
    expect(one.hash()).not.toBe(atThree);
    expect(one.hash(4)).toBe(one.hash());
    one.compact(3);
    expectCode(() => one.hash(2), 'Compacted');
    expectCode(() => one.hash(9), 'FutureRevision');
  });
});
