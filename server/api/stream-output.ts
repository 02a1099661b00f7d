/**
 * Back-pressure for one stream: the write side of a grpc-js call (server duplex or server
 * streaming; a client call too, for the peer transport), or anything with the same shape
 * (an HTTP/1.1 response, whose request is then the `reader`).
 *
 * Every message written counts, in wire bytes, until the call's write callback runs, i.e. until
 * HTTP/2 has taken it: that is what the call itself holds for a client that does not read. The
 * stream is CONGESTED while that count is at or above the bound, while call.write() has said
 * false and no 'drain' came yet, or while too many requests are still being answered. While
 * congested:
 *   - the reader is paused, so the member stops reading this stream's requests and HTTP/2 flow
 *     control stops the client's sender (etcd does the same: its receive loop blocks);
 *   - write() answers false: a producer that can hold (the watch hub, Observe, Acquire) waits
 *     for onDrain()/room(); answers to requests already read are still written (bounded by
 *     maxPendingRequests).
 * So one stream holds at most maxBufferedBytes + one message (+ the answers to the requests in
 * progress). When the client drains it, reading resumes and the drain listeners run, in a later
 * microtask (never inside write(), so a producer is never re-entered). The call's end, cancel or
 * close (or close()) forgets everything: counts go to zero, listeners are removed, late write
 * callbacks change nothing.
 *
 * Used by every long-lived stream: LeaseKeepAlive, Watch, Election Observe, Coordinator Acquire,
 * the peer streams, and Maintenance.Snapshot, and the streams still to come (the JSON gateway).
 */
import { assert } from '../errors.js';
import { protobufRoot } from '../proto.js';

/** What one stream may hold for a client that does not read (etcd's gRPC send buffer is of this order). */
export const DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024;
/** Requests read and still being answered before reading pauses (a keep-alive waits for the leader). */
export const DEFAULT_MAX_PENDING_REQUESTS = 128;
/** gRPC's length-prefixed framing: 1 flag byte and 4 length bytes per message. */
export const GRPC_FRAME_BYTES = 5;

/** The label of gavel_server_stream* metrics: which service's streams. */
export const STREAM_KINDS = ['lease_keepalive', 'watch', 'election_observe', 'coordinator_acquire', 'peer_receive', 'peer_send', 'maintenance_snapshot'] as const;
export type StreamKind = (typeof STREAM_KINDS)[number];

/** Where streams report their figures (server/metrics/streams.ts); a stream works without one. */
export interface StreamTally {
  opened(kind: StreamKind): void;
  closed(kind: StreamKind): void;
  /** One stream's buffered bytes changed by deltaBytes, to streamBytes. */
  buffered(kind: StreamKind, deltaBytes: number, streamBytes: number): void;
  /** One stream became congested: it stopped reading (or producing) until drained. */
  paused(kind: StreamKind): void;
}

type Listener = () => void;
type EndEvent = 'drain' | 'finish' | 'close' | 'cancelled';

/** The part of a grpc-js call (a Node Writable) that back-pressure needs. */
export interface OutputCall<T> {
  write(message: T, callback: (error?: Error | null) => void): boolean;
  on(event: EndEvent, listener: Listener): unknown;
  removeListener(event: EndEvent, listener: Listener): unknown;
  /** grpc-js sets it when the client cancelled; a stream opened after that is closed at once. */
  readonly cancelled?: boolean;
}

/** The side that reads the client's requests: a grpc-js duplex call itself, or an HTTP request. */
export interface StreamReader {
  pause(): unknown;
  resume(): unknown;
}

export interface StreamOutputOptions {
  readonly kind: StreamKind;
  readonly tally?: StreamTally | undefined;
  readonly maxBufferedBytes?: number;
  readonly maxPendingRequests?: number;
  /** Paused while congested; default: the call, if it can pause (a duplex call). null: never pause. */
  readonly reader?: StreamReader | null;
}

export class StreamOutput<T> {
  readonly kind: StreamKind;
  private readonly maxBytes: number;
  private readonly maxPending: number;
  private readonly reader: StreamReader | null;
  private readonly tally: StreamTally | undefined;
  /** Bytes written and not yet taken by HTTP/2. */
  private written = 0;
  /** Bytes the producer holds for this stream before writing (the watch hub's queue). */
  private upstream = 0;
  private pending = 0;
  private awaitingDrain = false;
  private congestedNow = false;
  private readerPaused = false;
  private drainScheduled = false;
  private closed = false;
  private drainListeners: Listener[] = [];
  private roomWaiters: Listener[] = [];
  private readonly onCallDrain = (): void => {
    this.awaitingDrain = false;
    this.update();
  };
  private readonly onCallEnd = (): void => this.close();

