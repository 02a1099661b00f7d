/**
 * etcd's gRPC gateway (HTTP/1.1 + JSON) for gavel: `POST /v3/kv/range {"key":"Zm9v"}` and the
 * rest of etcd 3.4's paths (routes.ts), answered by the SAME service handlers gRPC uses, through
 * the in-process channel: request limits, quota, leader checks, auth and permissions are the
 * gRPC path's, not a copy of them. The HTTP Authorization header travels as the `authorization`
 * metadata (and `Grpc-Metadata-<key>` headers as `<key>`), as grpc-gateway forwards them.
 *
 * createGateway returns a request handler for the client port's HTTP/1.1 side: true when the
 * request was the gateway's (every path under /v3/, /v3beta/, /v3alpha/, unknown ones included,
 * which get etcd's 404), false otherwise, so the caller serves /version, /metrics, ... or its 404.
 *
 * A client that disconnects cancels its call (a waiting Lock, a Watch, a keep-alive stream).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import type { ServiceName } from '../../client/channel.js';
import { InProcessChannel } from '../api/in-process.js';
import type { Logger } from '../log.js';
import { statusOf, tooLarge } from './errors.js';
import { CALL_HEADERS, callError, decodeError, type GatewayCall } from './call.js';
import { JsonSyntaxError } from './json-reader.js';
import { JsonMappingError } from './json-mapping.js';
import { methodCodec } from './method-codec.js';
import { BodyTooLarge, ClientGone, firstJsonValue, readBody } from './request-body.js';
import { gatewayPath, routeOf } from './routes.js';
import { relayStream } from './stream-relay.js';

export type GatewayHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export interface GatewayOptions {
  /** The member's service implementations, by service name (as added to the gRPC server). */
  readonly services: ReadonlyMap<ServiceName, grpc.UntypedServiceImplementation>;
  /** gRPC's receive limit: --max-request-bytes plus the 512 KiB gRPC may carry beyond it. */
  readonly maxMessageBytes: number;
  readonly logger?: Logger;
}

/**
 * A JSON body may take more bytes than the protobuf message it holds (base64 is 4/3 of the
 * bytes, names and quotes add more): read up to this many times the message limit, then refuse.
 */
export const BODY_TO_MESSAGE_RATIO = 4;

/** etcd answers every path with these CORS headers (its --cors defaults to "*"). */
const CORS_HEADERS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'POST, GET, OPTIONS, PUT, DELETE',
  'Access-Control-Allow-Headers': 'accept, content-type, authorization',
} as const;

export function createGateway(options: GatewayOptions): GatewayHandler {
  const channel = new InProcessChannel(options.services);
  const bodyLimit = options.maxMessageBytes * BODY_TO_MESSAGE_RATIO;
  return (req, res) => {
    const path = gatewayPath(pathnameOf(req.url));
    if (path === undefined) return false;
    for (const [name, value] of Object.entries(CORS_HEADERS)) res.setHeader(name, value);
    if (req.method === 'OPTIONS') {
      res.writeHead(200, { 'Content-Length': 0 }).end();
      return true;
    }
    const route = routeOf(path);
    if (route === undefined) {
      plainError(res, 404, 'Not Found');
      return true;
    }
    if (req.method !== 'POST') {
      plainError(res, 405, 'Method Not Allowed');
      return true;
    }
    const timeoutMs = grpcTimeoutOf(req);
    if (timeoutMs === 'invalid') {
      decodeError(res, { code: grpc.status.INVALID_ARGUMENT, message: `invalid grpc-timeout: ${String(req.headers['grpc-timeout'])}` });
      return true;
    }
    const call: GatewayCall = { req, res, route, codec: methodCodec(route), channel: channel.withMetadata(metadataOf(req), `${req.socket.remoteAddress}:${req.socket.remotePort}`), maxMessageBytes: options.maxMessageBytes, bodyLimit, timeoutMs };
    const served = route.kind === 'bidi' ? relayStream(call, undefined) : serveWithBody(call);
    served.catch((error: unknown) => {
      if (error instanceof ClientGone) return;
      options.logger?.warn('gateway call failed', { path, error: String(error) });
      if (!res.headersSent) callError(res, statusOf(error));
      else res.destroy();
    });
    return true;
  };
}

