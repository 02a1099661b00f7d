/**
 * Operating errors: a small class per condition with a stable `code`. The API edge maps each
 * code to a gRPC status and etcd's exact message text (api/status.ts), because existing
 * clients match on that text. Programmer errors are assert()s instead and are never caught.
 */

export type GavelErrorCode =
  | 'EmptyKey'
  | 'KeyNotFound'
  | 'ValueProvided'
  | 'LeaseProvided'
  | 'TooManyOps'
  | 'DuplicateKey'
  | 'RequestTooLarge'
  | 'LeaseNotFound'
  | 'LeaseExists'
  | 'LeaseTtlTooLarge'
  | 'Compacted'
  | 'FutureRevision'
  | 'InvalidSortOption'
  | 'InvalidArgument'
  | 'NoLeader'
  | 'NotLeader'
  | 'LeaderChanged'
  | 'Timeout'
  | 'TooManyRequests'
  /** The NOSPACE alarm is raised, or this write would take the database past --quota-backend-bytes. */
  | 'NoSpace'
  | 'Stopped'
  | 'Unimplemented'
  | 'WatchIdExists'
  | 'MemberNotFound'
  | 'MemberExists'
  | 'PeerUrlExists'
  | 'MemberBadUrls'
  | 'MemberNotLearner'
  | 'LearnerNotReady'
  | 'BadLeaderTransferee'
  | 'LeaderTransferTimeout'
  /** A lock not granted within the caller's wait (v3lock's wait_ms / try_lock extensions). */
  | 'LockBusy'
  /** Coordinator: a request's limit differs from the lock's (a semaphore of 3 asked as one of 5). */
  | 'LockLimitMismatch'
  /** Coordinator: too many waiters on a lock, or too many locks. */
  | 'LockQueueFull'
  /** Coordinator: an Acquire's wait_ms passed before the grant; the place was removed. */
  | 'LockWaitExpired'
  /** Coordinator: a re-attach found no place for (name, lease, owner). */
  | 'LockPlaceNotFound'
  /** An error etcd reports with status Unknown and a text of its own (v3lock, v3election). */
  | 'Unknown'
  // Authentication and roles (etcd's auth errors, server/auth/).
  | 'PermissionDenied'
  | 'AuthFailed'
  | 'InvalidAuthToken'
  | 'AuthNotEnabled'
  | 'UserEmpty'
  | 'UserExists'
  | 'UserNotFound'
  | 'RoleEmpty'
  | 'RoleExists'
  | 'RoleNotFound'
  | 'RootUserNotExist'
  | 'RootRoleNotExist'
  | 'RoleNotGranted'
  | 'PermissionNotGranted'
  | 'PermissionNotGiven'
  | 'InvalidAuthMgmt';

export class GavelError extends Error {
  constructor(
    readonly code: GavelErrorCode,
    message?: string,
    options?: { cause?: unknown },
  ) {
    super(message ?? code, options);
    this.name = 'GavelError';
  }
}

export function isGavelError(error: unknown, code?: GavelErrorCode): error is GavelError {
  return error instanceof GavelError && (code === undefined || error.code === code);
}

/** A programmer error: crash, never catch. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

export function assertNever(value: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
}
