/**
 * CRC-32 (IEEE 802.3 polynomial, as zlib), incremental, for the store hash (Maintenance.HashKV).
 * zlib's own (node:zlib crc32, native) where this Node has it — it hashes a member's whole
 * history, hundreds of megabytes — and a table-driven one otherwise; both give the same values.
 */
import * as zlib from 'node:zlib';

const TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** The table-driven CRC-32: the reference the native one is checked against. */
export function crc32Table(bytes: Uint8Array, crc = 0): number {
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.byteLength; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

type Crc32 = (bytes: Uint8Array, crc?: number) => number;
/** node:zlib has crc32 from Node 20.15 and 22.2. */
const native = (zlib as unknown as { crc32?: Crc32 }).crc32;

/** Continue a CRC over more bytes; start with crc = 0. Returns an unsigned 32-bit value. */
export const crc32: Crc32 = native === undefined ? crc32Table : (bytes, crc = 0) => native(bytes, crc);
