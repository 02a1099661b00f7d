/**
 * Protobuf bytes written by hand for the responses a member sends most often (watch events,
 * lease keep-alives): no wire object, no int64 strings turned into Longs, one encoding. Field
 * numbers are rpc.proto's; unit tests read the bytes back with protobufjs.
 */

/** The parts of etcdserverpb.ResponseHeader that do not change per response. */
export interface HeaderFields {
  readonly clusterId: bigint;
  readonly memberId: bigint;
  readonly raftTerm: number;
}

const VARINT = 0;
const LENGTH_DELIMITED = 2;
const UINT64 = (1n << 64n) - 1n;

/** etcdserverpb.ResponseHeader (proto3: zero fields left out). */
export function headerMessage(header: HeaderFields, revision: number): Uint8Array {
  const head = new ProtoWriter();
  head.bigVarintField(1, header.clusterId);
  head.bigVarintField(2, header.memberId);
  head.varintField(3, revision);
  head.varintField(4, header.raftTerm);
  return head.finish();
}

/** etcdserverpb.LeaseKeepAliveResponse: header, ID, TTL. */
export function encodeKeepAliveResponse(header: HeaderFields, revision: number, id: bigint, ttl: number): Buffer {
  const out = new ProtoWriter();
  out.message(1, headerMessage(header, revision));
  out.bigVarintField(2, BigInt.asUintN(64, id));
  // int64 TTL: an unknown lease answers 0; a negative one would be ten bytes of two's complement.
  if (ttl < 0) out.bigVarintField(3, BigInt.asUintN(64, BigInt(ttl)));
  else out.varintField(3, ttl);
  const bytes = out.finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

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
