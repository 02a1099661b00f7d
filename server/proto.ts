/**
 * Loads the .proto files in proto/: gRPC service definitions through @grpc/proto-loader, and
 * protobufjs types for the bytes we write ourselves (Raft log payloads).
 *
 * Wire objects keep the proto field names (keepCase), carry int64 as decimal strings (so
 * 63-bit lease ids and revisions never lose precision) and bytes as Buffers.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

export const WIRE_OPTIONS = { keepCase: true, longs: String, enums: Number, bytes: Buffer, defaults: true, oneofs: true } as const;

export const PROTO_FILES = [
  'etcdserverpb/rpc.proto',
  'v3lockpb/v3lock.proto',
  'v3electionpb/v3election.proto',
  'gavel/coordinator.proto',
  'gavel/internal.proto',
  'gavel/raft.proto',
] as const;

/** The proto/ directory, found from both server/*.ts (tests) and dist/server/*.js (built). */
export function protoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, 'etcdserverpb', 'rpc.proto'))) return candidate;
    dir = resolve(dir, '..');
  }
  throw new Error('cannot find the proto/ directory');
}

let cachedGrpc: grpc.GrpcObject | undefined;

/** The gRPC object tree: etcdserverpb.KV, v3lockpb.Lock, v3electionpb.Election, ... */
export function loadGrpc(): grpc.GrpcObject {
  if (cachedGrpc === undefined) {
    const definition = protoLoader.loadSync([...PROTO_FILES], { ...WIRE_OPTIONS, includeDirs: [protoDir()] });
    cachedGrpc = grpc.loadPackageDefinition(definition);
  }
  return cachedGrpc;
}

export function serviceDefinition(path: string): grpc.ServiceDefinition {
  let node: unknown = loadGrpc();
  for (const part of path.split('.')) node = (node as Record<string, unknown>)[part];
  const service = (node as { service?: grpc.ServiceDefinition } | undefined)?.service;
  if (service === undefined) throw new Error(`no gRPC service ${path}`);
  if (path === 'etcdserverpb.KV') return withPreEncodedResponses(service, ['Range', 'Put', 'DeleteRange', 'Txn']);
  if (path === 'etcdserverpb.Watch') return withPreEncodedResponses(service, ['Watch']);
  if (path === 'etcdserverpb.Lease') return withPreEncodedResponses(service, ['LeaseKeepAlive']);
  return service;
}

/**
 * The server writes KV answers, watch events and keep-alive answers already encoded
 * (api/response-encoding.ts; api/watch-encoding.ts: one encoding per event, shared by every
 * watcher): bytes pass through the serializer, objects are encoded.
 */
function withPreEncodedResponses(service: grpc.ServiceDefinition, methods: readonly string[]): grpc.ServiceDefinition {
  const result: Record<string, grpc.MethodDefinition<unknown, unknown>> = { ...service };
  for (const method of methods) {
    const definition = service[method];
    if (definition === undefined) throw new Error(`no method ${method}`);
    const serialize = definition.responseSerialize;
    const responseSerialize = (value: unknown): Buffer => (value instanceof Uint8Array ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : serialize(value));
    result[method] = { ...definition, responseSerialize };
  }
  return result as grpc.ServiceDefinition;
}

let cachedRoot: protobuf.Root | undefined;

export function protobufRoot(): protobuf.Root {
  if (cachedRoot === undefined) {
    const root = new protobuf.Root();
    const base = protoDir();
    root.resolvePath = (_origin, target) => (target.startsWith('/') ? target : join(base, target));
    root.loadSync([...PROTO_FILES], { keepCase: true });
    cachedRoot = root;
  }
  return cachedRoot;
}

/** A protobufjs message type with plain-object encode/decode in the wire object form. */
export interface MessageCodec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

export function messageCodec<T>(typeName: string): MessageCodec<T> {
  const type = protobufRoot().lookupType(typeName);
  return {
    encode(value: T): Uint8Array {
      return ownBytes(type.encode(type.fromObject(value as Record<string, unknown>)).finish());
    },
    decode(bytes: Uint8Array): T {
      return type.toObject(type.decode(bytes), WIRE_OPTIONS) as T;
    },
  };
}

/**
 * The bytes in an ArrayBuffer of their own. protobufjs takes a small message's buffer from Node's
 * shared 8 KiB pool, and a view that outlives the call keeps its whole slab alive: a Raft log of
 * 100,000 entries of a few hundred bytes each held hundreds of MB that way.
 */
export function ownBytes(bytes: Uint8Array): Uint8Array {
  return bytes.byteLength === bytes.buffer.byteLength ? bytes : Uint8Array.prototype.slice.call(bytes);
}
