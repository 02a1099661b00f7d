/**
 * Snapshots travel over Peer.SendSnapshot in chunks instead of inside a stream batch: their
 * data can be many MB and must not hold up heartbeats and appends queued behind it.
 * This file has the pure halves (chunking and reassembly) and the sending state machine.
 */
import type * as grpc from '@grpc/grpc-js';
import { GavelError } from '../errors.js';
import type { Logger } from '../log.js';
import type { SnapMessage } from '../raft/types.js';
import { decodeMessage, decodeNum, encodeMessage } from './codec.js';
import { peerDefinitions, type WireSnapshotChunk } from './service.js';

export type SnapshotStatus = 'finish' | 'failure';

const EMPTY = new Uint8Array(0);

/**
 * Where a snapshot's bytes come from and go to. The Raft message names the state in its data
 * field; the member streams the state itself (server/node/snapshots.ts: from a level snapshot
 * on the sender, into a file on the receiver), so no side holds a whole snapshot in memory.
 * memorySnapshotStreams() sends the data field as it is (tests, small states).
 */
export interface SnapshotStreams {
  open(m: SnapMessage): OutgoingSnapshot;
  /** announcedBytes: the size the sender announced, when it knew it. */
  receive(header: SnapMessage, announcedBytes: number | undefined): IncomingSnapshot;
}

export interface OutgoingSnapshot {
  readonly chunks: AsyncIterable<Uint8Array>;
  /** The exact size when known up front (announced to the receiver), else undefined. */
  readonly totalBytes: number | undefined;
  /** For the call's deadline when totalBytes is unknown. */
  readonly estimatedBytes: number;
  /** The sender is done with it (sent, failed or cancelled). */
  close(): void;
}

export interface IncomingSnapshot {
  write(data: Uint8Array): Promise<void>;
  /** Every byte arrived: returns the data field of the message delivered to Raft. */
  finish(): Promise<Uint8Array>;
  /** The transfer failed: free whatever was kept. */
  abort(): void;
}

export function memorySnapshotStreams(maxBytes: number): SnapshotStreams {
  return {
    open: (m) => ({ chunks: once(m.snapshot.data), totalBytes: m.snapshot.data.length, estimatedBytes: m.snapshot.data.length, close: () => undefined }),
    receive: () => {
      const parts: Uint8Array[] = [];
      let received = 0;
      return {
        write: async (data) => {
          if (received + data.length > maxBytes) throw new GavelError('RequestTooLarge', `gavel: snapshot exceeds ${maxBytes} bytes`);
          parts.push(data);
          received += data.length;
        },
        finish: async () => (received === 0 ? EMPTY : Buffer.concat(parts, received)),
        abort: () => void parts.splice(0),
      };
    },
  };
}

async function* once(data: Uint8Array): AsyncGenerator<Uint8Array> {
  yield data;
}

/**
 * The wire chunks of one snapshot: the first carries the message (without its data) and the
 * announced size ('0' = not announced), every chunk at most chunkBytes of data at its offset.
 */
export async function* wireChunks(m: SnapMessage, pieces: AsyncIterable<Uint8Array>, chunkBytes: number, totalBytes: number | undefined): AsyncGenerator<WireSnapshotChunk> {
  const header = encodeMessage({ ...m, snapshot: { ...m.snapshot, data: EMPTY } });
  let offset = 0;
  let first = true;
  for await (const piece of pieces) {
    for (let start = 0; start < piece.length; start += chunkBytes) {
      const data = piece.subarray(start, start + chunkBytes);
      yield { message: first ? header : null, total_bytes: first ? String(totalBytes ?? 0) : '0', offset: String(offset), data };
      first = false;
      offset += data.length;
    }
  }
  if (first) yield { message: header, total_bytes: '0', offset: '0', data: EMPTY };
}

