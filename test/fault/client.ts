/**
 * A fault-test client: one gRPC channel to one member, reconnecting fast after the member is
 * killed and restarted (grpc-js backs off up to 120 s by default), every call with a deadline.
 * `classifyError` decides whether a failed call certainly did not take effect ('fail') or may
 * have ('indeterminate'): the checkers' soundness rests on it, so it errs towards indeterminate.
 * The lock and election workloads drive the client library (client/) instead: `libraryClient`
 * and `classifyClientError` are their counterparts.
 */
import * as grpc from '@grpc/grpc-js';
import { Client, GavelClientError, neverSent, type ClientErrorCode, type Session } from '../../client/index.js';
import type { Prng } from '../sim/prng.js';
import { etcdPackage, isServiceError } from '../helpers/grpc.js';
import { sleep, type Outcome } from './workload.js';

export type FaultService = 'KV' | 'Maintenance' | 'Lease' | 'Watch' | 'Cluster';

type UnaryMethod = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: unknown) => void) => grpc.ClientUnaryCall;

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.min_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1_000,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
};

export class FaultClient {
  private readonly clients = new Map<FaultService, grpc.Client>();

  /** `name` identifies the client in histories; `member` is the member it talks to. */
  constructor(readonly name: string, readonly member: string, readonly endpoint: string) {
    const pkg = etcdPackage();
    let channel: grpc.Channel | undefined;
    for (const service of ['KV', 'Maintenance', 'Lease', 'Watch', 'Cluster'] as const) {
      const ctor = pkg[service] as grpc.ServiceClientConstructor | undefined;
      if (ctor === undefined) throw new Error(`service ${service} missing from rpc.proto`);
      const client: grpc.Client = channel === undefined
        ? new ctor(endpoint, grpc.credentials.createInsecure(), CHANNEL_OPTIONS)
        : new ctor(endpoint, grpc.credentials.createInsecure(), { ...CHANNEL_OPTIONS, channelOverride: channel });
      channel ??= client.getChannel() as grpc.Channel;
      this.clients.set(service, client);
    }
  }

  /** A unary call that rejects with the grpc.ServiceError, at the latest after deadlineMs. */
  unary<T>(service: FaultService, method: string, request: object, deadlineMs: number): Promise<T> {
    const client = this.clients.get(service);
    if (client === undefined) throw new Error(`no client for ${service}`);
    const fn: unknown = (client as unknown as Record<string, unknown>)[method];
    if (typeof fn !== 'function') throw new Error(`${service}.${method} is not a method`);
    return new Promise<T>((resolve, reject) => {
      (fn as UnaryMethod).call(client, request, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (error, response) => {
        if (error) reject(error);
        else resolve(response as T);
      });
    });
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
  }
}

/** Status codes with which the server refuses a request before anything is proposed. */
const DEFINITE_CODES: ReadonlySet<number> = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.ALREADY_EXISTS,
  grpc.status.PERMISSION_DENIED,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.OUT_OF_RANGE,
  grpc.status.UNIMPLEMENTED,
  grpc.status.UNAUTHENTICATED,
  grpc.status.RESOURCE_EXHAUSTED, // "etcdserver: too many requests": refused before proposing
]);

/**
 * Texts of UNAVAILABLE errors that prove the request was never sent or never proposed:
 * grpc-js failing a call because it has no connection, and the server refusing a write
 * because it knows no leader (raft-node refuseWrite/waitForLeader, before propose).
 */
const NOT_SENT = [/No connection established/i, /ECONNREFUSED/, /^etcdserver: no leader$/];

/**
 * 'fail' when the call certainly had no effect, else 'indeterminate'. A timeout, a dropped
 * connection, "leader changed", "request timed out" or any unknown error after the request may
 * have reached a member is indeterminate: the write may commit later.
 */
export function classifyError(error: unknown): Exclude<Outcome, 'ok'> {
  if (!isServiceError(error)) return 'indeterminate';
  if (DEFINITE_CODES.has(error.code)) return 'fail';
  if (error.code === grpc.status.UNAVAILABLE && NOT_SENT.some((pattern) => pattern.test(error.details))) return 'fail';
  return 'indeterminate';
}

