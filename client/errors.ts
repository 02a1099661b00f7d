/**
 * Typed errors: every failure a client call can meet becomes a GavelClientError with a stable
 * `code`, never a raw gRPC error. Each code also has its own class, so callers can write either
 * `error instanceof CompactedError` or `isClientError(error, 'Compacted')`.
 *
 * The server's answers are classified by etcd's exact message text first (that text is the wire
 * contract, shared with the server through its status table), then by gRPC status code.
 */
import * as grpc from '@grpc/grpc-js';
import { etcdMessage } from '../server/api/status.js';
import type { GavelErrorCode } from '../server/errors.js';

export type ClientErrorCode =
  /** No member could be reached, or the connection broke (the request may or may not have applied). */
  | 'Unavailable'
  | 'NoLeader'
  | 'LeaderChanged'
  /** The server gave up waiting for the request to commit; it may still apply. */
  | 'Timeout'
  /** The call's deadline passed; a write may or may not have applied. */
  | 'DeadlineExceeded'
  /** The caller's AbortSignal fired. */
  | 'Aborted'
  | 'LeaseNotFound'
  | 'Compacted'
  | 'FutureRevision'
  | 'InvalidArgument'
  | 'PermissionDenied'
  | 'Unauthenticated'
  | 'ResourceExhausted'
  /** The cluster's space quota is exhausted (NOSPACE alarm): writes fail until an operator compacts, defragments and disarms. */
  | 'NoSpace'
  | 'Unimplemented'
  | 'NotFound'
  | 'FailedPrecondition'
  /** Election: there is no leader to report. */
  | 'ElectionNoLeader'
  /** Election: the caller's leadership is gone (proclaim or resign by a former leader). */
  | 'ElectionNotLeader'
  /** The session's lease is gone (expired, revoked, or kept alive too late). */
  | 'SessionExpired'
  /** A fenced operation was refused: the caller no longer holds the lock. */
  | 'LockLost'
  /** tryLock / a deadline-bound lock found the lock held. */
  | 'LockBusy'
  | 'Closed'
  | 'Internal';

export class GavelClientError extends Error {
  readonly code: ClientErrorCode;
  /** The gRPC status code when the error came from a call, for logging. */
  readonly grpcCode: number | undefined;

