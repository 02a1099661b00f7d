/**
 * The HTTP/2 frame layout (RFC 9113 section 4.1), for reading what a client sends before Node's
 * HTTP/2 server sees it: the connection preface, whole frames out of arbitrary TCP chunks, and a
 * request's header block out of HEADERS + CONTINUATION frames.
 */

/** What every HTTP/2 client sends first (RFC 9113 section 3.4). */
export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FRAME_HEADER_BYTES = 9;
/** SETTINGS_MAX_FRAME_SIZE's floor: every peer accepts frames this large. */
export const MIN_MAX_FRAME_BYTES = 16_384;

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = {
  END_STREAM: 0x1,
  /** SETTINGS and PING. */
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
  /** Header and payload as received. */
  readonly raw: Buffer;
}

/** A bound on one frame from a client, so a bogus length cannot make us buffer 16 MiB. */
const MAX_FRAME_PAYLOAD_BYTES = 1 << 20;

export class FrameError extends Error {
  constructor(message: string) {
    super(`HTTP/2: ${message}`);
    this.name = 'FrameError';
  }
}

/** Cuts a byte stream into frames; keeps a partial frame until the rest arrives. */
export class FrameSplitter {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: Frame[] = [];
    let offset = 0;
    while (this.pending.length - offset >= FRAME_HEADER_BYTES) {
      const length = this.pending.readUIntBE(offset, 3);
      if (length > MAX_FRAME_PAYLOAD_BYTES) throw new FrameError(`frame of ${length} bytes`);
      const end = offset + FRAME_HEADER_BYTES + length;
      if (end > this.pending.length) break;
      const raw = this.pending.subarray(offset, end);
      frames.push({
        type: raw[3]!,
        flags: raw[4]!,
        streamId: raw.readUInt32BE(5) & 0x7fffffff,
        payload: raw.subarray(FRAME_HEADER_BYTES),
        raw,
      });
      offset = end;
    }
    this.pending = this.pending.subarray(offset);
    return frames;
  }

  /** Bytes of a frame not yet complete. */
  remainder(): Buffer {
    return this.pending;
  }
}

export function encodeFrame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

/** A request's header block, whole: what its HEADERS frame said besides the block. */
export interface HeaderBlock {
  readonly streamId: number;
  readonly endStream: boolean;
  /** The 5 priority bytes of a HEADERS frame with the PRIORITY flag, else undefined. */
  readonly priority: Buffer | undefined;
  readonly block: Buffer;
}

/**
 * Joins HEADERS and its CONTINUATIONs. Returns the block when END_HEADERS arrives, undefined
 * while more is due. Padding is dropped (it carries nothing).
 */
export class HeaderBlockCollector {
  private open: { streamId: number; endStream: boolean; priority: Buffer | undefined; fragments: Buffer[] } | undefined;

  get collecting(): boolean {
    return this.open !== undefined;
  }

  add(frame: Frame): HeaderBlock | undefined {
    if (frame.type === FrameType.HEADERS) {
      if (this.open !== undefined) throw new FrameError('HEADERS inside a header block');
      const { priority, fragment } = headersFragment(frame);
      this.open = { streamId: frame.streamId, endStream: (frame.flags & Flag.END_STREAM) !== 0, priority, fragments: [fragment] };
    } else {
      if (frame.type !== FrameType.CONTINUATION || this.open === undefined || this.open.streamId !== frame.streamId) {
        throw new FrameError('CONTINUATION without its HEADERS');
      }
      this.open.fragments.push(frame.payload);
    }
    if ((frame.flags & Flag.END_HEADERS) === 0) return undefined;
    const { streamId, endStream, priority, fragments } = this.open;
    this.open = undefined;
    return { streamId, endStream, priority, block: Buffer.concat(fragments) };
  }
}

function headersFragment(frame: Frame): { priority: Buffer | undefined; fragment: Buffer } {
  let start = 0;
  let end = frame.payload.length;
  if (frame.flags & Flag.PADDED) {
    const padBytes = frame.payload[0];
    if (padBytes === undefined) throw new FrameError('PADDED HEADERS without a pad length');
    start = 1;
    end -= padBytes;
  }
  let priority: Buffer | undefined;
  if (frame.flags & Flag.PRIORITY) {
    priority = frame.payload.subarray(start, start + 5);
    start += 5;
  }
  if (end < start) throw new FrameError('HEADERS padding longer than the frame');
  return { priority, fragment: frame.payload.subarray(start, end) };
}

/** A header block as HEADERS + CONTINUATION frames no larger than every peer accepts. */
export function encodeHeaderBlock(header: HeaderBlock): Buffer {
  const frames: Buffer[] = [];
  const firstRoom = MIN_MAX_FRAME_BYTES - (header.priority?.length ?? 0);
  let offset = Math.min(firstRoom, header.block.length);
  const last = offset === header.block.length;
  const flags = (header.endStream ? Flag.END_STREAM : 0) | (header.priority ? Flag.PRIORITY : 0) | (last ? Flag.END_HEADERS : 0);
  frames.push(encodeFrame(FrameType.HEADERS, flags, header.streamId, Buffer.concat([header.priority ?? Buffer.alloc(0), header.block.subarray(0, offset)])));
  while (offset < header.block.length) {
    const end = Math.min(offset + MIN_MAX_FRAME_BYTES, header.block.length);
    frames.push(encodeFrame(FrameType.CONTINUATION, end === header.block.length ? Flag.END_HEADERS : 0, header.streamId, header.block.subarray(offset, end)));
    offset = end;
  }
  return Buffer.concat(frames);
}
