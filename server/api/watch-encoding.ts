/**
 * etcdserverpb.WatchResponse written straight to protobuf bytes, with each event encoded ONCE
 * however many watchers get it: a put watched by 1,000 watchers used to be turned into wire
 * objects and serialized 1,000 times. An event's bytes are cached against its KeyValue (the same
 * object reaches every watcher of a revision; a watcher that did not ask for prev_kv gets the
 * bytes without it), and a response is the small per-watcher part (header, watch id, flags)
 * followed by those cached bytes. Field numbers are rpc.proto's and kv.proto's; a unit test reads
 * the bytes back with protobufjs.
 */
import type { KeyValue, MvccEvent } from '../mvcc/types.js';
import { ownBytes } from '../proto.js';
import type { WatchResponse } from '../watch/types.js';

export interface HeaderFields {
  readonly clusterId: bigint;
  readonly memberId: bigint;
  readonly raftTerm: number;
}

const VARINT = 0;
const LENGTH_DELIMITED = 2;
const UINT64 = (1n << 64n) - 1n;

/** Encoded events, by KeyValue: without prev_kv, and with it. Collected with their versions. */
const withoutPrev = new WeakMap<KeyValue, Uint8Array>();
const withPrev = new WeakMap<KeyValue, Uint8Array>();

/** The bytes of one WatchResponse for one watcher. */
export function encodeWatchResponse(response: WatchResponse, header: HeaderFields): Buffer {
  const events = response.events.map(eventField);
  const parts: Uint8Array[] = [headFields(response, header)];
  for (const event of events) parts.push(event);
  return Buffer.concat(parts);
}

/** Field 11 (an Event), from the cache when another watcher already needed it. */
export function eventField(event: MvccEvent): Uint8Array {
  const cache = event.prevKv === undefined ? withoutPrev : withPrev;
  const cached = cache.get(event.kv);
  if (cached !== undefined) return cached;
  const body = new Bytes();
  body.varintField(1, event.type === 'put' ? 0 : 1);
  body.message(2, keyValue(event.kv));
  if (event.prevKv !== undefined) body.message(3, keyValue(event.prevKv));
  const field = new Bytes();
  field.message(11, body.finish());
  // Copied out of Node's buffer pool: the cached bytes live as long as their KeyValue (in the
  // version cache, for minutes), and a view would keep a whole 8 KiB pool slab alive with them.
  const bytes = ownBytes(field.finish());
  cache.set(event.kv, bytes);
  return bytes;
}

function keyValue(kv: KeyValue): Uint8Array {
  const bytes = new Bytes();
  bytes.bytesField(1, kv.key);
  bytes.varintField(2, kv.createRevision);
  bytes.varintField(3, kv.modRevision);
  bytes.varintField(4, kv.version);
  bytes.bytesField(5, kv.value);
  if (kv.lease !== 0n) bytes.bigVarintField(6, BigInt.asUintN(64, kv.lease));
  return bytes.finish();
}

/** Everything before the events: header, watch id and flags (proto3: defaults left out). */
function headFields(response: WatchResponse, header: HeaderFields): Uint8Array {
  const head = new Bytes();
  head.bigVarintField(1, header.clusterId);
  head.bigVarintField(2, header.memberId);
  head.varintField(3, response.headerRevision);
  head.varintField(4, header.raftTerm);
  const out = new Bytes();
  out.message(1, head.finish());
  // int64 watch_id: -1 (a refused create, a stream-wide progress) is ten bytes of two's complement.
  if (response.watchId !== 0) out.bigVarintField(2, BigInt.asUintN(64, BigInt(response.watchId)));
  if (response.created === true) out.varintField(3, 1);
  if (response.canceled === true) out.varintField(4, 1);
  if ((response.compactRevision ?? 0) !== 0) out.varintField(5, response.compactRevision!);
  if ((response.cancelReason ?? '') !== '') out.bytesField(6, Buffer.from(response.cancelReason!, 'utf8'));
  if (response.fragment === true) out.varintField(7, 1);
  return out.finish();
}

/** A small protobuf writer: a list of chunks joined once. */
class Bytes {
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
