// Goal: the KV answers written straight to bytes (Range, Put, DeleteRange, Txn) read back with
// protobufjs as exactly the responses etcd's clients expect: the full header at the top, nested
// answers with only the txn's revision in their header, a nested txn with an empty (present)
// header, prev_kv absent when not asked for, 63-bit leases, counts and flags.
import { describe, expect, it } from 'vitest';
import { messageCodec } from '../../server/proto.js';
import { encodeDeleteRangeResponse, encodePutResponse, encodeRangeResponse, encodeTxnResponse } from '../../server/api/response-encoding.js';
import type { KeyValue, TxnResponse } from '../../server/mvcc/types.js';

const header = { clusterId: 0xf00dfeedbeefcafen, memberId: 0x8000000000000001n, raftTerm: 7 };
const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const decode = (type: string, bytes: Uint8Array): unknown => normalize(messageCodec<Record<string, unknown>>(`etcdserverpb.${type}`).decode(bytes));

const a: KeyValue = { key: text('a'), createRevision: 5, modRevision: 9, version: 2, value: text('yy'), lease: 0x7fffffffffffffffn };
const b: KeyValue = { key: text('b'), createRevision: 6, modRevision: 6, version: 1, value: new Uint8Array(0), lease: 0n };

function kv(k: KeyValue): object {
  return { key: hex(k.key), create_revision: String(k.createRevision), mod_revision: String(k.modRevision), version: String(k.version), value: hex(k.value), lease: k.lease.toString() };
}

function top(revision: number): object {
  return { cluster_id: header.clusterId.toString(), member_id: header.memberId.toString(), revision: String(revision), raft_term: '7' };
}

function nested(revision: number): object {
  return { cluster_id: '0', member_id: '0', revision: String(revision), raft_term: '0' };
}

describe('KV responses written by hand', () => {
  it('Range: kvs, more and count under the full header', () => {
    expect(decode('RangeResponse', encodeRangeResponse(header, 12, { kvs: [a, b], more: true, count: 40 }))).toEqual({ header: top(12), kvs: [kv(a), kv(b)], more: true, count: '40' });
    expect(decode('RangeResponse', encodeRangeResponse(header, 12, { kvs: [], more: false, count: 0 }))).toEqual({ header: top(12), kvs: [], more: false, count: '0' });
  });

  it('Put: prev_kv only when there is one', () => {
    expect(decode('PutResponse', encodePutResponse(header, 13, {}))).toEqual({ header: top(13), prev_kv: null });
    expect(decode('PutResponse', encodePutResponse(header, 13, { prevKv: a }))).toEqual({ header: top(13), prev_kv: kv(a) });
  });

  it('DeleteRange: deleted and prev_kvs', () => {
    expect(decode('DeleteRangeResponse', encodeDeleteRangeResponse(header, 14, { deleted: 2, prevKvs: [a, b] }))).toEqual({ header: top(14), deleted: '2', prev_kvs: [kv(a), kv(b)] });
  });

  it('Txn: nested answers carry the revision only; a nested txn an empty header', () => {
    const inner: TxnResponse = { succeeded: false, responses: [{ type: 'put', response: {} }] };
    const response: TxnResponse = {
      succeeded: true,
      responses: [
        { type: 'range', response: { kvs: [a], more: false, count: 1 } },
        { type: 'put', response: { prevKv: b } },
        { type: 'deleteRange', response: { deleted: 0, prevKvs: [] } },
        { type: 'txn', response: inner },
      ],
    };
    expect(decode('TxnResponse', encodeTxnResponse(header, 20, response, 20))).toEqual({
      header: top(20),
      succeeded: true,
      responses: [
        { response_range: { header: nested(20), kvs: [kv(a)], more: false, count: '1' } },
        { response_put: { header: nested(20), prev_kv: kv(b) } },
        { response_delete_range: { header: nested(20), deleted: '0', prev_kvs: [] } },
        { response_txn: { header: nested(0), succeeded: false, responses: [{ response_put: { header: nested(20), prev_kv: null } }] } },
      ],
    });
    expect(decode('TxnResponse', encodeTxnResponse(header, 21, { succeeded: false, responses: [] }, 21))).toEqual({ header: top(21), succeeded: false, responses: [] });
  });
});

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** Bytes as hex; oneof bookkeeping fields (protobufjs' "response") and absent oneof members dropped. */
function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) return hex(value);
  if (Array.isArray(value)) return value.map(normalize);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).filter(([k, v]) => k !== 'response' && !(k.startsWith('response_') && v == null)).map(([k, v]) => [k, normalize(v)]));
  }
  return value;
}
