/**
 * The Raft message stream between members, on the peer port beside the gRPC Peer service: a
 * plain length-framed byte stream instead of a gRPC bidi call. A Raft message crosses it with
 * one socket write on each side (libuv writes at once, inside write()), where a gRPC stream
 * message passes grpc-js's filters and HTTP/2 framing on both sides and leaves only when the
 * sender's event loop next turns: on a busy leader that held the commit notice for a follower
 * until the leader had applied the entry itself. The messages are the ones the gRPC stream
 * carries (wire.ts MessageBatch); only the envelope differs.
 *
 * The dialling member opens with STREAM_MAGIC and a hello frame (cluster id, its id, the id it
 * expects to reach); the listener answers with a frame: an ack of sequence 0 (accepted), or a
 * refusal with a reason, after which it closes. Then the dialler sends batch frames and the
 * listener acks those that ask for one (the round-trip probe).
 *
 *   frame  = u32 length (big-endian) | payload
 *   hello  = u64 cluster id | u64 from | u64 to                     (dialler → listener, first)
 *   answer = u8 kind | kind 1 (ack): u64 sequence | kind 2 (refusal): UTF-8 reason
 *
 * A listener that does not know this protocol (a member from before it) closes the connection
 * or answers in HTTP/2; the dialler then uses the gRPC stream for that peer (peer.ts).
 */
import { assert } from '../errors.js';

/** First bytes of a Raft stream connection; an HTTP/2 connection starts with "PRI * HTTP/2.0". */
export const STREAM_MAGIC = Buffer.from('GAVELRAFT/1\n', 'latin1');
/** TLS ALPN name of the stream (the listener also offers h2 for the gRPC Peer service). */
export const STREAM_ALPN = 'gavel-raft/1';
const FRAME_HEADER_BYTES = 4;
const HELLO_BYTES = 24;

export const enum AnswerKind {
  Ack = 1,
  Refusal = 2,
}

export type Answer = { readonly kind: AnswerKind.Ack; readonly seq: bigint } | { readonly kind: AnswerKind.Refusal; readonly reason: string };

export interface Hello {
  readonly clusterId: bigint;
  readonly from: bigint;
  /** 0: whoever listens (the dialler does not know the id yet). */
  readonly to: bigint;
}

export class StreamProtocolError extends Error {
  override readonly name = 'StreamProtocolError';
}

export function frame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.byteLength);
  out.writeUInt32BE(payload.byteLength, 0);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

export function encodeHello(hello: Hello): Buffer {
  const out = Buffer.allocUnsafe(HELLO_BYTES);
  out.writeBigUInt64BE(hello.clusterId, 0);
  out.writeBigUInt64BE(hello.from, 8);
  out.writeBigUInt64BE(hello.to, 16);
  return out;
}

export function decodeHello(payload: Uint8Array): Hello {
  if (payload.byteLength !== HELLO_BYTES) throw new StreamProtocolError(`hello of ${payload.byteLength} bytes, expected ${HELLO_BYTES}`);
  const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return { clusterId: bytes.readBigUInt64BE(0), from: bytes.readBigUInt64BE(8), to: bytes.readBigUInt64BE(16) };
}

export function encodeAnswer(answer: Answer): Buffer {
  if (answer.kind === AnswerKind.Ack) {
    const out = Buffer.allocUnsafe(9);
    out[0] = AnswerKind.Ack;
    out.writeBigUInt64BE(answer.seq, 1);
    return out;
  }
  const reason = Buffer.from(answer.reason, 'utf8');
  const out = Buffer.allocUnsafe(1 + reason.byteLength);
  out[0] = AnswerKind.Refusal;
  reason.copy(out, 1);
  return out;
}

export function decodeAnswer(payload: Uint8Array): Answer {
  const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  if (bytes[0] === AnswerKind.Ack && bytes.byteLength === 9) return { kind: AnswerKind.Ack, seq: bytes.readBigUInt64BE(1) };
  if (bytes[0] === AnswerKind.Refusal) return { kind: AnswerKind.Refusal, reason: bytes.toString('utf8', 1) };
  throw new StreamProtocolError(`unknown answer (kind ${bytes[0]}, ${bytes.byteLength} bytes)`);
}

/**
 * Cuts a byte stream into frames. Payloads are copied out of the socket's chunks only when a
 * frame spans chunks; a frame wholly inside one chunk is handed out as a view of it (the caller
 * decodes it at once and keeps no reference).
 */
export class FrameReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxFrameBytes: number) {
    assert(maxFrameBytes > 0, 'maxFrameBytes must be positive');
  }

  /** The complete frames the chunk finishes, in order; throws StreamProtocolError on a frame over the limit. */
  push(chunk: Buffer): Uint8Array[] {
    let data: Buffer;
    if (this.pendingBytes === 0) {
      data = chunk;
    } else {
      this.pending.push(chunk);
      data = Buffer.concat(this.pending, this.pendingBytes + chunk.byteLength);
      this.pending = [];
      this.pendingBytes = 0;
    }
    const frames: Uint8Array[] = [];
    let offset = 0;
    while (data.byteLength - offset >= FRAME_HEADER_BYTES) {
      const length = data.readUInt32BE(offset);
      if (length > this.maxFrameBytes) throw new StreamProtocolError(`frame of ${length} bytes is over the ${this.maxFrameBytes}-byte limit`);
      if (data.byteLength - offset - FRAME_HEADER_BYTES < length) break;
      frames.push(data.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length));
      offset += FRAME_HEADER_BYTES + length;
    }
    if (offset < data.byteLength) {
      // The rest is the start of a frame: keep a copy, not a view pinning the whole chunk.
      const rest = Buffer.from(data.subarray(offset));
      this.pending.push(rest);
      this.pendingBytes = rest.byteLength;
    }
    return frames;
  }

  /** Bytes of an unfinished frame held. */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }
}