/** The path of a request target ('/v3/kv/range?x=1' → '/v3/kv/range'); '' when it is not one. */
function pathnameOf(target: string | undefined): string {
  try {
    return new URL(target ?? '/', 'http://gateway').pathname;
  } catch {
    return '';
  }
}

/** A unary call or a server stream: the whole body is the one request. */
async function serveWithBody(call: GatewayCall): Promise<void> {
  const { req, res, codec } = call;
  let request: Record<string, unknown>;
  try {
    request = codec.request(firstJsonValue(await readBody(req, call.bodyLimit)));
  } catch (error) {
    if (error instanceof BodyTooLarge) {
      // The rest of the body is not read: the connection cannot carry another request.
      res.setHeader('Connection', 'close');
      callError(res, tooLarge(error.bytes, call.maxMessageBytes));
      return;
    }
    if (error instanceof JsonSyntaxError || error instanceof JsonMappingError) {
      decodeError(res, { code: grpc.status.INVALID_ARGUMENT, message: error.message });
      return;
    }
    throw error;
  }
  const bytes = codec.requestBytes(request);
  if (bytes > call.maxMessageBytes) {
    callError(res, tooLarge(bytes, call.maxMessageBytes));
    return;
  }
  if (call.route.kind === 'server') {
    await relayStream(call, request);
    return;
  }
  await serveUnary(call, request);
}

async function serveUnary(call: GatewayCall, request: Record<string, unknown>): Promise<void> {
  const { res, route, codec } = call;
  const abort = abortOnDisconnect(res);
  try {
    const deadline = call.timeoutMs === undefined ? undefined : Date.now() + call.timeoutMs;
    const response = await call.channel.unary(route.service, route.method, request, { signal: abort.signal, deadline });
    if (abort.signal.aborted) return;
    const body = codec.response(response);
    res.writeHead(200, { ...CALL_HEADERS, 'Content-Length': Buffer.byteLength(body) }).end(body);
  } catch (error) {
    if (abort.signal.aborted) return;
    const status = statusOf(error);
    // The gateway is the gRPC client whose deadline passed: grpc-go words it so, and no call status (no trailer) came back.
    if (status.code === grpc.status.DEADLINE_EXCEEDED) decodeError(res, { code: status.code, message: 'context deadline exceeded' });
    else callError(res, status);
  } finally {
    abort.dispose();
  }
}

const TIMEOUT_UNITS_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/**
 * The Grpc-Timeout header (gRPC's format: up to 8 digits and a unit), which grpc-gateway turns
 * into the call's deadline; unary calls only here. Undefined without one.
 */
export function grpcTimeoutOf(req: IncomingMessage): number | undefined | 'invalid' {
  const value = req.headers['grpc-timeout'];
  if (value === undefined) return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(String(value));
  if (match === null) return 'invalid';
  return Number(match[1]) * (TIMEOUT_UNITS_MS[match[2] ?? 'S'] ?? 1000);
}

/** An AbortController fired when the client goes away before its answer is written. */
export function abortOnDisconnect(res: ServerResponse): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onClose = (): void => {
    if (!res.writableFinished) controller.abort(new Error('client disconnected'));
  };
  res.on('close', onClose);
  return { signal: controller.signal, dispose: () => res.removeListener('close', onClose) };
}

/** Go's http.Error: the text and a newline, as etcd's mux answers unknown paths and methods. */
function plainError(res: ServerResponse, status: number, text: string): void {
  const body = `${text}\n`;
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff', 'Content-Length': Buffer.byteLength(body) }).end(body);
}

/**
 * grpc-gateway's incoming header matcher: Authorization as `authorization` (etcd reads the token
 * there), each `Grpc-Metadata-<key>` as `<key>` (e.g. Grpc-Metadata-Token, Grpc-Metadata-Hasleader).
 */
export function metadataOf(req: IncomingMessage): grpc.Metadata {
  const metadata = new grpc.Metadata();
  const authorization = req.headers.authorization;
  if (authorization !== undefined) metadata.add('authorization', authorization);
  for (const [name, value] of Object.entries(req.headers)) {
    if (!name.startsWith('grpc-metadata-') || value === undefined) continue;
    const key = name.slice('grpc-metadata-'.length);
    if (key === '' || key.endsWith('-bin')) continue;
    for (const v of Array.isArray(value) ? value : [value]) metadata.add(key, v);
  }
  return metadata;
}
