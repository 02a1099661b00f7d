/**
 * Response parts written by hand (server/proto-writer.ts) for the answers a member sends most
 * often (watch events, lease keep-alives): no wire object, no int64 strings turned into Longs,
 * one encoding. Field numbers are rpc.proto's; unit tests read the bytes back with protobufjs.
 */
import { ProtoWriter } from '../proto-writer.js';

/** The parts of etcdserverpb.ResponseHeader that do not change per response. */
export interface HeaderFields {
  readonly clusterId: bigint;
  readonly memberId: bigint;
  readonly raftTerm: number;
}

/** etcdserverpb.ResponseHeader (proto3: zero fields left out). */
export function headerMessage(header: HeaderFields, revision: number): Uint8Array {
  const head = new ProtoWriter();
  head.bigVarintField(1, header.clusterId);
  head.bigVarintField(2, header.memberId);
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
  const bytes = out.finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
