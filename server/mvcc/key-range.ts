/**
 * Byte-wise key order and etcd's range_end conventions, shared by the store, the watch layer and
 * the API: an empty rangeEnd is the key alone, rangeEnd = [0] is every key >= key, otherwise the
 * half-open interval [key, rangeEnd).
 */
import type { Bytes, KeyRange } from './types.js';

export const EMPTY_BYTES: Bytes = new Uint8Array(0);

/**
 * Byte-wise order, as Go's bytes.Compare: negative, zero or positive. A plain loop: for the short
 * keys of coordination data it is several times faster than crossing into Buffer.compare.
 */
export function compareBytes(a: Bytes, b: Bytes): number {
  const length = Math.min(a.byteLength, b.byteLength);
  for (let index = 0; index < length; index++) {
    const difference = a[index]! - b[index]!;
    if (difference !== 0) return difference;
  }
  return a.byteLength - b.byteLength;
}

export function bytesEqual(a: Bytes, b: Bytes): boolean {
  return a.byteLength === b.byteLength && compareBytes(a, b) === 0;
}

/** rangeEnd = [0] means "no upper bound" (etcd's "\0" range end). */
export function isOpenRangeEnd(rangeEnd: Bytes): boolean {
  return rangeEnd.byteLength === 1 && rangeEnd[0] === 0;
}

export function keyInRange(key: Bytes, range: KeyRange): boolean {
  if (range.rangeEnd.byteLength === 0) return bytesEqual(key, range.key);
  if (compareBytes(key, range.key) < 0) return false;
  return isOpenRangeEnd(range.rangeEnd) || compareBytes(key, range.rangeEnd) < 0;
}

/**
 * The range end that selects every key starting with prefix (etcd's GetPrefixRangeEnd): the prefix
 * with its last byte below 0xff incremented and the rest dropped; [0] (all keys) when every byte is 0xff.
 */
export function prefixRangeEnd(prefix: Bytes): Bytes {
  for (let i = prefix.byteLength - 1; i >= 0; i--) {
    const byte = prefix[i]!;
    if (byte < 0xff) {
      const end = new Uint8Array(prefix.subarray(0, i + 1));
      end[i] = byte + 1;
      return end;
    }
  }
  return Uint8Array.of(0);
}

/** A Map key for bytes: latin1 maps each byte to one UTF-16 unit, so it is one-to-one. */
export function keyString(key: Bytes): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

/** A private copy, so that a caller reusing its buffer cannot change stored history. */
export function copyBytes(bytes: Bytes): Bytes {
  return bytes.byteLength === 0 ? EMPTY_BYTES : new Uint8Array(bytes);
}
