/**
 * Log payload encoding: a mutation in its wire form (proto/gavel/internal.proto) with the
 * proposer's request id. The API layer validates and proposes; every member decodes and
 * applies the same bytes, so apply must be deterministic (no clock, no randomness).
 */
import { messageCodec } from '../proto.js';
import type { WireInternalRequest } from '../api/wire.js';

export type Mutation = Omit<WireInternalRequest, 'id' | 'request'>;

let codec: ReturnType<typeof messageCodec<WireInternalRequest>> | undefined;

function internalCodec(): ReturnType<typeof messageCodec<WireInternalRequest>> {
  codec ??= messageCodec<WireInternalRequest>('gavel.internal.v1.InternalRequest');
  return codec;
}

export function encodeRequest(id: bigint, mutation: Mutation): Uint8Array {
  return internalCodec().encode({ ...mutation, id: id.toString() } as WireInternalRequest);
}

export function decodeRequest(data: Uint8Array): WireInternalRequest {
  return internalCodec().decode(data);
}
