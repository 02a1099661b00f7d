/**
 * The gavel.raft.v1.Peer service as gRPC method definitions, built from proto/gavel/raft.proto.
 *
 * The sender encodes stream batches and snapshot chunks itself and hands gRPC the bytes, and the
 * receiver's deserializer keeps the frame size next to the decoded value: both ends then know
 * the exact bytes on the wire for the sentBytes/receivedBytes metrics without encoding twice.
 */
import type * as grpc from '@grpc/grpc-js';
import { assert } from '../errors.js';
import { messageCodec, serviceDefinition, type MessageCodec } from '../proto.js';
import type { Uint64, WireRaftMessage } from './codec.js';

export type Int64 = string;

export interface WireMessageBatch {
  messages: WireRaftMessage[];
  seq: Uint64;
  want_ack: boolean;
}

export interface WireStreamAck {
  seq: Uint64;
}

export interface WireSnapshotChunk {
  message: WireRaftMessage | null;
  total_bytes: Uint64;
  offset: Uint64;
  data: Uint8Array;
}

export interface WireLeaseRenewRequest {
  id: Int64;
}

export interface WireLeaseRenewResponse {
  ttl: Int64;
}

export interface WireLeaseTtlRequest {
  id: Int64;
  keys: boolean;
}

export interface WireLeaseTtlResponse {
  ttl: Int64;
  granted_ttl: Int64;
  keys: Uint8Array[];
}

/** A decoded request with the size of the frame it came in. */
export interface Framed<T> {
  readonly bytes: number;
  readonly value: T;
}

export const METADATA_CLUSTER_ID = 'gavel-cluster-id';
export const METADATA_FROM = 'gavel-from';
export const METADATA_TO = 'gavel-to';

/** The client half of a method definition, typed. */
export interface ClientMethod<Req, Res> {
  readonly path: string;
  readonly requestSerialize: (value: Req) => Buffer;
  readonly responseDeserialize: (bytes: Buffer) => Res;
}

export interface PeerClientMethods {
  readonly Stream: ClientMethod<Uint8Array, WireStreamAck>;
  readonly SendSnapshot: ClientMethod<Uint8Array, object>;
  readonly LeaseRenew: ClientMethod<WireLeaseRenewRequest, WireLeaseRenewResponse>;
  readonly LeaseTimeToLive: ClientMethod<WireLeaseTtlRequest, WireLeaseTtlResponse>;
}

export interface PeerDefinitions {
  readonly client: PeerClientMethods;
  /** For grpc.Server.addService. */
  readonly server: grpc.ServiceDefinition;
  readonly batchCodec: MessageCodec<WireMessageBatch>;
  readonly chunkCodec: MessageCodec<WireSnapshotChunk>;
}

let cached: PeerDefinitions | undefined;

export function peerDefinitions(): PeerDefinitions {
  if (cached !== undefined) return cached;
  const base = serviceDefinition('gavel.raft.v1.Peer');
  const method = (name: string): grpc.MethodDefinition<unknown, unknown> => {
    const found = base[name];
    assert(found !== undefined, `raft.proto has no Peer.${name}`);
    return found;
  };
  // Pre-encoded bytes go out as they are (a view, no copy).
  const raw = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const framed = (m: grpc.MethodDefinition<unknown, unknown>) => (buffer: Buffer): Framed<unknown> => ({ bytes: buffer.length, value: m.requestDeserialize(buffer) });
  // Stream batches are decoded by the receiver itself (wire.ts), so a bad one is its error to report.
  const rawFrame = (buffer: Buffer): Framed<Uint8Array> => ({ bytes: buffer.length, value: buffer });
  const stream = method('Stream');
  const snapshot = method('SendSnapshot');
  cached = {
    client: {
      Stream: { path: stream.path, requestSerialize: raw, responseDeserialize: typed<WireStreamAck>(stream.responseDeserialize) },
      SendSnapshot: { path: snapshot.path, requestSerialize: raw, responseDeserialize: typed<object>(snapshot.responseDeserialize) },
      LeaseRenew: typedMethod<WireLeaseRenewRequest, WireLeaseRenewResponse>(method('LeaseRenew')),
      LeaseTimeToLive: typedMethod<WireLeaseTtlRequest, WireLeaseTtlResponse>(method('LeaseTimeToLive')),
    },
    server: {
      ...base,
      Stream: { ...stream, requestDeserialize: rawFrame },
      SendSnapshot: { ...snapshot, requestDeserialize: framed(snapshot) },
    },
    batchCodec: messageCodec<WireMessageBatch>('gavel.raft.v1.MessageBatch'),
    chunkCodec: messageCodec<WireSnapshotChunk>('gavel.raft.v1.SnapshotChunk'),
  };
  return cached;
}

// proto-loader's definitions are untyped: these are the one place where the Wire* interfaces
// above are asserted to describe the objects it produces (keepCase, longs String, bytes Buffer).
function typed<T>(deserialize: (bytes: Buffer) => unknown): (bytes: Buffer) => T {
  return deserialize as (bytes: Buffer) => T;
}

function typedMethod<Req, Res>(m: grpc.MethodDefinition<unknown, unknown>): ClientMethod<Req, Res> {
  return { path: m.path, requestSerialize: m.requestSerialize, responseDeserialize: typed<Res>(m.responseDeserialize) };
}
