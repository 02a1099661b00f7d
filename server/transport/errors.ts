/**
 * The client half of the error contract for the leader-side lease calls: the leader's handler
 * error travels as a gRPC status with etcd's text (api/status.ts), and here that text becomes
 * the same GavelError code again, so a follower answers its client as the leader would have.
 */
import * as grpc from '@grpc/grpc-js';
import { GavelError, type GavelErrorCode } from '../errors.js';
import { etcdMessage } from '../api/status.js';

/** Codes a leader-side lease handler may throw; anything else means the leader is unusable. */
const FORWARDED_CODES: readonly GavelErrorCode[] = [
  'LeaseNotFound',
  'LeaseTtlTooLarge',
  'NotLeader',
  'NoLeader',
  'LeaderChanged',
  'Timeout',
  'Stopped',
  'TooManyRequests',
];

const CODE_BY_MESSAGE = new Map<string, GavelErrorCode>(FORWARDED_CODES.map((code) => [etcdMessage(code), code]));

export function fromServiceError(error: grpc.ServiceError, peer: bigint): GavelError {
  const code = CODE_BY_MESSAGE.get(error.details);
  if (code !== undefined) return new GavelError(code, error.details, { cause: error });
  // Unreachable leader, refused call (cluster id), deadline: to the client it is "no leader now".
  const text = `gavel: leader ${peer} unavailable: ${grpc.status[error.code] ?? error.code}: ${error.details}`;
  return new GavelError('NoLeader', text, { cause: error });
}
