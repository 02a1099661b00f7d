/**
 * A raw gRPC client for the etcd v3 API, built from our own proto/ files with @grpc/proto-loader.
 * It reaches what etcdctl and etcd3 hide (bad enum values, exact status codes, the watch and
 * keep-alive streams) and drives the crash test and the benchmark. int64 fields arrive as
 * decimal strings (longs: String); requests accept numbers or strings.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { repoRoot } from './gavel.js';

export interface ResponseHeader {
  cluster_id: string;
  member_id: string;
  revision: string;
  raft_term: string;
}

export interface KeyValue {
  key: Buffer;
  create_revision: string;
  mod_revision: string;
  version: string;
  value: Buffer;
  lease: string;
}

export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValue[];
  more: boolean;
  count: string;
}

export interface PutResponse {
  header: ResponseHeader;
  prev_kv: KeyValue | null;
}

export interface WatchEvent {
  type: number; // 0 PUT, 1 DELETE
  kv: KeyValue;
  prev_kv: KeyValue | null;
}

export interface WatchResponse {
  header: ResponseHeader;
  watch_id: string;
  created: boolean;
  canceled: boolean;
  compact_revision: string;
  cancel_reason: string;
  fragment: boolean;
  events: WatchEvent[];
}

export interface LeaseKeepAliveResponse {
  header: ResponseHeader;
  ID: string;
  TTL: string;
}

export type Service = 'KV' | 'Watch' | 'Lease' | 'Cluster' | 'Maintenance';

type UnaryMethod = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: unknown) => void) => grpc.ClientUnaryCall;
type DuplexMethod = (metadata?: grpc.Metadata, options?: grpc.CallOptions) => grpc.ClientDuplexStream<unknown, unknown>;

let cachedPackage: grpc.GrpcObject | undefined;

/** Loads proto/etcdserverpb/rpc.proto with the options the rest of the project uses. */
export function etcdPackage(): grpc.GrpcObject {
  if (cachedPackage !== undefined) return cachedPackage;
  const protoDir = join(repoRoot(), 'proto');
  const definition = protoLoader.loadSync('etcdserverpb/rpc.proto', {
    includeDirs: [protoDir],
    keepCase: true,
    longs: String,
    enums: Number,
    defaults: true,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition)['etcdserverpb'];
  if (loaded === undefined || typeof loaded !== 'object') throw new Error('etcdserverpb missing from proto/etcdserverpb/rpc.proto');
  cachedPackage = loaded as grpc.GrpcObject;
  return cachedPackage;
}

/** One channel to one endpoint, with a client per service. */
export class EtcdGrpcClient {
  private readonly clients = new Map<Service, grpc.Client>();

  constructor(readonly endpoint: string) {
    const pkg = etcdPackage();
    let channel: grpc.Channel | undefined;
    for (const service of ['KV', 'Watch', 'Lease', 'Cluster', 'Maintenance'] as const) {
      const ctor = pkg[service] as grpc.ServiceClientConstructor | undefined;
      if (ctor === undefined) throw new Error(`service ${service} missing from rpc.proto`);
      const client: grpc.Client = channel === undefined
        ? new ctor(endpoint, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 * 1024 * 1024 })
        : new ctor(endpoint, grpc.credentials.createInsecure(), { channelOverride: channel });
      channel ??= client.getChannel() as grpc.Channel;
      this.clients.set(service, client);
    }
  }

  private method(service: Service, name: string): { client: grpc.Client; fn: unknown } {
    const client = this.clients.get(service);
    if (client === undefined) throw new Error(`no client for ${service}`);
    const fn: unknown = (client as unknown as Record<string, unknown>)[name];
    if (typeof fn !== 'function') throw new Error(`${service}.${name} is not a method`);
    return { client, fn };
  }

  /** A unary call with a deadline (default 5 s). Rejects with the grpc.ServiceError. */
  unary<T>(service: Service, name: string, request: object, deadlineMs = 5_000): Promise<T> {
    const { client, fn } = this.method(service, name);
    return new Promise<T>((resolve, reject) => {
      (fn as UnaryMethod).call(client, request, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (error, response) => {
        if (error) reject(error);
        else resolve(response as T);
      });
    });
  }

  /** A bidirectional stream (Watch.Watch, Lease.LeaseKeepAlive). */
  duplex(service: Service, name: string): grpc.ClientDuplexStream<unknown, unknown> {
    const { client, fn } = this.method(service, name);
    return (fn as DuplexMethod).call(client);
  }

  put(key: string, value: string | Buffer, extra: object = {}): Promise<PutResponse> {
    return this.unary<PutResponse>('KV', 'Put', { key: Buffer.from(key), value: typeof value === 'string' ? Buffer.from(value) : value, ...extra });
  }

  range(key: string, extra: object = {}): Promise<RangeResponse> {
    return this.unary<RangeResponse>('KV', 'Range', { key: Buffer.from(key), ...extra });
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
  }
}

/** `prefix` + 1 in the last byte: the range_end that selects every key starting with prefix. */
export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let index = end.length - 1; index >= 0; index -= 1) {
    const byte = end[index] as number;
    if (byte < 0xff) {
      end[index] = byte + 1;
      return end.subarray(0, index + 1);
    }
  }
  return Buffer.from([0]);
}

export function isServiceError(error: unknown): error is grpc.ServiceError {
  return error instanceof Error && typeof (error as { code?: unknown }).code === 'number' && typeof (error as { details?: unknown }).details === 'string';
}

/** The status code and details of a rejected call, for exact assertions. */
export async function grpcFailure(promise: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await promise;
  } catch (error) {
    if (isServiceError(error)) return { code: error.code, details: error.details };
    throw error;
  }
  throw new Error('expected the call to fail, it succeeded');
}

export { grpc };
