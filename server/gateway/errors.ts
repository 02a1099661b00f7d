/**
 * How the gateway words a failed call, as grpc-gateway v1.9.5 (etcd 3.4's pinned version) does:
 *   - a unary call, or a stream that fails before its first answer is parsed: the HTTP status of
 *     the gRPC code and the body `{"error":M,"message":M,"code":N}`;
 *   - inside a stream: the chunk `{"error":{"grpc_code":N,"http_code":H,"message":M,"http_status":T}}`.
 * The status for FailedPrecondition is 400 from grpc-gateway 1.10 on (etcd 3.4's own builds);
 * Debian's etcd 3.4, built against grpc-gateway 1.6, answers 412.
 */
import { STATUS_CODES } from 'node:http';
import * as grpc from '@grpc/grpc-js';

const HTTP_STATUS: Record<number, number> = {
  [grpc.status.OK]: 200,
  [grpc.status.CANCELLED]: 408,
  [grpc.status.UNKNOWN]: 500,
  [grpc.status.INVALID_ARGUMENT]: 400,
  [grpc.status.DEADLINE_EXCEEDED]: 504,
  [grpc.status.NOT_FOUND]: 404,
  [grpc.status.ALREADY_EXISTS]: 409,
  [grpc.status.PERMISSION_DENIED]: 403,
  [grpc.status.UNAUTHENTICATED]: 401,
  [grpc.status.RESOURCE_EXHAUSTED]: 429,
  [grpc.status.FAILED_PRECONDITION]: 400,
  [grpc.status.ABORTED]: 409,
  [grpc.status.OUT_OF_RANGE]: 400,
  [grpc.status.UNIMPLEMENTED]: 501,
  [grpc.status.INTERNAL]: 500,
  [grpc.status.UNAVAILABLE]: 503,
  [grpc.status.DATA_LOSS]: 500,
};

/** A failed call as the gateway reports it: a gRPC code and its text. */
export interface GatewayStatus {
  readonly code: number;
  readonly message: string;
}

export function httpStatusOf(code: number): number {
  return HTTP_STATUS[code] ?? 500;
}

/** Any rejection (a CallStatus from the channel, an Error) as a status; unknown shapes are Unknown. */
export function statusOf(error: unknown): GatewayStatus {
  if (typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'number') {
    const e = error as { code: number; details?: string; message?: string };
    return { code: e.code, message: e.details ?? e.message ?? '' };
  }
  return { code: grpc.status.UNKNOWN, message: error instanceof Error ? error.message : String(error) };
}

/** The unary error body; key order as etcd writes it. */
export function errorBody(status: GatewayStatus): string {
  return JSON.stringify({ error: status.message, message: status.message, code: status.code });
}

/** The error chunk that ends a stream. */
export function streamErrorChunk(status: GatewayStatus): string {
  const http = httpStatusOf(status.code);
  return JSON.stringify({ error: { grpc_code: status.code, http_code: http, message: status.message, http_status: STATUS_CODES[http] ?? '' } });
}

/** grpc-go's refusal of a message over the server's receive limit (etcd: --max-request-bytes + 512 KiB). */
export function tooLarge(bytes: number, limit: number): GatewayStatus {
  return { code: grpc.status.RESOURCE_EXHAUSTED, message: `grpc: received message larger than max (${bytes} vs. ${limit})` };
}
