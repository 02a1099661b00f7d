/**
 * The client library's Channel, served in-process by this member's own service handlers (as
 * etcd's v3lock and v3election use an in-process clientv3). Messages are encoded and decoded
 * with the methods' protobuf codecs on the way, so handlers and the client see exactly the
 * objects a network call would give them.
 */
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { Channel, ChannelCallOptions, ChannelStream, ServiceName } from '../../client/channel.js';
import { serviceDefinition } from '../proto.js';
import { IN_PROCESS_CALLER } from './caller.js';

type Handler = (call: unknown, callback?: (error: grpc.ServiceError | null, value?: unknown) => void) => void;

interface Method {
  readonly handler: Handler;
  readonly definition: grpc.MethodDefinition<unknown, unknown>;
}

/** A copy of a message as the other side of a network call would decode it. */
function requestCopy(method: Method, message: unknown): unknown {
  return method.definition.requestDeserialize(method.definition.requestSerialize(message));
}
function responseCopy(method: Method, message: unknown): unknown {
  return method.definition.responseDeserialize(method.definition.responseSerialize(message));
}

function status(code: grpc.status, details: string): { code: grpc.status; details: string } {
  return { code, details };
}

/**
 * What handlers see of a call: its request, metadata, cancellation and (for streams) I/O, with
 * grpc-js's back-pressure contract: write() answers false while the client side is paused (its
 * consumer is slow), and 'drain' follows its resume; 'finish' follows end().
 */
class ServerSide extends EventEmitter {
  /** The user of the client whose Lock or Election call made this one (server/api/caller.ts). */
  readonly [IN_PROCESS_CALLER]: string | undefined;
  cancelled = false;
  private clientPaused = false;
  constructor(
    readonly request: unknown,
    private readonly toClient: ToClient,
    caller: string | undefined,
    readonly metadata: grpc.Metadata = new grpc.Metadata(),
    private readonly peer: string = 'in-process',
  ) {
    super();
    this[IN_PROCESS_CALLER] = caller;
    // Handlers end a stream with an error by emitting 'error' (failStream), as grpc-js expects.
    this.on('error', (error: { code?: number; details?: string; message?: string }) => this.destroy(error));
  }
  write(message: unknown, callback?: () => void): boolean {
    if (!this.cancelled) this.toClient.data(message);
    // Taken at once: the client side queues it (and pauses us when its consumer falls behind).
    if (callback !== undefined) queueMicrotask(callback);
    return !this.clientPaused;
  }
  end(): void {
    if (!this.cancelled) this.toClient.end();
    queueMicrotask(() => this.emit('finish'));
  }
  /** The client side's pause()/resume(). */
  setClientPaused(paused: boolean): void {
    const resumed = this.clientPaused && !paused;
    this.clientPaused = paused;
    if (resumed) this.emit('drain');
  }
  destroy(error?: { code?: number; details?: string; message?: string }): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.toClient.error(status(error?.code ?? grpc.status.INTERNAL, error?.details ?? error?.message ?? 'stream destroyed'));
    this.emit('close');
  }
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.emit('cancelled');
    this.emit('close');
  }
  getPeer(): string {
    return this.peer;
  }
  /**
   * The handler's stream output stops (and restarts) reading requests when its client is slow:
   * told to the client side, which stops sending (the JSON gateway stops reading the HTTP body).
   */
  pause(): void {
    this.toClient.flow?.(true);
  }
  resume(): void {
    this.toClient.flow?.(false);
  }
}

interface ToClient {
  data(message: unknown): void;
  end(): void;
  error(e: { code: number; details: string }): void;
  /** The server stopped (true) or restarted (false) reading requests. */
  flow?(paused: boolean): void;
}

export class InProcessChannel implements Channel {
  readonly target = 'in-process';
  private readonly methods: Map<string, Method>;
  /** Shared by the channel and its views: closing the channel closes them all. */
  private readonly state: { closed: boolean };
  private readonly caller: string | undefined;
  private readonly metadata: grpc.Metadata | undefined;
  /** What the handlers' call.getPeer() answers (the JSON gateway's HTTP client address). */
  private readonly peer: string | undefined;
  private readonly isView: boolean;

