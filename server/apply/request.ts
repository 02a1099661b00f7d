/**
 * Log payload encoding: a mutation in its wire form (proto/gavel/internal.proto) with the
 * proposer's request id. The API layer validates and proposes; every member decodes and
 * applies the same bytes, so apply must be deterministic (no clock, no randomness).
 */
import { messageCodec, ownBytes } from '../proto.js';
import { ProtoWriter } from '../proto-writer.js';
import type { WireInternalRequest, WirePutRequest } from '../api/wire.js';

export type Mutation = Omit<WireInternalRequest, 'id' | 'request'>;

let codec: ReturnType<typeof messageCodec<WireInternalRequest>> | undefined;

function internalCodec(): ReturnType<typeof messageCodec<WireInternalRequest>> {
  codec ??= messageCodec<WireInternalRequest>('gavel.internal.v1.InternalRequest');
  return codec;
}

export function encodeRequest(id: bigint, mutation: Mutation): Uint8Array {
  const keys = Object.keys(mutation);
  const header = mutation.header;
  if (mutation.put && handEncodable(mutation.put) && keys.length <= 2 && (keys.length === 1 || header === undefined || header === null || typeof header.username === 'string')) {
    return encodePut(id, mutation.put, header);
  }
  return internalCodec().encode({ ...mutation, id: id.toString() } as WireInternalRequest);
}

/** A Put as the gRPC layer decodes it (bytes as Buffers, int64 as decimal strings); fields may be absent. */
function handEncodable(put: Partial<WirePutRequest>): put is WirePutRequest {
  const lease: unknown = put.lease;
  return (
    put.key instanceof Uint8Array &&
    (put.value === undefined || put.value === null || put.value instanceof Uint8Array) &&
    (lease === undefined || lease === null || (typeof lease === 'string' && /^-?\d{1,20}$/.test(lease)) || (typeof lease === 'number' && Number.isSafeInteger(lease)) || typeof lease === 'bigint')
  );
}

/**
 * The most common entry, a client's Put, written by hand: through protobufjs it was the largest
 * single cost of proposing (object conversion, int64 strings through Long). The bytes decode to
 * the same InternalRequest (a unit test compares with protobufjs's encoding).
 */
function encodePut(id: bigint, put: WirePutRequest, header: { username: string } | null | undefined): Uint8Array {
  const body = new ProtoWriter();
  body.bytesField(1, put.key);
  if (put.value !== undefined && put.value !== null) body.bytesField(2, put.value);
  const lease = put.lease === undefined || put.lease === null ? 0n : BigInt(put.lease);
  if (lease !== 0n) body.bigVarintField(3, BigInt.asUintN(64, lease));
  if (put.prev_kv) body.varintField(4, 1);
  if (put.ignore_value) body.varintField(5, 1);
  if (put.ignore_lease) body.varintField(6, 1);
  const out = new ProtoWriter();
  out.bigVarintField(1, id);
  out.message(3, body.finish());
  if (header !== undefined && header !== null) {
    const fields = new ProtoWriter();
    fields.bytesField(2, Buffer.from(header.username, 'utf8'));
    out.message(100, fields.finish());
  }
  // A log entry outlives the call: never a view into Node's shared buffer pool.
  return ownBytes(out.finish());
}

export function decodeRequest(data: Uint8Array): WireInternalRequest {
  return internalCodec().decode(data);
}
