/**
 * The byte format of a state snapshot, written and read as a stream so that neither side ever
 * holds a whole snapshot in memory:
 *
 *   "GVS2" (4 bytes), format version u32
 *   records: space index u8 (storage/layout.ts SPACES), key length u32, key, value length u32, value
 *   end: 0xff, record count u64
 *   SHA-256 of every byte before it (32 bytes) — as etcd's snapshot stream ends with the SHA-256
 *   of the database, so a truncated or corrupted file is always refused.
 *
 * All numbers big-endian. The decoder checks each record as it arrives and the digest at the end;
 * callers must not act on decoded records until end() has verified the digest (install writes
 * them to level only after the transfer completed and was verified, or from a verified file).
 */
import { createHash, type Hash } from 'node:crypto';
import { GavelError } from '../errors.js';
import { SPACES, type Space } from '../storage/layout.js';

const MAGIC = 0x47565332; // "GVS2"
const FORMAT_VERSION = 1;
const HEADER_BYTES = 8;
const END_MARK = 0xff;
const DIGEST_BYTES = 32;
/** Larger keys or values than this are not gavel's (requests are bounded far below it). */
const MAX_FIELD_BYTES = 256 * 1024 * 1024;

export interface SnapshotRecord {
  readonly space: Space;
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

/** Builds the stream; take() hands out what has accumulated, finish() the rest with the digest. */
export class SnapshotEncoder {
  readonly #hash: Hash = createHash('sha256');
  #parts: Uint8Array[] = [];
  #buffered = 0;
  #records = 0n;
  #finished = false;

  constructor() {
    const header = new Uint8Array(HEADER_BYTES);
    const view = new DataView(header.buffer);
    view.setUint32(0, MAGIC);
    view.setUint32(4, FORMAT_VERSION);
    this.#append(header);
  }

  /** Bytes waiting in take(). */
  get buffered(): number {
    return this.#buffered;
  }

  record(space: Space, key: Uint8Array, value: Uint8Array): void {
    if (this.#finished) throw new Error('snapshot encoder already finished');
    const index = SPACES.indexOf(space);
    const head = new Uint8Array(5);
    const view = new DataView(head.buffer);
    view.setUint8(0, index);
    view.setUint32(1, key.byteLength);
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, value.byteLength);
    this.#append(head);
    this.#append(key);
    this.#append(length);
    this.#append(value);
    this.#records++;
  }

  /** Everything encoded so far, as one chunk (empty when nothing is buffered). */
  take(): Uint8Array {
    const chunk = Buffer.concat(this.#parts, this.#buffered);
    this.#parts = [];
    this.#buffered = 0;
    return chunk;
  }

  /** The end mark, record count and digest, after whatever was still buffered. */
  finish(): Uint8Array {
    const end = new Uint8Array(9);
    const view = new DataView(end.buffer);
    view.setUint8(0, END_MARK);
    view.setBigUint64(1, this.#records);
    this.#append(end);
    this.#finished = true;
    const digest = this.#hash.digest();
    this.#parts.push(digest);
    this.#buffered += digest.byteLength;
    return this.take();
  }

  #append(bytes: Uint8Array): void {
    this.#hash.update(bytes);
    this.#parts.push(bytes);
    this.#buffered += bytes.byteLength;
  }
}

/**
 * Reads the stream chunk by chunk. push() returns the records completed by the chunk; end()
 * throws unless the stream ended exactly after a valid digest.
 */
export class SnapshotDecoder {
  readonly #hash: Hash = createHash('sha256');
  /** Bytes received but not yet parsed (at most one record plus a chunk). */
  #pending: Buffer = Buffer.alloc(0);
  #state: 'header' | 'records' | 'digest' | 'done' = 'header';
  #records = 0n;
  #expectedRecords = 0n;
  #digest: Buffer | undefined;

  get recordCount(): bigint {
    return this.#records;
  }

