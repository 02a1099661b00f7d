/** Small helpers shared by the Raft core. */
import type { Entry } from './types.js';

/** A programmer error: crashes, is never caught. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`raft assertion failed: ${message}`);
}

export function assertNever(value: never, what = 'value'): never {
  throw new Error(`raft: unexpected ${what}: ${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}`);
}

/** Fixed per-entry overhead so that empty entries still count toward size limits. */
const ENTRY_OVERHEAD_BYTES = 16;

export function entrySizeBytes(entry: Entry): number {
  return entry.data.byteLength + ENTRY_OVERHEAD_BYTES;
}

export function entriesSizeBytes(entries: readonly Entry[]): number {
  let total = 0;
  for (const entry of entries) total += entrySizeBytes(entry);
  return total;
}

/** The longest prefix within maxBytes, but always at least one entry (progress must be possible). */
export function limitSize(entries: readonly Entry[], maxBytes: number): readonly Entry[] {
  if (entries.length === 0) return entries;
  let size = entrySizeBytes(entries[0]!);
  let count = 1;
  for (; count < entries.length; count++) {
    size += entrySizeBytes(entries[count]!);
    if (size > maxBytes) break;
  }
  return count === entries.length ? entries : entries.slice(0, count);
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function bytesToHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);
