/**
 * A watcher's key interval, normalized from etcd's request conventions:
 * empty key = "\0" (the smallest key); empty rangeEnd = the key alone; rangeEnd "\0" = every
 * key >= key; otherwise [key, rangeEnd).
 */
import type { Bytes, KeyRange } from '../mvcc/types.js';

export type WatchKeyRange =
  | { readonly kind: 'single'; readonly key: Bytes; readonly keyString: string }
  | { readonly kind: 'fromKey'; readonly key: Bytes }
  | { readonly kind: 'range'; readonly key: Bytes; readonly rangeEnd: Bytes };

/** undefined = an empty interval (etcd: "mvcc: watcher range is empty"). */
export function normalizeWatchRange(key: Bytes, rangeEnd: Bytes): WatchKeyRange | undefined {
  const start = key.length === 0 ? Uint8Array.of(0) : Uint8Array.from(key);
  if (rangeEnd.length === 0) return { kind: 'single', key: start, keyString: keyString(start) };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { kind: 'fromKey', key: start };
  if (compareBytes(start, rangeEnd) >= 0) return undefined;
  return { kind: 'range', key: start, rangeEnd: Uint8Array.from(rangeEnd) };
}

export function rangeContains(range: WatchKeyRange, key: Bytes): boolean {
  switch (range.kind) {
    case 'single':
      return compareBytes(range.key, key) === 0;
    case 'fromKey':
      return compareBytes(key, range.key) >= 0;
    case 'range':
      return compareBytes(key, range.key) >= 0 && compareBytes(key, range.rangeEnd) < 0;
  }
}

/** The interval in the store's KeyRange convention, for HistorySource.eventsInRange. */
export function toKeyRange(range: WatchKeyRange): KeyRange {
  switch (range.kind) {
    case 'single':
      return { key: range.key, rangeEnd: new Uint8Array(0) };
    case 'fromKey':
      return { key: range.key, rangeEnd: Uint8Array.of(0) };
    case 'range':
      return { key: range.key, rangeEnd: range.rangeEnd };
  }
}

export function compareBytes(a: Bytes, b: Bytes): number {
  return Buffer.compare(a, b);
}

/** One char per byte: a Map key equal for equal byte strings. */
export function keyString(key: Bytes): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}
