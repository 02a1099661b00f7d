/**
 * The backend's binary formats, all big-endian so that level's byte order is revision order.
 *
 * Revision key (like etcd's bucket key): 8-byte main, 8-byte sub, then a 't' byte for a tombstone.
 * KeyValue value, format 1:
 *   [0]      format byte (1)
 *   [1..9)   createRevision u64
 *   [9..17)  modRevision u64
 *   [17..25) version u64
 *   [25..33) lease i64 (two's complement, so any etcd int64 lease id round-trips)
 *   [33..37) key length u32
 *   [37..)   key bytes, then value bytes to the end
 */
import { assert } from '../errors.js';
import type { KeyValue, Revision } from './types.js';

const REVISION_KEY_BYTES = 16;
const TOMBSTONE_MARK = 0x74; // 't'
const KEY_VALUE_FORMAT = 1;
const KEY_VALUE_HEADER_BYTES = 37;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

export function encodeRevisionKey(revision: Revision, tombstone: boolean): Uint8Array {
  const bytes = new Uint8Array(REVISION_KEY_BYTES + (tombstone ? 1 : 0));
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, toUint64(revision.main, 'main revision'));
  view.setBigUint64(8, toUint64(revision.sub, 'sub revision'));
  if (tombstone) bytes[REVISION_KEY_BYTES] = TOMBSTONE_MARK;
  return bytes;
}

export function decodeRevisionKey(bytes: Uint8Array): { revision: Revision; tombstone: boolean } {
  const tombstone = bytes.byteLength === REVISION_KEY_BYTES + 1;
  assert(bytes.byteLength === REVISION_KEY_BYTES || tombstone, `revision key has ${bytes.byteLength} bytes`);
  assert(!tombstone || bytes[REVISION_KEY_BYTES] === TOMBSTONE_MARK, 'revision key has a bad tombstone mark');
  const view = viewOf(bytes);
  // Two 32-bit halves rather than getBigUint64: load and compaction decode every stored key.
  const main = safeUint64(view, 0, 'main revision');
  const sub = safeUint64(view, 8, 'sub revision');
  return { revision: { main, sub }, tombstone };
}

export function encodeKeyValue(kv: KeyValue): Uint8Array {
  assert(kv.lease >= INT64_MIN && kv.lease <= INT64_MAX, `lease ${kv.lease} is not an int64`);
  const bytes = new Uint8Array(KEY_VALUE_HEADER_BYTES + kv.key.byteLength + kv.value.byteLength);
  const view = new DataView(bytes.buffer);
  bytes[0] = KEY_VALUE_FORMAT;
  view.setBigUint64(1, toUint64(kv.createRevision, 'createRevision'));
  view.setBigUint64(9, toUint64(kv.modRevision, 'modRevision'));
  view.setBigUint64(17, toUint64(kv.version, 'version'));
  view.setBigInt64(25, kv.lease);
  view.setUint32(33, kv.key.byteLength);
  bytes.set(kv.key, KEY_VALUE_HEADER_BYTES);
  bytes.set(kv.value, KEY_VALUE_HEADER_BYTES + kv.key.byteLength);
  return bytes;
}

export function decodeKeyValue(bytes: Uint8Array): KeyValue {
  assert(bytes.byteLength >= KEY_VALUE_HEADER_BYTES, `key-value record has only ${bytes.byteLength} bytes`);
  assert(bytes[0] === KEY_VALUE_FORMAT, `unknown key-value format ${bytes[0]}`);
  const view = viewOf(bytes);
  const keyBytes = view.getUint32(33);
  const keyEnd = KEY_VALUE_HEADER_BYTES + keyBytes;
  assert(keyEnd <= bytes.byteLength, 'key-value record key overruns the record');
  return {
    // Plain copies: level may hand back a Buffer, whose slice() would be a view of its memory.
    key: new Uint8Array(bytes.subarray(KEY_VALUE_HEADER_BYTES, keyEnd)),
    createRevision: fromUint64(view.getBigUint64(1), 'createRevision'),
    modRevision: fromUint64(view.getBigUint64(9), 'modRevision'),
    version: fromUint64(view.getBigUint64(17), 'version'),
    value: new Uint8Array(bytes.subarray(keyEnd)),
    lease: view.getBigInt64(25),
  };
}

/** What the key index needs of a stored version, without copying its value (store restore). */
export interface RecordHeader {
  /** The key's latin1 image (key-range.ts keyString). */
  readonly key: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  readonly lease: bigint;
}

export function decodeRecordHeader(bytes: Uint8Array): RecordHeader {
  assert(bytes.byteLength >= KEY_VALUE_HEADER_BYTES, `key-value record has only ${bytes.byteLength} bytes`);
  assert(bytes[0] === KEY_VALUE_FORMAT, `unknown key-value format ${bytes[0]}`);
  const view = viewOf(bytes);
  const keyEnd = KEY_VALUE_HEADER_BYTES + view.getUint32(33);
  assert(keyEnd <= bytes.byteLength, 'key-value record key overruns the record');
  return {
    key: Buffer.from(bytes.buffer, bytes.byteOffset + KEY_VALUE_HEADER_BYTES, keyEnd - KEY_VALUE_HEADER_BYTES).toString('latin1'),
    createRevision: safeUint64(view, 1, 'createRevision'),
    modRevision: safeUint64(view, 9, 'modRevision'),
    version: safeUint64(view, 17, 'version'),
    lease: view.getInt32(25) === 0 && view.getUint32(29) === 0 ? 0n : view.getBigInt64(25),
  };
}

/** The stored size of a version (its revision key plus record), for the bytes-in-use figure. */
export function storedBytes(kv: { readonly key: Uint8Array; readonly value: Uint8Array }, tombstone: boolean): number {
  return REVISION_KEY_BYTES + (tombstone ? 1 : 0) + KEY_VALUE_HEADER_BYTES + kv.key.byteLength + kv.value.byteLength;
}

/** A meta value: one unsigned 64-bit big-endian number. */
export function encodeUint64(value: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, toUint64(value, 'meta value'));
  return bytes;
}

export function decodeUint64(bytes: Uint8Array): number {
  assert(bytes.byteLength === 8, `meta value has ${bytes.byteLength} bytes`);
  return fromUint64(viewOf(bytes).getBigUint64(0), 'meta value');
}

function toUint64(value: number, what: string): bigint {
  assert(Number.isSafeInteger(value) && value >= 0, `${what} ${value} is not a non-negative safe integer`);
  return BigInt(value);
}

function fromUint64(value: bigint, what: string): number {
  assert(value <= BigInt(Number.MAX_SAFE_INTEGER), `${what} ${value} is not a safe integer`);
  return Number(value);
}

/** An unsigned 64-bit big-endian number at offset, which must be a safe integer. */
function safeUint64(view: DataView, offset: number, what: string): number {
  const high = view.getUint32(offset);
  assert(high <= 0x1fffff, `${what} is not a safe integer`);
  return high * 0x1_0000_0000 + view.getUint32(offset + 4);
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

