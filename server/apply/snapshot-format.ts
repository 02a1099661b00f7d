/**
 * The byte format of a state snapshot, written and read as a stream so that neither side ever
 * holds a whole snapshot in memory:
 *
 *   "GVS2" (4 bytes), format version u32 (1, or 2 when aligned)
 *   records: space index u8 (storage/layout.ts SPACES), key length u32, key, value length u32, value
 *   end: 0xff, record count u64
 *   version 2 only: padding length u32, that many zero bytes
 *   SHA-256 of every byte before it (32 bytes) — as etcd's snapshot stream ends with the SHA-256
 *   of the database, so a truncated or corrupted file is always refused.
 *
 * Version 2 pads the bytes before the digest to a multiple of 512: backups, because etcdctl's
 * `snapshot save` refuses a file whose size is not 32 more than a multiple of 512 ("sha256
 * checksum not found"; it expects a bbolt file of whole pages plus the digest). Raft snapshots
 * stay version 1, which every gavel member reads.
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
const ALIGNED_FORMAT_VERSION = 2;
const HEADER_BYTES = 8;
const END_MARK = 0xff;
const END_BYTES = 9;
const PADDING_LENGTH_BYTES = 4;
/** Version 2's alignment of the bytes before the digest (etcdctl checks size % 512 === 32). */
export const BACKUP_ALIGN_BYTES = 512;
/** The SHA-256 trailer: the last bytes of every snapshot stream and file. */
export const DIGEST_BYTES = 32;
/** Larger keys or values than this are not gavel's (requests are bounded far below it). */
const MAX_FIELD_BYTES = 256 * 1024 * 1024;

export interface SnapshotRecord {
  readonly space: Space;
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

/**
 * The exact size of the stream of these records, without the digest trailer: what
 * Maintenance.Snapshot announces in remaining_bytes, as etcd counts the database it streams.
 */
export function encodedSnapshotBytes(recordBytes: number, aligned: boolean): number {
  const unpadded = HEADER_BYTES + recordBytes + END_BYTES;
  return aligned ? unpadded + PADDING_LENGTH_BYTES + paddingFor(unpadded) : unpadded;
}

/** Zero bytes that bring `unpadded` bytes and the padding length field to a multiple of the alignment. */
function paddingFor(unpadded: number): number {
  return (BACKUP_ALIGN_BYTES - ((unpadded + PADDING_LENGTH_BYTES) % BACKUP_ALIGN_BYTES)) % BACKUP_ALIGN_BYTES;
}

/** The bytes one record takes in the stream. */
export function encodedRecordBytes(key: Uint8Array, value: Uint8Array): number {
  return 9 + key.byteLength + value.byteLength;
}

/** Builds the stream; take() hands out what has accumulated, finish() the rest with the digest. */
export class SnapshotEncoder {
  readonly #hash: Hash = createHash('sha256');
  #parts: Uint8Array[] = [];
  #buffered = 0;
  #records = 0n;
  #finished = false;
  /** Bytes appended so far (the padding depends on it). */
  #total = 0;
  readonly #aligned: boolean;

  /** aligned: version 2, padded to BACKUP_ALIGN_BYTES before the digest (backups). */
  constructor(options: { readonly aligned?: boolean } = {}) {
    this.#aligned = options.aligned ?? false;
    const header = new Uint8Array(HEADER_BYTES);
    const view = new DataView(header.buffer);
    view.setUint32(0, MAGIC);
    view.setUint32(4, this.#aligned ? ALIGNED_FORMAT_VERSION : FORMAT_VERSION);
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
    const end = new Uint8Array(END_BYTES);
    const view = new DataView(end.buffer);
    view.setUint8(0, END_MARK);
    view.setBigUint64(1, this.#records);
    this.#append(end);
    if (this.#aligned) {
      const padding = paddingFor(this.#total);
      const length = new Uint8Array(PADDING_LENGTH_BYTES);
      new DataView(length.buffer).setUint32(0, padding);
      this.#append(length);
      this.#append(new Uint8Array(padding));
    }
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
    this.#total += bytes.byteLength;
  }
}

/**
 * Reads the stream chunk by chunk. push() returns the records completed by the chunk; end()
 * throws unless the stream ended exactly after a valid digest.
 */
export class SnapshotDecoder {
  readonly #hash: Hash = createHash('sha256');
  /** false only for `gavel snapshot restore --skip-hash-check`: the trailer is read but not compared. */
  readonly #checkDigest: boolean;
  /** Bytes received but not yet parsed (at most one record plus a chunk). */
  #pending: Buffer = Buffer.alloc(0);
  #state: 'header' | 'records' | 'padding' | 'digest' | 'done' = 'header';
  #version = FORMAT_VERSION;
  #records = 0n;
  #expectedRecords = 0n;
  #digest: Buffer | undefined;
  #trailer: Buffer | undefined;

  constructor(options: { readonly checkDigest?: boolean } = {}) {
    this.#checkDigest = options.checkDigest ?? true;
  }

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

  /** The SHA-256 trailer as read from the stream (once it has been). */
  get trailer(): Uint8Array | undefined {
    return this.#trailer;
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
      case 'padding':
        return this.#parsePadding(offset, available);
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
    const version = bytes.readUInt32BE(4);
    if (version !== FORMAT_VERSION && version !== ALIGNED_FORMAT_VERSION) throw bad(`unknown snapshot format ${version}`);
    this.#version = version;
    this.#hash.update(bytes);
    this.#state = 'records';
    return HEADER_BYTES;
  }

  #parseRecord(offset: number, available: number, records: SnapshotRecord[]): number {
    if (available < 1) return 0;
    const data = this.#pending;
    const index = data[offset]!;
    if (index === END_MARK) {
      if (available < END_BYTES) return 0;
      this.#expectedRecords = data.readBigUInt64BE(offset + 1);
      if (this.#expectedRecords !== this.#records) throw bad(`the snapshot announces ${this.#expectedRecords} records but holds ${this.#records}`);
      this.#hash.update(data.subarray(offset, offset + END_BYTES));
      if (this.#version === ALIGNED_FORMAT_VERSION) {
        this.#state = 'padding';
        return END_BYTES;
      }
      this.#digest = this.#hash.digest();
      this.#state = 'digest';
      return END_BYTES;
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

  #parsePadding(offset: number, available: number): number {
    if (available < PADDING_LENGTH_BYTES) return 0;
    const padding = this.#pending.readUInt32BE(offset);
    if (padding >= BACKUP_ALIGN_BYTES) throw bad(`a padding of ${padding} bytes`);
    const size = PADDING_LENGTH_BYTES + padding;
    if (available < size) return 0;
    const bytes = this.#pending.subarray(offset, offset + size);
    if (bytes.subarray(PADDING_LENGTH_BYTES).some((byte) => byte !== 0)) throw bad('the padding is not zeros');
    this.#hash.update(bytes);
    this.#digest = this.#hash.digest();
    this.#state = 'digest';
    return size;
  }

  #parseDigest(offset: number, available: number): number {
    if (available < DIGEST_BYTES) return 0;
    const digest = this.#pending.subarray(offset, offset + DIGEST_BYTES);
    if (this.#checkDigest && !this.#digest!.equals(digest)) throw bad('the SHA-256 digest does not match: the snapshot is corrupted');
    this.#trailer = Buffer.from(digest);
    this.#state = 'done';
    return DIGEST_BYTES;
  }
}

function bad(reason: string): GavelError {
  return new GavelError('InvalidArgument', `gavel: bad snapshot: ${reason}`);
}
