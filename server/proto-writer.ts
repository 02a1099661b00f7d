/**
 * A small protobuf writer for the messages gavel writes by hand on hot paths (watch events,
 * keep-alive answers, the Raft entries of puts): no intermediate objects, int64 as bigint.
 */

const VARINT = 0;
const LENGTH_DELIMITED = 2;
const UINT64 = (1n << 64n) - 1n;

/** A small protobuf writer: a list of chunks joined once. */
export class ProtoWriter {
  private readonly parts: Uint8Array[] = [];
  private scratch: number[] = [];

  finish(): Uint8Array {
    this.flushScratch();
    return this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
  }

  varintField(field: number, value: number): void {
    if (value === 0) return;
    this.varint(field * 8 + VARINT);
    this.varint(value);
  }

  bigVarintField(field: number, value: bigint): void {
    if (value === 0n) return;
    this.varint(field * 8 + VARINT);
    let rest = value & UINT64;
    while (rest >= 0x80n) {
      this.scratch.push(Number(rest & 0x7fn) | 0x80);
      rest >>= 7n;
    }
    this.scratch.push(Number(rest));
  }

  bytesField(field: number, value: Uint8Array): void {
    if (value.byteLength === 0) return;
    this.message(field, value);
  }

  /** Bytes already in protobuf form (fields encoded elsewhere, such as a cached prefix). */
  raw(bytes: Uint8Array): void {
    if (bytes.byteLength === 0) return;
    this.flushScratch();
    this.parts.push(bytes);
  }

  /** A length-delimited field (a nested message or bytes), even when empty. */
  message(field: number, body: Uint8Array): void {
    this.varint(field * 8 + LENGTH_DELIMITED);
    this.varint(body.byteLength);
    this.flushScratch();
    this.parts.push(body);
  }

  private varint(value: number): void {
    while (value >= 0x80) {
      this.scratch.push((value % 0x80) | 0x80);
      value = Math.floor(value / 0x80);
    }
    this.scratch.push(value);
  }

  private flushScratch(): void {
    if (this.scratch.length === 0) return;
    this.parts.push(Uint8Array.from(this.scratch));
    this.scratch = [];
  }
}