  push(chunk: Uint8Array): SnapshotRecord[] {
    if (this.#state === 'done') throw bad('bytes after the digest');
    this.#pending = this.#pending.byteLength === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.concat([this.#pending, chunk]);
    const records: SnapshotRecord[] = [];
    let offset = 0;
    for (;;) {
      const used = this.#parseOne(offset, records);
      if (used === 0) break;
      offset += used;
    }
    this.#pending = Buffer.from(this.#pending.subarray(offset));
    return records;
  }

  /** The stream is over: it must have ended right after a matching digest. */
  end(): void {
    if (this.#state !== 'done' || this.#pending.byteLength !== 0) throw bad('the snapshot is truncated');
  }

  /** Parses one item at offset; returns the bytes it used, or 0 when more bytes are needed. */
  #parseOne(offset: number, records: SnapshotRecord[]): number {
    const available = this.#pending.byteLength - offset;
    switch (this.#state) {
      case 'header':
        return this.#parseHeader(offset, available);
      case 'records':
        return this.#parseRecord(offset, available, records);
      case 'digest':
        return this.#parseDigest(offset, available);
      case 'done':
        if (available > 0) throw bad('bytes after the digest');
        return 0;
    }
  }

  #parseHeader(offset: number, available: number): number {
    if (available < HEADER_BYTES) return 0;
    const bytes = this.#pending.subarray(offset, offset + HEADER_BYTES);
    if (bytes.readUInt32BE(0) !== MAGIC) throw bad('not a gavel snapshot');
    if (bytes.readUInt32BE(4) !== FORMAT_VERSION) throw bad(`unknown snapshot format ${bytes.readUInt32BE(4)}`);
    this.#hash.update(bytes);
    this.#state = 'records';
    return HEADER_BYTES;
  }

  #parseRecord(offset: number, available: number, records: SnapshotRecord[]): number {
    if (available < 1) return 0;
    const data = this.#pending;
    const index = data[offset]!;
    if (index === END_MARK) {
      if (available < 9) return 0;
      this.#expectedRecords = data.readBigUInt64BE(offset + 1);
      if (this.#expectedRecords !== this.#records) throw bad(`the snapshot announces ${this.#expectedRecords} records but holds ${this.#records}`);
      this.#hash.update(data.subarray(offset, offset + 9));
      this.#digest = this.#hash.digest();
      this.#state = 'digest';
      return 9;
    }
    const space = SPACES[index];
    if (space === undefined) throw bad(`a record names unknown space ${index}`);
    if (available < 5) return 0;
    const keyBytes = data.readUInt32BE(offset + 1);
    if (keyBytes > MAX_FIELD_BYTES) throw bad(`a key of ${keyBytes} bytes`);
    if (available < 9 + keyBytes) return 0;
    const valueBytes = data.readUInt32BE(offset + 5 + keyBytes);
    if (valueBytes > MAX_FIELD_BYTES) throw bad(`a value of ${valueBytes} bytes`);
    const size = 9 + keyBytes + valueBytes;
    if (available < size) return 0;
    this.#hash.update(data.subarray(offset, offset + size));
    const key = new Uint8Array(data.subarray(offset + 5, offset + 5 + keyBytes));
    const value = new Uint8Array(data.subarray(offset + 9 + keyBytes, offset + size));
    records.push({ space, key, value });
    this.#records++;
    return size;
  }

  #parseDigest(offset: number, available: number): number {
    if (available < DIGEST_BYTES) return 0;
    const digest = this.#pending.subarray(offset, offset + DIGEST_BYTES);
    if (!this.#digest!.equals(digest)) throw bad('the SHA-256 digest does not match: the snapshot is corrupted');
    this.#state = 'done';
    return DIGEST_BYTES;
  }
}

function bad(reason: string): GavelError {
  return new GavelError('InvalidArgument', `gavel: bad snapshot: ${reason}`);
}
