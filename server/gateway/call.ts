/** What the gateway's unary and stream paths share: the call's parts and how errors are written. */
import type { ServerResponse, IncomingMessage } from 'node:http';
import type { InProcessChannel } from '../api/in-process.js';
import { errorBody, httpStatusOf, type GatewayStatus } from './errors.js';
import type { MethodCodec } from './method-codec.js';
import type { Route } from './routes.js';

/** Sent with every answer of a call, as grpc-gateway forwards the gRPC response's content-type. */
export const CALL_HEADERS = { 'Content-Type': 'application/json', 'Grpc-Metadata-Content-Type': 'application/grpc' } as const;

/** What serving one call needs. */
export interface GatewayCall {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly route: Route;
  readonly codec: MethodCodec;
  readonly channel: InProcessChannel;
  readonly maxMessageBytes: number;
  readonly bodyLimit: number;
  /** From the Grpc-Timeout header: the unary call's deadline, in ms from its start. */
  readonly timeoutMs: number | undefined;
}

/**
 * The call's own error, as grpc-gateway writes it: the gRPC status's HTTP status, the error
 * body, and the gRPC trailer it announced (so the answer is chunked, as etcd's is).
 */
export function callError(res: ServerResponse, status: GatewayStatus): void {
  if (res.headersSent) return;
  res.writeHead(httpStatusOf(status.code), { 'Content-Type': 'application/json', Trailer: 'Grpc-Trailer-Content-Type' });
  res.write(errorBody(status));
  res.addTrailers({ 'Grpc-Trailer-Content-Type': 'application/grpc' });
  res.end();
}

/** An error with no gRPC call status behind it (a request that did not decode, a deadline the gateway saw pass): no trailer. */
export function decodeError(res: ServerResponse, status: GatewayStatus): void {
  const body = errorBody(status);
  res.writeHead(httpStatusOf(status.code), { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }).end(body);
}