/** The wire chunks of an in-memory snapshot (its data field), synchronously. */
export function* snapshotChunks(m: SnapMessage, chunkBytes: number): Generator<WireSnapshotChunk> {
  const data = m.snapshot.data;
  const header = encodeMessage({ ...m, snapshot: { ...m.snapshot, data: EMPTY } });
  let offset = 0;
  do {
    const piece = data.subarray(offset, offset + chunkBytes);
    const first = offset === 0;
    yield { message: first ? header : null, total_bytes: first ? String(data.length) : '0', offset: String(offset), data: piece };
    offset += piece.length;
  } while (offset < data.length);
}

/** Checks one snapshot's chunk sequence; every malformed input is an InvalidArgument GavelError. */
export class ChunkSequence {
  private header: SnapMessage | undefined;
  private announced: number | undefined;
  private received = 0;

  constructor(private readonly maxBytes: number) {}

  /** The header (first chunk only) and this chunk's data. */
  next(chunk: WireSnapshotChunk): { header: SnapMessage | undefined; announcedBytes: number | undefined; data: Uint8Array } {
    let header: SnapMessage | undefined;
    if (this.header === undefined) {
      header = this.start(chunk);
    } else {
      if (chunk.message !== null) throw bad('a second snapshot header');
      const offset = decodeNum(chunk.offset, 'chunk offset');
      if (offset !== this.received) throw bad(`chunk at offset ${offset}, expected ${this.received}`);
    }
    const data = chunk.data;
    if (this.announced !== undefined && this.received + data.length > this.announced) throw bad(`chunks exceed the announced ${this.announced} bytes`);
    if (this.received + data.length > this.maxBytes) throw new GavelError('RequestTooLarge', `gavel: snapshot exceeds ${this.maxBytes} bytes`);
    this.received += data.length;
    return { header, announcedBytes: this.announced, data };
  }

  /** The stream ended: every announced byte must have arrived. */
  end(): SnapMessage {
    if (this.header === undefined) throw bad('no snapshot chunks');
    if (this.announced !== undefined && this.received !== this.announced) throw bad(`snapshot ends after ${this.received} of ${this.announced} bytes`);
    return this.header;
  }

  get receivedBytes(): number {
    return this.received;
  }

  private start(chunk: WireSnapshotChunk): SnapMessage {
    if (chunk.message === null) throw bad('the first chunk has no message');
    const m = decodeMessage(chunk.message);
    if (m.type !== 'snap') throw bad(`the first chunk carries a '${m.type}' message`);
    const total = decodeNum(chunk.total_bytes, 'total_bytes');
    if (total > this.maxBytes) throw new GavelError('RequestTooLarge', `gavel: snapshot of ${total} bytes exceeds ${this.maxBytes}`);
    if (decodeNum(chunk.offset, 'chunk offset') !== 0) throw bad('the first chunk does not start at offset 0');
    this.header = m;
    this.announced = total === 0 ? undefined : total;
    return m;
  }
}

/** One snapshot reassembled in memory (ChunkSequence plus a buffer): the pure core of the default path. */
export class SnapshotAssembly {
  private readonly sequence: ChunkSequence;
  private readonly parts: Uint8Array[] = [];

  constructor(maxBytes: number) {
    this.sequence = new ChunkSequence(maxBytes);
  }

  /** Returns the message header when `chunk` is the first one, so the caller can check it early. */
  add(chunk: WireSnapshotChunk): SnapMessage | undefined {
    const { header, data } = this.sequence.next(chunk);
    this.parts.push(data);
    return header;
  }

  /** The whole 'snap' message, once every byte announced in the header arrived. */
  finish(): SnapMessage {
    const header = this.sequence.end();
    const data = this.sequence.receivedBytes === 0 ? EMPTY : Buffer.concat(this.parts, this.sequence.receivedBytes);
    return { ...header, snapshot: { metadata: header.snapshot.metadata, data } };
  }
}

function bad(reason: string): GavelError {
  return new GavelError('InvalidArgument', `gavel: bad snapshot stream: ${reason}`);
}

/** Generous: 30 s plus 1 s per MiB (assumes at least 1 MiB/s between members). */
export function snapshotTimeoutMs(bytes: number): number {
  return 30_000 + Math.ceil(bytes / 1_048_576) * 1_000;
}