  constructor(services: ReadonlyMap<ServiceName, grpc.UntypedServiceImplementation>, viewOf?: { channel: InProcessChannel; caller: string | undefined; metadata?: grpc.Metadata; peer?: string }) {
    this.methods = viewOf?.channel.methods ?? new Map<string, Method>();
    this.state = viewOf?.channel.state ?? { closed: false };
    this.caller = viewOf?.caller;
    this.metadata = viewOf?.metadata;
    this.peer = viewOf?.peer;
    this.isView = viewOf !== undefined;
    if (viewOf !== undefined) return;
    for (const [service, implementation] of services) {
      const definition = serviceDefinition(service);
      for (const [name, handler] of Object.entries(implementation)) {
        const method = definition[name];
        if (method !== undefined) this.methods.set(`${service}/${name}`, { handler: handler as Handler, definition: method as grpc.MethodDefinition<unknown, unknown> });
      }
    }
  }

  /**
   * This channel with its calls made as `caller`: the Lock and Election services run their recipes
   * through it, so the KV, Lease and Watch calls are checked against their client's permissions,
   * not the member's. Closing a view closes nothing.
   */
  as(caller: string | undefined): InProcessChannel {
    return new InProcessChannel(new Map(), { channel: this, caller });
  }

  /**
   * This channel with every call carrying `metadata`, as a network call's would (the JSON
   * gateway's `authorization` header): the handlers resolve the caller from it themselves.
   * `peer` names the connection the calls came in on (limits per connection, as the password
   * gate's, count the gateway's HTTP clients one by one).
   */
  withMetadata(metadata: grpc.Metadata, peer?: string): InProcessChannel {
    return new InProcessChannel(new Map(), { channel: this, caller: this.caller, metadata, peer });
  }

  private method(service: ServiceName, name: string): Method {
    const method = this.methods.get(`${service}/${name}`);
    if (method === undefined) throw status(grpc.status.UNIMPLEMENTED, `${service}/${name} is not served in-process`);
    if (this.state.closed) throw status(grpc.status.UNAVAILABLE, 'etcdserver: server stopped');
    return method;
  }

  unary(service: ServiceName, name: string, request: object, options: ChannelCallOptions): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const method = this.method(service, name);
      let settled = false;
      const settle = (error: { code: number; details: string } | undefined, value?: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        if (error !== undefined) reject(error);
        else resolve(responseCopy(method, value));
      };
      const call = new ServerSide(requestCopy(method, request), { data: () => undefined, end: () => undefined, error: (e) => settle(e) }, this.caller, this.metadata?.clone(), this.peer);
      const onAbort = (): void => {
        call.cancel();
        settle(status(grpc.status.CANCELLED, 'Cancelled on client'));
      };
      const timer =
        options.deadline === undefined
          ? undefined
          : setTimeout(() => {
              call.cancel();
              settle(status(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded'));
            }, Math.max(0, options.deadline - Date.now()));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      method.handler(call, (error, value) => settle(error === null ? undefined : status(error.code ?? grpc.status.UNKNOWN, error.details ?? error.message), value));
    });
  }

  stream(service: ServiceName, name: string, options: ChannelCallOptions, request?: object): ChannelStream {
    const method = this.method(service, name);
    const client = new EventEmitter() as ChannelStream;
    let finished = false;
    // Deliveries are queued, not made in the caller's stack, so neither side re-enters the other.
    const deliver = (event: string, payload?: unknown): void =>
      queueMicrotask(() => {
        if (finished) return;
        if (event !== 'data') finished = true;
        client.emit(event, payload);
      });
    const call = new ServerSide(request === undefined ? undefined : requestCopy(method, request), {
      data: (message) => deliver('data', responseCopy(method, message)),
      end: () => deliver('end'),
      error: (e) => deliver('error', e),
      flow: (paused) => client.emit('flow', paused),
    }, this.caller, this.metadata?.clone(), this.peer);
    client.write = (message: object) => {
      if (finished || call.cancelled) return;
      const copy = requestCopy(method, message);
      queueMicrotask(() => call.emit('data', copy));
    };
    client.end = () => queueMicrotask(() => call.emit('end'));
    client.cancel = () => {
      finished = true;
      call.cancel();
    };
    client.pause = () => call.setClientPaused(true);
    client.resume = () => call.setClientPaused(false);
    options.signal?.addEventListener('abort', () => client.cancel(), { once: true });
    method.handler(call);
    return client;
  }

  failover(): void {
    // One member, no other to try.
  }

  close(): void {
    if (!this.isView) this.state.closed = true;
  }
}