/** The status text of an error, short, for histories and reports. */
export function errorText(error: unknown): string {
  if (isServiceError(error)) return `${grpc.status[error.code] ?? error.code}: ${error.details}`.slice(0, 200);
  return (error instanceof Error ? error.message : String(error)).slice(0, 200);
}

/** One client per member and per index, named `${workload}/${index}@${member}`. */
export function connectClients(workload: string, members: readonly { name: string; endpoint: string }[], perMember: number): FaultClient[] {
  const clients: FaultClient[] = [];
  for (let index = 0; index < perMember * members.length; index += 1) {
    const member = members[index % members.length];
    if (member === undefined) throw new Error('connectClients: no members');
    clients.push(new FaultClient(`${workload}/${index}@${member.name}`, member.name, member.endpoint));
  }
  return clients;
}

/**
 * A client-library Client connected to every given endpoint, starting the list at `index` (so
 * clients begin on different members). Each attempt of a call is bounded by `attemptMs`, so a
 * paused member is left for another one within that time.
 */
export function libraryClient(endpoints: readonly string[], index: number, attemptMs: number): Client {
  const start = index % Math.max(endpoints.length, 1);
  return new Client({ endpoints: [...endpoints.slice(start), ...endpoints.slice(0, start)], defaultTimeoutMs: attemptMs, backoffMaxMs: 500 });
}

/** Client-library codes that mean the request was refused, or answered "no", without effect. */
const DEFINITE_CLIENT_CODES: ReadonlySet<ClientErrorCode> = new Set<ClientErrorCode>([
  'LockLost', // a fenced Txn whose guard failed: it committed as a no-op
  'ElectionNotLeader', // a proclaim whose guard failed
  'LeaseNotFound',
  'InvalidArgument',
  'PermissionDenied',
  'Unauthenticated',
  'ResourceExhausted',
  'Unimplemented',
  'NotFound',
  'FailedPrecondition',
]);

/** How a wait (lock, campaign) can end without a grant: it was given up, or its session went. */
const WAIT_ENDED: ReadonlySet<ClientErrorCode> = new Set<ClientErrorCode>(['Aborted', 'DeadlineExceeded', 'SessionExpired', 'Closed']);

/**
 * 'fail' when a client-library call certainly had no effect, else 'indeterminate'. The library
 * resends a write only when the earlier attempt never left the process (client/rpc.ts), so
 * `neverSent` of the last error covers every attempt. With `wait`, the call is a lock or a
 * campaign and its effect is the grant: a wait that was given up or lost its session was
 * certainly not granted (its queue key may remain; the workloads then revoke the session).
 */
export function classifyClientError(error: unknown, options: { wait?: boolean } = {}): Exclude<Outcome, 'ok'> {
  if (!(error instanceof GavelClientError)) return 'indeterminate';
  if (DEFINITE_CLIENT_CODES.has(error.code) || neverSent(error)) return 'fail';
  if (options.wait === true && WAIT_ENDED.has(error.code)) return 'fail';
  return 'indeterminate';
}

/** The code and text of a client-library error, short, for histories and reports. */
export function clientErrorText(error: unknown): string {
  if (error instanceof GavelClientError) return `${error.code}: ${error.message}`.slice(0, 200);
  return errorText(error);
}

/**
 * A session for a workload's client, or undefined after a short random pause when the cluster
 * cannot grant one now (the caller tries again in its loop).
 */
export async function openSession(client: Client, settings: { sessionTtlSeconds: number; deadlineMs: number }, prng: Prng, signal: AbortSignal): Promise<Session | undefined> {
  try {
    return await client.session({ ttlSeconds: settings.sessionTtlSeconds, timeoutMs: settings.deadlineMs });
  } catch {
    await sleep(100 + prng.int(200), signal);
    return undefined;
  }
}