export interface SnapshotSenderEnvironment {
  readonly peer: bigint;
  readonly logger: Logger;
  readonly chunkBytes: number;
  readonly sentBytes: (bytes: number) => void;
  readonly report: (status: SnapshotStatus) => void;
  readonly streams: SnapshotStreams;
  /** Starts a SendSnapshot call; `done` runs once with its outcome. */
  readonly open: (deadlineMs: number, done: (error: grpc.ServiceError | null) => void) => grpc.ClientWritableStream<Uint8Array>;
}

/**
 * One snapshot in flight per peer. The core sends a follower one snapshot and waits for its
 * report, so a second one is rare: it waits, and a third supersedes it (reported 'failure').
 */
export class SnapshotSender {
  private inFlight: grpc.ClientWritableStream<Uint8Array> | undefined;
  private pending: SnapMessage | undefined;
  private stopped = false;

  constructor(private readonly env: SnapshotSenderEnvironment) {}

  send(m: SnapMessage): void {
    if (this.stopped) return;
    if (this.inFlight === undefined) {
      this.start(m);
      return;
    }
    if (this.pending !== undefined) this.env.report('failure');
    this.pending = m;
  }

  /** Cancels the call in flight; nothing is reported after stop (the node is going away). */
  stop(): void {
    this.stopped = true;
    const call = this.inFlight;
    this.inFlight = undefined;
    this.pending = undefined;
    call?.cancel();
  }

  private start(m: SnapMessage): void {
    let source: OutgoingSnapshot;
    try {
      source = this.env.streams.open(m);
    } catch (error) {
      // The state it names is gone (superseded): Raft will ask for a fresh snapshot.
      this.env.logger.warn('snapshot source unavailable', { peer: this.env.peer, error: String(error) });
      this.env.report('failure');
      return;
    }
    const startedMs = performance.now();
    const sent = { bytes: 0 };
    const deadlineMs = Date.now() + snapshotTimeoutMs(source.totalBytes ?? source.estimatedBytes);
    const call = this.env.open(deadlineMs, (error) => {
      source.close();
      this.done(call, error, sent.bytes, startedMs);
    });
    this.inFlight = call;
    this.writeChunks(call, m, source, sent).catch((error: unknown) => {
      this.env.logger.warn('snapshot source failed', { peer: this.env.peer, error: String(error) });
      call.cancel();
    });
  }

  private async writeChunks(call: grpc.ClientWritableStream<Uint8Array>, m: SnapMessage, source: OutgoingSnapshot, sent: { bytes: number }): Promise<void> {
    const { chunkCodec } = peerDefinitions();
    for await (const chunk of wireChunks(m, source.chunks, this.env.chunkBytes, source.totalBytes)) {
      if (this.inFlight !== call) return;
      const bytes = chunkCodec.encode(chunk);
      this.env.sentBytes(bytes.length);
      sent.bytes += chunk.data.length;
      // Respect back-pressure: never buffer more than the stream's high-water mark of chunks.
      if (!call.write(bytes)) await drainedOrClosed(call);
    }
    if (this.inFlight === call) call.end();
  }

  private done(call: grpc.ClientWritableStream<Uint8Array>, error: grpc.ServiceError | null, bytes: number, startedMs: number): void {
    if (this.inFlight !== call) return;
    this.inFlight = undefined;
    const seconds = (performance.now() - startedMs) / 1000;
    if (error === null) this.env.logger.info('snapshot sent', { peer: this.env.peer, bytes, seconds });
    else this.env.logger.warn('snapshot failed', { peer: this.env.peer, bytes, seconds, code: error.code, error: error.details });
    this.env.report(error === null ? 'finish' : 'failure');
    const next = this.pending;
    this.pending = undefined;
    if (next !== undefined && !this.stopped) this.start(next);
  }
}

/** Resolves on 'drain', or on 'status' when the call ended and no drain will come. */
function drainedOrClosed(call: grpc.ClientWritableStream<Uint8Array>): Promise<void> {
  return new Promise((resolve) => {
    const settle = (): void => {
      call.off('drain', settle);
      call.off('status', settle);
      resolve();
    };
    call.on('drain', settle);
    call.on('status', settle);
  });
}
