// Goal: watch responses written straight to bytes (one encoding per event, shared by watchers)
// read back with protobufjs as exactly the WatchResponse etcd's clients expect, for every field
// (negative watch id, cancel reason, compact revision, fragment, prev_kv, 63-bit leases).
import { describe, expect, it } from 'vitest';
import { messageCodec } from '../../server/proto.js';
import { encodeWatchResponse, eventField } from '../../server/api/watch-encoding.js';
import { encodeKeepAliveResponse } from '../../server/api/response-encoding.js';
import type { KeyValue, MvccEvent } from '../../server/mvcc/types.js';
import type { WatchResponse } from '../../server/watch/types.js';

const codec = messageCodec<Record<string, unknown>>('etcdserverpb.WatchResponse');
const header = { clusterId: 0xf00dfeedbeefcafen, memberId: 0x8000000000000001n, raftTerm: 7 };
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

const v1: KeyValue = { key: text('a'), createRevision: 5, modRevision: 5, version: 1, value: text('x'), lease: 0n };
const v2: KeyValue = { key: text('a'), createRevision: 5, modRevision: 9, version: 2, value: text('yy'), lease: 0x7fffffffffffffffn };
const tomb: KeyValue = { key: text('a'), createRevision: 0, modRevision: 12, version: 0, value: new Uint8Array(0), lease: 0n };

function wireKv(kv: KeyValue): object {
  return {
    key: Buffer.from(kv.key),
    create_revision: String(kv.createRevision),
    mod_revision: String(kv.modRevision),
    version: String(kv.version),
    value: Buffer.from(kv.value),
    lease: kv.lease.toString(),
  };
}

function expected(r: WatchResponse): object {
  return {
    header: { cluster_id: header.clusterId.toString(), member_id: header.memberId.toString(), revision: String(r.headerRevision), raft_term: String(header.raftTerm) },
    watch_id: String(r.watchId),
    created: r.created === true,
    canceled: r.canceled === true,
    compact_revision: String(r.compactRevision ?? 0),
    cancel_reason: r.cancelReason ?? '',
    fragment: r.fragment === true,
    events: r.events.map((e) => ({ type: e.type === 'put' ? 0 : 1, kv: wireKv(e.kv), prev_kv: e.prevKv === undefined ? null : wireKv(e.prevKv) })),
  };
}

describe('watch response encoding', () => {
  const events: MvccEvent[] = [{ type: 'put', kv: v1 }, { type: 'put', kv: v2, prevKv: v1 }, { type: 'delete', kv: tomb, prevKv: v2 }];
  const cases: WatchResponse[] = [
    { watchId: 0, headerRevision: 12, created: true, events: [] },
    { watchId: 3, headerRevision: 12, events },
    { watchId: 3, headerRevision: 12, events: events.map((e) => ({ type: e.type, kv: e.kv })), fragment: true },
    { watchId: -1, headerRevision: 40, created: true, canceled: true, cancelReason: 'gavel: too many watchers on this stream (limit 10000)', events: [] },
    { watchId: 9, headerRevision: 40, canceled: true, compactRevision: 33, cancelReason: 'etcdserver: mvcc: required revision has been compacted', events: [] },
    { watchId: -1, headerRevision: 41, events: [] },
  ];
  for (const [index, response] of cases.entries()) {
    it(`reads back as etcd's WatchResponse (case ${index})`, () => {
      const decoded = codec.decode(encodeWatchResponse(response, header)) as Record<string, unknown>;
      expect(normalize(decoded)).toEqual(normalize(expected(response)));
    });
  }

  it('encodes an event once for every watcher that gets it', () => {
    const first = encodeWatchResponse({ watchId: 1, headerRevision: 9, events: [{ type: 'put', kv: v2, prevKv: v1 }] }, header);
    const second = encodeWatchResponse({ watchId: 2, headerRevision: 9, events: [{ type: 'put', kv: v2, prevKv: v1 }] }, header);
    // Same event bytes at the end, different heads.
    const tail = (bytes: Buffer): string => bytes.subarray(bytes.length - 20).toString('hex');
    expect(tail(first)).toBe(tail(second));
    expect(first.equals(second)).toBe(false);
  });
});

function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('hex');
  if (Array.isArray(value)) return value.map(normalize);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v)]));
  return value;
}

describe('cached event bytes', () => {
  it("are kept in a buffer of their own, not in a slab of Node's buffer pool", () => {
    // The cache lives as long as the KeyValue (minutes, in the version cache): a pooled view kept
    // 8 KiB alive per small event, and the soak benchmark's members grew by it.
    for (let i = 0; i < 50; i++) {
      const kv: KeyValue = { key: text(`lock/${i}`), createRevision: i + 1, modRevision: i + 1, version: 1, value: text('v'.repeat(i)), lease: 0n };
      const bytes = eventField({ type: 'put', kv });
      expect(bytes.buffer.byteLength).toBe(bytes.byteLength);
    }
  });
});

// Goal: lease keep-alive answers written straight to bytes read back as the LeaseKeepAliveResponse
// etcd's clients expect: 63-bit ids, TTL 0 (an unknown or expired lease), a large TTL.
describe('keep-alive responses written by hand', () => {
  const keepAliveCodec = messageCodec<Record<string, unknown>>('etcdserverpb.LeaseKeepAliveResponse');

  for (const [id, ttl] of [[0x7fffffffffffffffn, 60], [1n, 0], [123456789n, 9_000_000_000]] as const) {
    it(`id ${id}, TTL ${ttl}`, () => {
      const decoded = keepAliveCodec.decode(encodeKeepAliveResponse(header, 42, id, ttl));
      expect(decoded).toEqual({
        header: { cluster_id: header.clusterId.toString(), member_id: header.memberId.toString(), revision: '42', raft_term: String(header.raftTerm) },
        ID: id.toString(),
        TTL: String(ttl),
      });
    });
  }
});
