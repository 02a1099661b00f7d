/**
 * Response parts written by hand (server/proto-writer.ts) for the answers a member sends most
 * often (KV answers, watch events, lease keep-alives): no wire object, no int64 strings turned
 * into Longs, one encoding. Field numbers are rpc.proto's and kv.proto's; unit tests read the
 * bytes back with protobufjs.
 */
import { assertNever } from '../errors.js';
import { ProtoWriter } from '../proto-writer.js';
import type { DeleteRangeResponse, KeyValue, PutResponse, RangeResponse, ResponseOp, TxnResponse } from '../mvcc/types.js';

/** The parts of etcdserverpb.ResponseHeader that do not change per response. */
export interface HeaderFields {
  readonly clusterId: bigint;
  readonly memberId: bigint;
  readonly raftTerm: number;
}

/** Fields 1 and 2 (cluster and member id) of the last header written: the same on every answer. */
let idFields: { clusterId: bigint; memberId: bigint; bytes: Uint8Array } | undefined;

function idFieldBytes(header: HeaderFields): Uint8Array {
  if (idFields === undefined || idFields.clusterId !== header.clusterId || idFields.memberId !== header.memberId) {
    const ids = new ProtoWriter();
    ids.bigVarintField(1, header.clusterId);
    ids.bigVarintField(2, header.memberId);
    idFields = { clusterId: header.clusterId, memberId: header.memberId, bytes: ids.finish().slice() };
  }
  return idFields.bytes;
}

/** etcdserverpb.ResponseHeader (proto3: zero fields left out). */
export function headerMessage(header: HeaderFields, revision: number): Uint8Array {
  const head = new ProtoWriter();
  head.raw(idFieldBytes(header));
  head.varintField(3, revision);
  head.varintField(4, header.raftTerm);
  return head.finish();
}

/** etcdserverpb.LeaseKeepAliveResponse: header, ID, TTL. */
export function encodeKeepAliveResponse(header: HeaderFields, revision: number, id: bigint, ttl: number): Buffer {
  const out = new ProtoWriter();
  out.message(1, headerMessage(header, revision));
  out.bigVarintField(2, BigInt.asUintN(64, id));
  // int64 TTL: an unknown lease answers 0; a negative one would be ten bytes of two's complement.
  if (ttl < 0) out.bigVarintField(3, BigInt.asUintN(64, BigInt(ttl)));
  else out.varintField(3, ttl);
  return asBuffer(out.finish());
}

/** mvccpb.KeyValue. */
export function keyValueMessage(kv: KeyValue): Uint8Array {
  const bytes = new ProtoWriter();
  bytes.bytesField(1, kv.key);
  bytes.varintField(2, kv.createRevision);
  bytes.varintField(3, kv.modRevision);
  bytes.varintField(4, kv.version);
  bytes.bytesField(5, kv.value);
  if (kv.lease !== 0n) bytes.bigVarintField(6, BigInt.asUintN(64, kv.lease));
  return bytes.finish();
}

export function encodeRangeResponse(header: HeaderFields, revision: number, response: RangeResponse): Buffer {
  return asBuffer(rangeBody(headerMessage(header, revision), response));
}

export function encodePutResponse(header: HeaderFields, revision: number, response: PutResponse): Buffer {
  return asBuffer(putBody(headerMessage(header, revision), response));
}

export function encodeDeleteRangeResponse(header: HeaderFields, revision: number, response: DeleteRangeResponse): Buffer {
  return asBuffer(deleteRangeBody(headerMessage(header, revision), response));
}

/**
 * etcdserverpb.TxnResponse. Nested responses carry a header holding only the txn's revision, as
 * etcd's do (clientv3 reads it from a nested Range); a nested Txn's own header is empty, as in
 * etcd 3.4, while the range/put/delete answers inside it, at any depth, keep the revision.
 */
export function encodeTxnResponse(header: HeaderFields, revision: number, response: TxnResponse, nestedRevision: number): Buffer {
  const nested = new ProtoWriter();
  nested.varintField(3, nestedRevision);
  return asBuffer(txnBody(headerMessage(header, revision), response, nested.finish()));
}

const NO_FIELDS = new Uint8Array(0);

function rangeBody(head: Uint8Array, r: RangeResponse): Uint8Array {
  const out = new ProtoWriter();
  out.message(1, head);
  for (const kv of r.kvs) out.message(2, keyValueMessage(kv));
  if (r.more) out.varintField(3, 1);
  out.varintField(4, r.count);
  return out.finish();
}

function putBody(head: Uint8Array, r: PutResponse): Uint8Array {
  const out = new ProtoWriter();
  out.message(1, head);
  if (r.prevKv !== undefined) out.message(2, keyValueMessage(r.prevKv));
  return out.finish();
}

function deleteRangeBody(head: Uint8Array, r: DeleteRangeResponse): Uint8Array {
  const out = new ProtoWriter();
  out.message(1, head);
  out.varintField(2, r.deleted);
  for (const kv of r.prevKvs) out.message(3, keyValueMessage(kv));
  return out.finish();
}

function txnBody(head: Uint8Array, r: TxnResponse, nestedHead: Uint8Array): Uint8Array {
  const out = new ProtoWriter();
  out.message(1, head);
  if (r.succeeded) out.varintField(2, 1);
  for (const op of r.responses) out.message(3, responseOp(op, nestedHead));
  return out.finish();
}

/** etcdserverpb.ResponseOp: one of its four answers. */
function responseOp(op: ResponseOp, nestedHead: Uint8Array): Uint8Array {
  const out = new ProtoWriter();
  switch (op.type) {
    case 'range':
      out.message(1, rangeBody(nestedHead, op.response));
      break;
    case 'put':
      out.message(2, putBody(nestedHead, op.response));
      break;
    case 'deleteRange':
      out.message(3, deleteRangeBody(nestedHead, op.response));
      break;
    case 'txn':
      out.message(4, txnBody(NO_FIELDS, op.response, nestedHead));
      break;
    default:
      return assertNever(op);
  }
  return out.finish();
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
