/**
 * The gateway's streams (Watch, LeaseKeepAlive, Election.Observe, Maintenance.Snapshot), as
 * grpc-gateway relays them: a chunked answer of `{"result":...}` lines, one per message, ended by
 * an `{"error":...}` chunk when the call fails; the HTTP status is written with the first chunk,
 * so a call that fails before answering gets its error's status.
 *
 * For bidi streams the body is a sequence of JSON requests, sent as they arrive. As in etcd:
 *   - a first request that does not decode fails the call (500, the error body), later ones
 *     just end the request side;
 *   - the end of the body half-closes the call: LeaseKeepAlive answers what it read and ends;
 *     a Watch keeps streaming (etcd's watch outlives its request side; gavel's ends with it,
 *     so the gateway does not pass that end on).
 *
 * Back-pressure, both ways: when `res.write()` says false the channel stream is paused, so the
 * handler's StreamOutput sees a slow client (the watch hub holds, then lets the watcher fall
 * behind); when the handler stops reading requests (its StreamOutput is congested) the HTTP body
 * is paused. Memory per stream stays within the handler's bound plus what `res` holds.
 */
import type { ChannelStream } from '../../client/channel.js';
import * as grpc from '@grpc/grpc-js';
import { errorBody, httpStatusOf, statusOf, streamErrorChunk, tooLarge, type GatewayStatus } from './errors.js';
import { CALL_HEADERS, callError, type GatewayCall } from './call.js';
import { BodyTooLarge, JsonValueStream, type ValuesRead } from './request-body.js';
import type { JsonValue } from './json-reader.js';

/** A stream that ends before its first message had no gRPC headers to forward (etcd's answer has none). */
const NO_MESSAGE_HEADERS = { 'Content-Type': 'application/json' } as const;

/** Streams whose request side ending does not end the call (see above). */
const OUTLIVES_REQUESTS = new Set(['etcdserverpb.Watch/Watch']);

export function relayStream(call: GatewayCall, request: Record<string, unknown> | undefined): Promise<void> {
  return new Promise((resolve) => new Relay(call, request, resolve).start());
}

class Relay {
  private stream!: ChannelStream;
  private done = false;
  private responsePaused = false;
  private sentRequests = 0;
  private reading = true;

  constructor(
    private readonly call: GatewayCall,
    private readonly request: Record<string, unknown> | undefined,
    private readonly resolve: () => void,
  ) {}

  start(): void {
    const { route, channel, res } = this.call;
    try {
      this.stream = channel.stream(route.service, route.method, {}, this.request);
    } catch (error) {
      callError(res, statusOf(error));
      this.finish();
      return;
    }
    this.stream.on('data', (message: unknown) => this.answer(message));
    this.stream.on('error', (error: unknown) => this.fail(statusOf(error)));
    this.stream.on('end', () => this.end());
    // The handler stopped (or restarted) reading requests: so does the gateway.
    this.stream.on('flow', (paused: boolean) => (paused ? this.call.req.pause() : this.call.req.resume()));
    res.on('close', () => {
      if (this.done) return;
      this.stream.cancel();
      this.finish();
    });
    if (this.request === undefined) this.readRequests();
  }

  private readRequests(): void {
    const { req } = this.call;
    const values = new JsonValueStream(this.call.bodyLimit);
    req.on('data', (chunk: Buffer) => this.take(values.push(chunk), false));
    req.on('end', () => this.take(values.finish(), true));
  }

  private take(read: ValuesRead, atEnd: boolean): void {
    for (const value of read.values) this.send(value);
    if (!this.reading || this.done) return;
    if (read.error !== undefined) this.stopReading(read.error);
    else if (atEnd) this.halfClose();
  }

  private send(value: JsonValue): void {
    if (!this.reading || this.done) return;
    let message: Record<string, unknown>;
    try {
      message = this.call.codec.request(value);
    } catch (error) {
      this.stopReading(error as Error);
      return;
    }
    const bytes = this.call.codec.requestBytes(message);
    if (bytes > this.call.maxMessageBytes) {
      // The server refuses the message and ends the call, as grpc-go does over its limit.
      this.reading = false;
      this.stream.cancel();
      this.fail(tooLarge(bytes, this.call.maxMessageBytes));
      return;
    }
    this.sentRequests++;
    this.stream.write(message);
  }

  /** A request that does not decode: fails the call if it is the first, else ends the request side. */
  private stopReading(error: Error): void {
    this.reading = false;
    this.call.req.pause();
    if (error instanceof BodyTooLarge) {
      // Over gRPC's limit whole or not: the server would refuse it and end the call.
      this.stream.cancel();
      this.fail(tooLarge(error.bytes, this.call.maxMessageBytes));
      return;
    }
    if (this.sentRequests > 0) {
      this.halfClose();
      return;
    }
    this.stream.cancel();
    // grpc-gateway returns the decoder's error as it is: not a gRPC status, so Unknown.
    const status: GatewayStatus = { code: grpc.status.UNKNOWN, message: error.message };
    if (!this.call.res.headersSent) {
      const body = errorBody(status);
      this.call.res.writeHead(httpStatusOf(status.code), { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }).end(body);
    }
    this.finish();
  }

  private halfClose(): void {
    this.reading = false;
    const { route } = this.call;
    if (!OUTLIVES_REQUESTS.has(`${route.service}/${route.method}`)) this.stream.end();
  }

  private answer(message: unknown): void {
    if (this.done) return;
    const { res, codec } = this.call;
    if (!res.headersSent) res.writeHead(200, CALL_HEADERS);
    if (res.write(`{"result":${codec.response(message)}}\n`) || this.responsePaused) return;
    this.responsePaused = true;
    this.stream.pause();
    res.once('drain', () => {
      this.responsePaused = false;
      if (!this.done) this.stream.resume();
    });
  }

  private fail(status: GatewayStatus): void {
    if (this.done) return;
    const { res } = this.call;
    if (!res.headersSent) res.writeHead(httpStatusOf(status.code), NO_MESSAGE_HEADERS);
    res.end(streamErrorChunk(status));
    this.finish();
  }

  private end(): void {
    if (this.done) return;
    const { res } = this.call;
    if (!res.headersSent) res.writeHead(200, NO_MESSAGE_HEADERS);
    res.end();
    this.finish();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.reading = false;
    // Whatever the client still sends is read and dropped, so the connection can serve its next request.
    const { req } = this.call;
    if (!req.complete) {
      req.removeAllListeners('data');
      req.resume();
    }
    this.resolve();
  }
}
