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

import { ProtoWriter as Bytes } from '../proto-writer.js';
import { headerMessage, keyValueMessage, type HeaderFields } from './response-encoding.js';

export type { HeaderFields } from './response-encoding.js';

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
  body.message(2, keyValueMessage(event.kv));
  if (event.prevKv !== undefined) body.message(3, keyValueMessage(event.prevKv));
  const field = new Bytes();
  field.message(11, body.finish());
  // Copied out of Node's buffer pool: the cached bytes live as long as their KeyValue (in the
  // version cache, for minutes), and a view would keep a whole 8 KiB pool slab alive with them.
  const bytes = ownBytes(field.finish());
  cache.set(event.kv, bytes);
  return bytes;
}

/** Everything before the events: header, watch id and flags (proto3: defaults left out). */
function headFields(response: WatchResponse, header: HeaderFields): Uint8Array {
  const out = new Bytes();
  out.message(1, headerMessage(header, response.headerRevision));
  // int64 watch_id: -1 (a refused create, a stream-wide progress) is ten bytes of two's complement.
  if (response.watchId !== 0) out.bigVarintField(2, BigInt.asUintN(64, BigInt(response.watchId)));
  if (response.created === true) out.varintField(3, 1);
  if (response.canceled === true) out.varintField(4, 1);
  if ((response.compactRevision ?? 0) !== 0) out.varintField(5, response.compactRevision!);
  if ((response.cancelReason ?? '') !== '') out.bytesField(6, Buffer.from(response.cancelReason!, 'utf8'));
  if (response.fragment === true) out.varintField(7, 1);
  return out.finish();
}
