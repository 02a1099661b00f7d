/**
 * The one table that maps our error codes to a gRPC status and etcd's exact message text.
 * Existing etcd clients match on these strings (clientv3's rpctypes, etcd3's error classes),
 * so they are wire facts and must not be reworded.
 */
import * as grpc from '@grpc/grpc-js';
import { GavelError, type GavelErrorCode } from '../errors.js';

const Status = grpc.status;

const TABLE: Record<GavelErrorCode, { code: grpc.status; message: string }> = {
  EmptyKey: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: key is not provided' },
  KeyNotFound: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: key not found' },
  ValueProvided: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: value is provided' },
  LeaseProvided: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: lease is provided' },
  TooManyOps: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: too many operations in txn request' },
  DuplicateKey: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: duplicate key given in txn request' },
  RequestTooLarge: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: request is too large' },
  LeaseNotFound: { code: Status.NOT_FOUND, message: 'etcdserver: requested lease not found' },
  LeaseExists: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: lease already exists' },
  LeaseTtlTooLarge: { code: Status.OUT_OF_RANGE, message: 'etcdserver: too large lease TTL' },
  Compacted: { code: Status.OUT_OF_RANGE, message: 'etcdserver: mvcc: required revision has been compacted' },
  FutureRevision: { code: Status.OUT_OF_RANGE, message: 'etcdserver: mvcc: required revision is a future revision' },
  InvalidSortOption: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: invalid sort option' },
  InvalidArgument: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: invalid argument' },
  NoLeader: { code: Status.UNAVAILABLE, message: 'etcdserver: no leader' },
  NotLeader: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: not leader' },
  LeaderChanged: { code: Status.UNAVAILABLE, message: 'etcdserver: leader changed' },
  Timeout: { code: Status.UNAVAILABLE, message: 'etcdserver: request timed out' },
  TooManyRequests: { code: Status.RESOURCE_EXHAUSTED, message: 'etcdserver: too many requests' },
  NoSpace: { code: Status.RESOURCE_EXHAUSTED, message: 'etcdserver: mvcc: database space exceeded' },
  Stopped: { code: Status.UNAVAILABLE, message: 'etcdserver: server stopped' },
  Unimplemented: { code: Status.UNIMPLEMENTED, message: 'unimplemented' },
  MemberNotFound: { code: Status.NOT_FOUND, message: 'etcdserver: member not found' },
  MemberExists: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: member ID already exist' },
  PeerUrlExists: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: Peer URLs already exists' },
  MemberBadUrls: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: given member URLs are invalid' },
  MemberNotLearner: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: can only promote a learner member' },
  LearnerNotReady: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: can only promote a learner member which is in sync with leader' },
  BadLeaderTransferee: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: bad leader transferee' },
  LeaderTransferTimeout: { code: Status.UNAVAILABLE, message: 'etcdserver: request timed out, leader transfer took too long' },
  LockBusy: { code: Status.ABORTED, message: 'gavel: lock is held by another session' },
  LockLimitMismatch: { code: Status.FAILED_PRECONDITION, message: 'gavel: lock limit mismatch' },
  LockQueueFull: { code: Status.RESOURCE_EXHAUSTED, message: 'gavel: the coordinator queue is full (too many waiters or locks)' },
  LockWaitExpired: { code: Status.DEADLINE_EXCEEDED, message: 'gavel: lock not acquired within wait_ms' },
  LockPlaceNotFound: { code: Status.NOT_FOUND, message: 'gavel: no place in the lock queue for this lease and owner' },
  Unknown: { code: Status.UNKNOWN, message: 'unknown error' },
  WatchIdExists: { code: Status.INVALID_ARGUMENT, message: 'mvcc: duplicate watch ID provided on the WatchStream' },
  PermissionDenied: { code: Status.PERMISSION_DENIED, message: 'etcdserver: permission denied' },
  AuthFailed: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: authentication failed, invalid user ID or password' },
  InvalidAuthToken: { code: Status.UNAUTHENTICATED, message: 'etcdserver: invalid auth token' },
  AuthNotEnabled: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: authentication is not enabled' },
  UserEmpty: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: user name is empty' },
  UserExists: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: user name already exists' },
  UserNotFound: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: user name not found' },
  RoleEmpty: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: role name is empty' },
  RoleExists: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: role name already exists' },
  RoleNotFound: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: role name not found' },
  RootUserNotExist: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: root user does not exist' },
  RootRoleNotExist: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: root user does not have root role' },
  RoleNotGranted: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: role is not granted to the user' },
  PermissionNotGranted: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: permission is not granted to the role' },
  PermissionNotGiven: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: permission not given' },
  InvalidAuthMgmt: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: invalid auth management' },
};

export interface ServiceErrorLike {
  code: grpc.status;
  details: string;
  message: string;
}

/**
 * Ends a server stream with an error status. grpc-js sends a stream's status from end(), which
 * its 'error' handler calls; destroy() would tear the stream down without sending any status,
 * and the HTTP/2 stream stayed open on the connection (a hostile client filled its
 * max-concurrent-streams that way until the connection stopped taking calls).
 */
export function failStream(call: { emit(event: 'error', error: unknown): boolean }, error: unknown): void {
  const status = toServiceError(error);
  call.emit('error', Object.assign(new Error(status.details), status));
}

/** Any thrown value → a gRPC error object for callback(...) or failStream(...). */
export function toServiceError(error: unknown): ServiceErrorLike {
  if (error instanceof GavelError) {
    const entry = TABLE[error.code];
    // InvalidArgument and Unimplemented carry a message of their own; the rest are etcd's fixed texts.
    const text = error.code === 'InvalidArgument' || error.code === 'Unimplemented' || error.code === 'Unknown' || error.code === 'LockLimitMismatch' ? error.message : entry.message;
    return { code: entry.code, details: text, message: text };
  }
  const text = error instanceof Error ? error.message : String(error);
  return { code: Status.INTERNAL, details: text, message: text };
}

export function etcdMessage(code: GavelErrorCode): string {
  return TABLE[code].message;
}

/** grpc-go's name of a status code (PERMISSION_DENIED → PermissionDenied), as its error texts print it. */
function goCodeName(code: grpc.status): string {
  const name = grpc.status[code] ?? 'UNKNOWN';
  return name === 'OK' ? 'OK' : name.split('_').map((w) => w.charAt(0) + w.slice(1).toLowerCase()).join('');
}

/**
 * An error as grpc-go prints it ("rpc error: code = PermissionDenied desc = etcdserver: permission
 * denied"): etcd puts that text in a refused watch's cancel_reason, and etcdctl prints it.
 */
export function goErrorText(error: unknown): string {
  const { code, message } = toServiceError(error);
  return `rpc error: code = ${goCodeName(code)} desc = ${message}`;
}
