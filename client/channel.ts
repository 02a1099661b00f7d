/**
 * The one seam between the client library and a server: unary calls and streams addressed by
 * service and method, carrying proto-loader wire objects. GrpcChannel talks to members over
 * the network; the server implements the same interface in-process, so its Lock and Election
 * services run the very recipes in this directory (as etcd's v3lock runs clientv3's).
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { serviceDefinition } from '../server/proto.js';

export type ServiceName =
  | 'etcdserverpb.KV'
  | 'etcdserverpb.Watch'
  | 'etcdserverpb.Lease'
  | 'etcdserverpb.Cluster'
  | 'etcdserverpb.Maintenance'
  | 'v3lockpb.Lock'
  | 'v3electionpb.Election'
  | 'gavel.v1.Coordinator'
  | 'etcdserverpb.Auth';

export interface ChannelCallOptions {
  readonly signal?: AbortSignal | undefined;
  /** Absolute deadline, ms since the epoch. */
  readonly deadline?: number | undefined;
}

/** The failure of a call or stream: a gRPC status code and its text. */
export interface CallStatus {
  readonly code: number;
  readonly details: string;
}

/**
 * A bidirectional (or server-side) stream. Events: 'data' (a wire message), 'error'
 * (a CallStatus; ends the stream), 'end' (the server finished cleanly).
 */
export interface ChannelStream extends EventEmitter {
  write(message: object): void;
  /** Half-close: no more messages from this side. */
  end(): void;
  /** Abandon the stream; no further events except possibly one 'error'. */
  cancel(): void;
  /** Flow control: stop and restart delivering 'data' (a slow consumer). */
  pause(): void;
  resume(): void;
}

export interface Channel {
  unary(service: ServiceName, method: string, request: object, options: ChannelCallOptions): Promise<unknown>;
  /** Opens a bidi stream, or a server stream when `request` is given. */
  stream(service: ServiceName, method: string, options: ChannelCallOptions, request?: object): ChannelStream;
  /** Called after a failure that suggests the current member is unhealthy: try another. */
  failover(): void;
  /** A short name of the member calls go to now, for errors and logs. */
  readonly target: string;
  /** The auth token sent with every later call (etcd's `token` metadata); undefined sends none. */
  setToken?(token: string | undefined): void;
  close(): void;
}

export interface TlsOptions {
  /** PEM of the CA that signed the members' certificates (file path or contents). */
  readonly ca?: string | Buffer;
  /** Client certificate and key for members started with --client-cert-auth. */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
}

function pem(value: string | Buffer | undefined): Buffer | null {
  if (value === undefined) return null;
  if (Buffer.isBuffer(value)) return value;
  return value.includes('-----BEGIN') ? Buffer.from(value) : readFileSync(value);
}

/** "http://host:port", "https://host:port" or "host:port" → the address and whether it is TLS. */
export function parseEndpoint(endpoint: string): { address: string; secure: boolean } {
  const match = /^(https?):\/\/([^/]+)\/?$/.exec(endpoint);
  if (match) return { address: match[2] ?? '', secure: match[1] === 'https' };
  if (/^[^/]+:\d+$/.test(endpoint)) return { address: endpoint, secure: false };
  throw new TypeError(`invalid endpoint ${JSON.stringify(endpoint)}: expected host:port or http(s)://host:port`);
}

/** Talks to one member at a time over @grpc/grpc-js, moving to the next one on failover(). */
export class GrpcChannel implements Channel {
  private readonly clients: (grpc.Client | undefined)[];
  private readonly addresses: { address: string; secure: boolean }[];
  private current = 0;
  private closed = false;
  private token: string | undefined;

  constructor(endpoints: readonly string[], private readonly tls: TlsOptions = {}) {
    if (endpoints.length === 0) throw new TypeError('at least one endpoint is required');
    this.addresses = endpoints.map(parseEndpoint);
    this.clients = this.addresses.map(() => undefined);
    // Spread clients over the members instead of all starting at the first.
    this.current = Math.floor(Math.random() * endpoints.length);
  }

  get target(): string {
    return this.addresses[this.current]?.address ?? '?';
  }

