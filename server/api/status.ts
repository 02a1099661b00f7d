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
  Unknown: { code: Status.UNKNOWN, message: 'unknown error' },
  WatchIdExists: { code: Status.INVALID_ARGUMENT, message: 'mvcc: duplicate watch ID provided on the WatchStream' },
};

export interface ServiceErrorLike {
  code: grpc.status;
  details: string;
  message: string;
}

/** Any thrown value → a gRPC error object for callback(...) or stream.destroy(...). */
export function toServiceError(error: unknown): ServiceErrorLike {
  if (error instanceof GavelError) {
    const entry = TABLE[error.code];
    // InvalidArgument and Unimplemented carry a message of their own; the rest are etcd's fixed texts.
    const text = error.code === 'InvalidArgument' || error.code === 'Unimplemented' || error.code === 'Unknown' ? error.message : entry.message;
    return { code: entry.code, details: text, message: text };
  }
  const text = error instanceof Error ? error.message : String(error);
  return { code: Status.INTERNAL, details: text, message: text };
}

export function etcdMessage(code: GavelErrorCode): string {
  return TABLE[code].message;
}
