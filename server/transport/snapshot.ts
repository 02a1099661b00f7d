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

/** The first chunk carries the message (without its data) and the total size; data follows. */
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

/** Reassembles one snapshot; every malformed input is an InvalidArgument GavelError. */
export class SnapshotAssembly {
  private header: SnapMessage | undefined;
  private data: Uint8Array = EMPTY;
  private received = 0;

  constructor(private readonly maxBytes: number) {}

  /** Returns the message header when `chunk` is the first one, so the caller can check it early. */
  add(chunk: WireSnapshotChunk): SnapMessage | undefined {
    if (this.header === undefined) return this.start(chunk);
    if (chunk.message !== null) throw bad('a second snapshot header');
    const offset = decodeNum(chunk.offset, 'chunk offset');
    if (offset !== this.received) throw bad(`chunk at offset ${offset}, expected ${this.received}`);
    this.append(chunk.data);
    return undefined;
  }

  /** The whole 'snap' message, once every byte announced in the header arrived. */
  finish(): SnapMessage {
    if (this.header === undefined) throw bad('no snapshot chunks');
    if (this.received !== this.data.length) throw bad(`snapshot ends after ${this.received} of ${this.data.length} bytes`);
    return { ...this.header, snapshot: { metadata: this.header.snapshot.metadata, data: this.data } };
  }

  private start(chunk: WireSnapshotChunk): SnapMessage {
    if (chunk.message === null) throw bad('the first chunk has no message');
    const m = decodeMessage(chunk.message);
    if (m.type !== 'snap') throw bad(`the first chunk carries a '${m.type}' message`);
    const total = decodeNum(chunk.total_bytes, 'total_bytes');
    if (total > this.maxBytes) throw new GavelError('RequestTooLarge', `gavel: snapshot of ${total} bytes exceeds ${this.maxBytes}`);
    if (decodeNum(chunk.offset, 'chunk offset') !== 0) throw bad('the first chunk does not start at offset 0');
    this.header = m;
    // Unsafe (uninitialised) allocation is fine: finish() insists that every byte was written.
    this.data = total === 0 ? EMPTY : Buffer.allocUnsafe(total);
    this.append(chunk.data);
    return m;
  }

  private append(piece: Uint8Array): void {
    if (this.received + piece.length > this.data.length) throw bad(`chunks exceed the announced ${this.data.length} bytes`);
    this.data.set(piece, this.received);
    this.received += piece.length;
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
    const bytes = m.snapshot.data.length;
    const startedMs = performance.now();
    const call = this.env.open(Date.now() + snapshotTimeoutMs(bytes), (error) => this.done(call, error, bytes, startedMs));
    this.inFlight = call;
    void this.writeChunks(call, m);
  }

  private async writeChunks(call: grpc.ClientWritableStream<Uint8Array>, m: SnapMessage): Promise<void> {
    const { chunkCodec } = peerDefinitions();
    for (const chunk of snapshotChunks(m, this.env.chunkBytes)) {
      if (this.inFlight !== call) return;
      const bytes = chunkCodec.encode(chunk);
      this.env.sentBytes(bytes.length);
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