  constructor(
    private readonly call: OutputCall<T>,
    options: StreamOutputOptions,
  ) {
    this.kind = options.kind;
    this.maxBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    this.maxPending = options.maxPendingRequests ?? DEFAULT_MAX_PENDING_REQUESTS;
    assert(this.maxBytes > 0 && this.maxPending > 0, 'stream output bounds must be positive');
    this.reader = options.reader === undefined ? readerOf(call) : options.reader;
    this.tally = options.tally;
    this.tally?.opened(this.kind);
    call.on('drain', this.onCallDrain);
    // 'finish': everything written was taken and the call ended; the others: it is gone.
    for (const event of ['finish', 'close', 'cancelled'] as const) call.on(event, this.onCallEnd);
    if (call.cancelled === true) this.close();
  }

  /** Bytes this stream holds now: written and not taken, plus what the producer holds for it. */
  get bufferedBytes(): number {
    return this.written + this.upstream;
  }

  /** Past the bound: hold what can be held until onDrain()/room(). */
  get congested(): boolean {
    return this.congestedNow;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Writes one message of `bytes` wire bytes (see encodedSize) and answers whether there is room
   * for more. A closed stream drops it and answers false.
   */
  write(message: T, bytes: number): boolean {
    if (this.closed) return false;
    this.changeWritten(bytes);
    let taken = false;
    const accepted = this.call.write(message, () => {
      if (taken) return;
      taken = true;
      if (!this.closed) this.changeWritten(-bytes);
      this.update();
    });
    if (!accepted) this.awaitingDrain = true;
    this.update();
    return !this.congestedNow;
  }

  /** A request was read and will be answered: returns the function that says it was. */
  begin(): () => void {
    if (this.closed) return () => undefined;
    this.pending++;
    this.update();
    let done = false;
    return () => {
      if (done || this.closed) return;
      done = true;
      this.pending--;
      this.update();
    };
  }

  /** The producer now holds `bytes` for this stream (counted, not bounded here: the producer bounds it). */
  holdUpstream(bytes: number): void {
    if (this.closed) return;
    const delta = bytes - this.upstream;
    this.upstream = bytes;
    this.tally?.buffered(this.kind, delta, this.bufferedBytes);
  }

  /** Runs `listener` each time the stream drains after being congested (not after close). */
  onDrain(listener: Listener): void {
    if (!this.closed) this.drainListeners.push(listener);
  }

  /** Resolves when there is room (at once if there is) or the stream closed. */
  room(): Promise<void> {
    if (this.closed || !this.congestedNow) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Forgets everything; idempotent. Called on the call's end, cancel or close. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.call.removeListener('drain', this.onCallDrain);
    for (const event of ['finish', 'close', 'cancelled'] as const) this.call.removeListener(event, this.onCallEnd);
    this.tally?.buffered(this.kind, -this.bufferedBytes, 0);
    this.tally?.closed(this.kind);
    this.written = 0;
    this.upstream = 0;
    this.pending = 0;
    this.drainListeners = [];
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private changeWritten(delta: number): void {
    this.written += delta;
    assert(this.written >= 0, `stream output counted ${this.written} bytes`);
    this.tally?.buffered(this.kind, delta, this.bufferedBytes);
  }

  /** The one place that decides congestion: pauses the reader on it, schedules the drain after it. */
  private update(): void {
    if (this.closed) return;
    const congested = this.awaitingDrain || this.written >= this.maxBytes || this.pending >= this.maxPending;
    if (congested === this.congestedNow) return;
    this.congestedNow = congested;
    if (!congested) {
      this.scheduleDrain();
      return;
    }
    this.tally?.paused(this.kind);
    if (!this.readerPaused) {
      this.readerPaused = true;
      this.reader?.pause();
    }
  }

  /**
   * Later, never inside a write: the producer first sends what it held (the drain listeners),
   * and only if that leaves room does the stream read requests again.
   */
  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    queueMicrotask(() => {
      this.drainScheduled = false;
      if (this.closed || this.congestedNow) return;
      const waiters = this.roomWaiters;
      this.roomWaiters = [];
      for (const resolve of waiters) resolve();
      for (const listener of [...this.drainListeners]) {
        if (this.closed || this.congestedNow) return;
        listener();
      }
      if (this.closed || this.congestedNow || !this.readerPaused) return;
      this.readerPaused = false;
      this.reader?.resume();
    });
  }
}

function readerOf(call: object): StreamReader | null {
  const candidate = call as Partial<StreamReader>;
  return typeof candidate.pause === 'function' && typeof candidate.resume === 'function' ? (call as StreamReader) : null;
}

/**
 * The exact wire size of messages of one protobuf type (encodes them once more): for the small
 * messages of keep-alive, Observe, Acquire and peer acks. Watch estimates instead (its events
 * can be large; server/watch/responses.ts).
 */
export function encodedSize(typeName: string): (message: object) => number {
  const type = protobufRoot().lookupType(typeName);
  return (message) => GRPC_FRAME_BYTES + type.encode(type.fromObject(message as Record<string, unknown>)).len;
}
