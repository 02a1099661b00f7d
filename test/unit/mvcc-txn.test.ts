/** Goal: Txn follows etcd: compares on every key in range, one revision, read-your-writes, nothing written on rejection. */
import { describe, expect, it } from 'vitest';
import { isGavelError, type GavelErrorCode } from '../../server/errors.js';
import { deleteRangeRequest, putRequest, rangeRequest, txnRequest } from '../../server/mvcc/requests.js';
import { MvccStore } from '../../server/mvcc/store.js';
import {
  CompareResult,
  CompareTarget,
  type Compare,
  type CompareOperand,
  type KeyValue,
  type RequestOp,
  type TxnResponse,
} from '../../server/mvcc/types.js';

const b = (text: string): Uint8Array => new TextEncoder().encode(text);
const t = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
const ALL = Uint8Array.of(0);
const allLeases = (): boolean => true;
const pairs = (kvs: readonly KeyValue[]): string[] => kvs.map((kv) => `${t(kv.key)}=${t(kv.value)}`);

const ops = {
  put: (key: string, value: string, options: Parameters<typeof putRequest>[2] = {}): RequestOp =>
    ({ type: 'put', request: putRequest(b(key), b(value), options) }),
  get: (key: string, revision = 0): RequestOp => ({ type: 'range', request: rangeRequest(b(key), { revision }) }),
  delete: (key: string, rangeEnd?: Uint8Array): RequestOp =>
    ({ type: 'deleteRange', request: deleteRangeRequest(b(key), rangeEnd ? { rangeEnd } : {}) }),
  txn: (compare: Compare[], success: RequestOp[], failure: RequestOp[] = []): RequestOp =>
    ({ type: 'txn', request: txnRequest({ compare, success, failure }) }),
};

function cmp(key: string, target: CompareTarget, result: CompareResult, operand: CompareOperand, rangeEnd?: Uint8Array): Compare {
  return { key: b(key), rangeEnd: rangeEnd ?? new Uint8Array(0), target, result, operand };
}

const version = (value: number): CompareOperand => ({ kind: 'version', version: value });
const created = (value: number): CompareOperand => ({ kind: 'createRevision', createRevision: value });
const modified = (value: number): CompareOperand => ({ kind: 'modRevision', modRevision: value });
const valued = (value: string): CompareOperand => ({ kind: 'value', value: b(value) });
const leased = (value: bigint): CompareOperand => ({ kind: 'lease', lease: value });

/** a: create 2, mod 3, version 2, value "v2", lease 7. */
function fixture(): MvccStore {
  const store = new MvccStore();
  store.put(putRequest(b('a'), b('v1')), allLeases);
  store.put(putRequest(b('a'), b('v2'), { lease: 7n }), allLeases);
  return store;
}