  private client(): grpc.Client {
    if (this.closed) throw Object.assign(new Error('client closed'), { code: grpc.status.CANCELLED, details: 'client closed' });
    const existing = this.clients[this.current];
    if (existing !== undefined) return existing;
    const endpoint = this.addresses[this.current];
    if (endpoint === undefined) throw new Error('no endpoint');
    const credentials = endpoint.secure
      ? grpc.credentials.createSsl(pem(this.tls.ca), pem(this.tls.key), pem(this.tls.cert))
      : grpc.credentials.createInsecure();
    const client = new grpc.Client(endpoint.address, credentials, {
      // Notice a dead member within seconds, not minutes.
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 2_000,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      // Nothing reads channelz; its per-call bookkeeping is pure cost.
      'grpc.enable_channelz': 0,
    });
    this.clients[this.current] = client;
    return client;
  }

  unary(service: ServiceName, method: string, request: object, options: ChannelCallOptions): Promise<unknown> {
    const definition = methodDefinition(service, method);
    return new Promise((resolve, reject) => {
      let call: grpc.ClientUnaryCall;
      try {
        call = this.client().makeUnaryRequest(
          definition.path,
          definition.requestSerialize,
          definition.responseDeserialize,
          request,
          this.metadata(),
          options.deadline === undefined ? {} : { deadline: options.deadline },
          (error, response) => {
            options.signal?.removeEventListener('abort', onAbort);
            if (error) reject(error);
            else resolve(response);
          },
        );
      } catch (error) {
        reject(error);
        return;
      }
      const onAbort = (): void => call.cancel();
      options.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  stream(service: ServiceName, method: string, options: ChannelCallOptions, request?: object): ChannelStream {
    const definition = methodDefinition(service, method);
    const callOptions = options.deadline === undefined ? {} : { deadline: options.deadline };
    const client = this.client();
    const call =
      request === undefined
        ? client.makeBidiStreamRequest(definition.path, definition.requestSerialize, definition.responseDeserialize, this.metadata(), callOptions)
        : client.makeServerStreamRequest(definition.path, definition.requestSerialize, definition.responseDeserialize, request, this.metadata(), callOptions);
    const stream = new EventEmitter() as ChannelStream;
    let finished = false;
    call.on('data', (message: unknown) => stream.emit('data', message));
    call.on('error', (error: grpc.ServiceError) => {
      if (finished) return;
      finished = true;
      stream.emit('error', { code: error.code, details: error.details });
    });
    call.on('end', () => {
      // grpc-js reports a failed stream as 'error' before 'end'; a clean finish only as 'end'.
      setImmediate(() => {
        if (finished) return;
        finished = true;
        stream.emit('end');
      });
    });
    stream.write = (message: object) => {
      if (!finished && 'write' in call) (call as grpc.ClientDuplexStream<object, unknown>).write(message);
    };
    stream.end = () => {
      if ('end' in call) (call as grpc.ClientDuplexStream<object, unknown>).end();
    };
    stream.cancel = () => {
      finished = true;
      call.cancel();
    };
    stream.pause = () => call.pause();
    stream.resume = () => call.resume();
    const onAbort = (): void => stream.cancel();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    return stream;
  }

  setToken(token: string | undefined): void {
    this.token = token;
  }

  private metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    if (this.token !== undefined) metadata.set('token', this.token);
    return metadata;
  }

  failover(): void {
    if (this.addresses.length > 1) this.current = (this.current + 1) % this.addresses.length;
  }

  close(): void {
    this.closed = true;
    for (const client of this.clients) client?.close();
  }
}

const definitions = new Map<string, grpc.MethodDefinition<object, unknown>>();

function methodDefinition(service: ServiceName, method: string): grpc.MethodDefinition<object, unknown> {
  const key = `${service}/${method}`;
  let definition = definitions.get(key);
  if (definition === undefined) {
    definition = serviceDefinition(service)[method] as grpc.MethodDefinition<object, unknown> | undefined;
    if (definition === undefined) throw new Error(`no method ${key}`);
    definitions.set(key, definition);
  }
  return definition;
}