  constructor(code: ClientErrorCode, message: string, options: { cause?: unknown; grpcCode?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.grpcCode = options.grpcCode;
    this.name = `${code}Error`;
  }
}

function errorClass<C extends ClientErrorCode>(code: C) {
  return class extends GavelClientError {
    declare readonly code: C;
    constructor(message: string, options: { cause?: unknown; grpcCode?: number } = {}) {
      super(code, message, options);
    }
  };
}

export class UnavailableError extends errorClass('Unavailable') {}
export class NoLeaderError extends errorClass('NoLeader') {}
export class LeaderChangedError extends errorClass('LeaderChanged') {}
export class TimeoutError extends errorClass('Timeout') {}
export class DeadlineExceededError extends errorClass('DeadlineExceeded') {}
export class AbortedError extends errorClass('Aborted') {}
export class LeaseNotFoundError extends errorClass('LeaseNotFound') {}
export class CompactedError extends errorClass('Compacted') {
  /** The oldest revision still available, when the server said (watch cancellations do). */
  compactRevision: bigint | undefined;
}
export class FutureRevisionError extends errorClass('FutureRevision') {}
export class InvalidArgumentError extends errorClass('InvalidArgument') {}
export class PermissionDeniedError extends errorClass('PermissionDenied') {}
export class UnauthenticatedError extends errorClass('Unauthenticated') {}
export class ResourceExhaustedError extends errorClass('ResourceExhausted') {}
export class NoSpaceError extends errorClass('NoSpace') {}
export class UnimplementedError extends errorClass('Unimplemented') {}
export class NotFoundError extends errorClass('NotFound') {}
export class FailedPreconditionError extends errorClass('FailedPrecondition') {}
export class ElectionNoLeaderError extends errorClass('ElectionNoLeader') {}
export class ElectionNotLeaderError extends errorClass('ElectionNotLeader') {}
export class SessionExpiredError extends errorClass('SessionExpired') {}
export class LockLostError extends errorClass('LockLost') {}
export class LockBusyError extends errorClass('LockBusy') {}
export class ClosedError extends errorClass('Closed') {}
export class InternalError extends errorClass('Internal') {}

export function isClientError<C extends ClientErrorCode>(error: unknown, code?: C): error is GavelClientError & { code: C } {
  return error instanceof GavelClientError && (code === undefined || error.code === code);
}

type ErrorConstructor = new (message: string, options?: { cause?: unknown; grpcCode?: number }) => GavelClientError;

/** Server codes whose etcd message identifies a client error class. */
const BY_SERVER_CODE: Partial<Record<GavelErrorCode, ErrorConstructor>> = {
  LeaseNotFound: LeaseNotFoundError,
  Compacted: CompactedError,
  FutureRevision: FutureRevisionError,
  NoLeader: NoLeaderError,
  LeaderChanged: LeaderChangedError,
  Timeout: TimeoutError,
  TooManyRequests: ResourceExhaustedError,
  NoSpace: NoSpaceError,
  Stopped: UnavailableError,
  LockBusy: LockBusyError,
  // The coordinator's (gavel.v1.Coordinator) own answers.
  LockWaitExpired: DeadlineExceededError,
  LockPlaceNotFound: LockLostError,
  LockQueueFull: ResourceExhaustedError,
};

const BY_MESSAGE = new Map<string, ErrorConstructor>([
  ...Object.entries(BY_SERVER_CODE).map(([code, ctor]) => [etcdMessage(code as GavelErrorCode), ctor] as const),
  // etcd 3.4 answers these with status Unknown; the text is what identifies them.
  ['election: no leader', ElectionNoLeaderError],
  ['election: not leader', ElectionNotLeaderError],
  ['etcdserver: election: no leader', ElectionNoLeaderError],
  ['etcdserver: election: not leader', ElectionNotLeaderError],
  ['context deadline exceeded', DeadlineExceededError],
]);

const BY_STATUS: Partial<Record<number, ErrorConstructor>> = {
  [grpc.status.UNAVAILABLE]: UnavailableError,
  [grpc.status.DEADLINE_EXCEEDED]: DeadlineExceededError,
  [grpc.status.CANCELLED]: AbortedError,
  [grpc.status.INVALID_ARGUMENT]: InvalidArgumentError,
  [grpc.status.PERMISSION_DENIED]: PermissionDeniedError,
  [grpc.status.UNAUTHENTICATED]: UnauthenticatedError,
  [grpc.status.RESOURCE_EXHAUSTED]: ResourceExhaustedError,
  [grpc.status.UNIMPLEMENTED]: UnimplementedError,
  [grpc.status.NOT_FOUND]: NotFoundError,
  [grpc.status.FAILED_PRECONDITION]: FailedPreconditionError,
  [grpc.status.OUT_OF_RANGE]: InvalidArgumentError,
};

/** A failed call's status (from grpc-js or the in-process channel) → a typed error. */
export function fromStatus(status: { code?: number; details?: string; message?: string }): GavelClientError {
  const details = status.details ?? status.message ?? '';
  // A connection torn down under a call (GOAWAY, reset) is a transport failure, whatever the status.
  const broken = status.code === grpc.status.INTERNAL && /RST_STREAM|Session closed|GOAWAY|ECONNRESET/.test(details);
  const ctor = BY_MESSAGE.get(details) ?? (broken ? UnavailableError : undefined) ?? BY_STATUS[status.code ?? -1] ?? InternalError;
  return new ctor(details === '' ? `gRPC status ${status.code ?? '?'}` : details, { grpcCode: status.code, cause: status });
}

/** Anything thrown inside the client → a typed error (typed errors pass through unchanged). */
export function toClientError(error: unknown): GavelClientError {
  if (error instanceof GavelClientError) return error;
  if (typeof error === 'object' && error !== null && 'code' in error && typeof (error as { code: unknown }).code === 'number') {
    return fromStatus(error as { code: number; details?: string; message?: string });
  }
  return new InternalError(error instanceof Error ? error.message : String(error), { cause: error });
}

/**
 * Failures after which the same request may be sent again without changing what it means:
 * nothing was applied (no connection, no leader) or the request is idempotent by design.
 */
export function isTransient(error: GavelClientError): boolean {
  return error.code === 'Unavailable' || error.code === 'NoLeader' || error.code === 'LeaderChanged' || error.code === 'Timeout';
}

/** grpc-js's text for a call that never reached a server, so even a non-idempotent write is safe to resend. */
export function neverSent(error: GavelClientError): boolean {
  if (error.code === 'NoLeader') return true;
  if (error.code !== 'Unavailable') return false;
  return /No connection established|connect ECONNREFUSED|Name resolution failed|failed to connect/i.test(error.message);
}