function holds(store: MvccStore, ...compares: Compare[]): boolean {
  return store.txn(txnRequest({ compare: compares }), allLeases).response.succeeded;
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

function rangeKvs(response: TxnResponse, index: number): readonly KeyValue[] {
  const op = response.responses[index];
  if (op?.type !== 'range') throw new Error(`response ${index} is not a range`);
  return op.response.kvs;
}

describe('compares', () => {
  it('evaluates every target with every result', () => {
    // Goal: version/create/mod/value/lease compare like etcd's compareKV.
    const store = fixture();
    const { Equal, NotEqual, Greater, Less } = CompareResult;
    const cases: Array<[CompareTarget, CompareOperand, CompareOperand, CompareOperand]> = [
      [CompareTarget.Version, version(2), version(1), version(3)],
      [CompareTarget.Create, created(2), created(1), created(3)],
      [CompareTarget.Mod, modified(3), modified(2), modified(4)],
      [CompareTarget.Value, valued('v2'), valued('v1'), valued('v3')],
      [CompareTarget.Lease, leased(7n), leased(6n), leased(8n)],
    ];
    for (const [target, same, smaller, larger] of cases) {
      expect(holds(store, cmp('a', target, Equal, same)), `${target} equal`).toBe(true);
      expect(holds(store, cmp('a', target, Equal, smaller)), `${target} not equal`).toBe(false);
      expect(holds(store, cmp('a', target, NotEqual, smaller)), `${target} not-equal`).toBe(true);
      expect(holds(store, cmp('a', target, NotEqual, same)), `${target} not not-equal`).toBe(false);
      expect(holds(store, cmp('a', target, Greater, smaller)), `${target} greater`).toBe(true);
      expect(holds(store, cmp('a', target, Greater, same)), `${target} not greater`).toBe(false);
      expect(holds(store, cmp('a', target, Less, larger)), `${target} less`).toBe(true);
      expect(holds(store, cmp('a', target, Less, same)), `${target} not less`).toBe(false);
    }
  });

  it('compares a missing key as an all-zero KeyValue, except VALUE which is always false', () => {
    // Goal: etcd's create-if-absent idiom (create_revision == 0) works, and value compares fail on absence.
    const store = fixture();
    expect(holds(store, cmp('missing', CompareTarget.Create, CompareResult.Equal, created(0)))).toBe(true);
    expect(holds(store, cmp('missing', CompareTarget.Version, CompareResult.Equal, version(0)))).toBe(true);
    expect(holds(store, cmp('missing', CompareTarget.Mod, CompareResult.Less, modified(5)))).toBe(true);
    expect(holds(store, cmp('missing', CompareTarget.Lease, CompareResult.Equal, leased(0n)))).toBe(true);
    expect(holds(store, cmp('missing', CompareTarget.Value, CompareResult.Equal, valued('')))).toBe(false);
    expect(holds(store, cmp('missing', CompareTarget.Value, CompareResult.NotEqual, valued('x')))).toBe(false);
  });

  it('requires every key in a range to satisfy the compare', () => {
    // Goal: range compares are universally quantified; an empty range compares the zero KeyValue.
    const store = fixture();
    store.put(putRequest(b('b'), b('x')), allLeases);
    expect(holds(store, cmp('a', CompareTarget.Version, CompareResult.Greater, version(0), b('c')))).toBe(true);
    expect(holds(store, cmp('a', CompareTarget.Version, CompareResult.Equal, version(2), b('c')))).toBe(false);
    expect(holds(store, cmp('a', CompareTarget.Create, CompareResult.Less, created(5), ALL))).toBe(true);
    expect(holds(store, cmp('x', CompareTarget.Version, CompareResult.Equal, version(0), b('z')))).toBe(true);
    expect(holds(store, cmp('a', CompareTarget.Create, CompareResult.Greater, created(0)), cmp('zz', CompareTarget.Version, CompareResult.Greater, version(0)))).toBe(false);
  });
});

describe('txn execution', () => {
  it('runs the chosen branch under one revision with contiguous sub revisions', () => {
    // Goal: all writes of a txn share one main revision; events follow op order.
    const store = fixture();
    const result = store.txn(
      txnRequest({
        compare: [cmp('a', CompareTarget.Value, CompareResult.Equal, valued('v2'))],
        success: [ops.put('b', '1'), ops.delete('a'), ops.put('c', '1')],
        failure: [ops.put('never', '1')],
      }),
      allLeases,
    );
    expect(result.response.succeeded).toBe(true);
    expect(result.revision).toBe(4);
    expect(store.currentRevision).toBe(4);
    expect(result.events.map((event) => [event.type, t(event.kv.key), event.kv.modRevision])).toEqual([
      ['put', 'b', 4], ['delete', 'a', 4], ['put', 'c', 4],
    ]);
    expect(result.changes.map((change) => (change.type === 'put' ? change.revision.sub : -1))).toEqual([0, 1, 2]);
    expect(result.response.responses.map((response) => response.type)).toEqual(['put', 'deleteRange', 'put']);
  });

  it('takes the failure branch when a compare fails', () => {
    // Goal: a failed compare runs failure ops and reports succeeded = false.
    const store = fixture();
    const result = store.txn(
      txnRequest({ compare: [cmp('a', CompareTarget.Version, CompareResult.Equal, version(9))], success: [ops.put('s', '1')], failure: [ops.get('a')] }),
      allLeases,
    );
    expect(result.response.succeeded).toBe(false);
    expect(pairs(rangeKvs(result.response, 0))).toEqual(['a=v2']);
    expect(result.revision).toBe(3);
    expect(result.events).toEqual([]);
  });

  it('lets reads inside the txn see its earlier writes, and historical reads see the past', () => {
    // Goal: read-your-writes inside a txn, as etcd's storeTxnWrite.Range.
    const store = fixture();
    const result = store.txn(txnRequest({ success: [ops.get('a'), ops.put('a', 'new'), ops.get('a'), ops.get('a', 3)] }), allLeases);
    expect(pairs(rangeKvs(result.response, 0))).toEqual(['a=v2']);
    expect(rangeKvs(result.response, 2)[0]).toMatchObject({ modRevision: 4, version: 3 });
    expect(pairs(rangeKvs(result.response, 3))).toEqual(['a=v2']);
  });

  it('runs nested txns whose compares were evaluated at txn start', () => {
    // Goal: etcd's compareToPath evaluates nested compares before any write of the txn.
    const store = fixture();
    const result = store.txn(
      txnRequest({
        success: [
          ops.put('n', 'outer'),
          ops.txn([cmp('n', CompareTarget.Version, CompareResult.Equal, version(0))], [ops.put('m', 'inner'), ops.get('n')], [ops.put('f', 'x')]),
        ],
      }),
      allLeases,
    );
    const nested = result.response.responses[1];
    expect(nested?.type === 'txn' && nested.response.succeeded).toBe(true);
    if (nested?.type !== 'txn') throw new Error('expected a nested txn response');
    expect(pairs(rangeKvs(nested.response, 1))).toEqual(['n=outer']);
    expect(result.events.map((event) => `${t(event.kv.key)}@${event.kv.modRevision}.`)).toEqual(['n@4.', 'm@4.']);
    expect(result.changes.map((change) => (change.type === 'put' ? `${change.revision.main}.${change.revision.sub}` : ''))).toEqual(['4.0', '4.1']);
    expect(store.range(rangeRequest(b('f'))).count).toBe(0);
  });

  it('creates no revision for a txn whose branch writes nothing', () => {
    // Goal: read-only and empty txns leave the revision alone.
    const store = fixture();
    expect(store.txn(txnRequest({ success: [ops.get('a')] }), allLeases).revision).toBe(3);
    expect(store.txn(txnRequest({ success: [ops.delete('missing')] }), allLeases).revision).toBe(3);
    expect(store.currentRevision).toBe(3);
  });

  it('increments version for two puts of one key in one txn', () => {
    // Goal: the store itself tolerates repeated keys (the API layer rejects them, as etcd).
    const store = fixture();
    const result = store.txn(txnRequest({ success: [ops.put('a', 'x'), ops.put('a', 'y')] }), allLeases);
    expect(result.events.map((event) => [event.kv.version, t(event.prevKv!.value)])).toEqual([[3, 'v2'], [4, 'x']]);
    expect(store.range(rangeRequest(b('a'))).kvs[0]).toMatchObject({ version: 4, modRevision: 4 });
  });
});

describe('rejected txns', () => {
  /** The whole visible state, to prove a rejected txn wrote nothing. */
  function snapshot(store: MvccStore) {
    return {
      revision: store.currentRevision,
      kvs: store.range(rangeRequest(ALL, { rangeEnd: ALL })).kvs,
      size: store.sizeBytes,
      hash: store.hash(),
      events: store.eventsInRange(1, 100, { key: ALL, rangeEnd: ALL }),
    };
  }

  it('rejects before writing: lease not found, key not found, value/lease provided, bad revision', () => {
    // Goal: etcd's checkTxn validates the chosen branch (nested ones too) against the state at txn start.
    const store = fixture();
    const before = snapshot(store);
    const leaseOnlySeven = (id: bigint): boolean => id === 7n;
    const attempts: Array<[RequestOp[], GavelErrorCode]> = [
      [[ops.put('new', '1'), ops.put('x', '1', { lease: 9n })], 'LeaseNotFound'],
      [[ops.put('new', '1'), ops.put('missing', '', { ignoreValue: true })], 'KeyNotFound'],
      [[ops.put('new', '1'), ops.put('new', '', { ignoreValue: true })], 'KeyNotFound'],
      [[ops.put('a', 'x', { ignoreValue: true })], 'ValueProvided'],
      [[ops.put('a', 'x', { ignoreLease: true, lease: 7n })], 'LeaseProvided'],
      [[ops.put('new', '1'), ops.get('a', 99)], 'FutureRevision'],
      [[ops.put('new', '1'), ops.txn([], [ops.put('y', '1', { lease: 3n })])], 'LeaseNotFound'],
    ];
    for (const [success, code] of attempts) {
      expectCode(() => store.txn(txnRequest({ success }), leaseOnlySeven), code);
      expect(snapshot(store)).toEqual(before);
    }
    // Only the chosen branch is checked.
    const ok = store.txn(txnRequest({ compare: [cmp('a', CompareTarget.Version, CompareResult.Equal, version(2))], success: [ops.put('ok', '1')], failure: [ops.put('x', '1', { lease: 9n })] }), leaseOnlySeven);
    expect(ok.revision).toBe(4);
  });

  it('rolls back writes already staged when an op fails during execution', () => {
    // Goal: a txn that deletes a key and then puts it with ignore_value (valid at start) writes nothing.
    const store = fixture();
    const before = snapshot(store);
    expectCode(() => store.txn(txnRequest({ success: [ops.put('fresh', '1'), ops.delete('a'), ops.put('a', '', { ignoreValue: true })] }), allLeases), 'KeyNotFound');
    expect(snapshot(store)).toEqual(before);
    expect(store.put(putRequest(b('fresh'), b('2')), allLeases).events[0]!.kv).toMatchObject({ createRevision: 4, version: 1 });
  });

  it('rejects a compacted revision read inside a txn', () => {
    // Goal: range ops in a txn get the same Compacted check as plain ranges.
    const store = fixture();
    store.put(putRequest(b('b'), b('1')), allLeases);
    store.compact(3);
    expectCode(() => store.txn(txnRequest({ success: [ops.put('z', '1'), ops.get('a', 2)] }), allLeases), 'Compacted');
    expect(pairs(rangeKvs(store.txn(txnRequest({ success: [ops.get('a', 3)] }), allLeases).response, 0))).toEqual(['a=v2']);
  });
});
