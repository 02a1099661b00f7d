/** Goal: the backend codecs round-trip every KeyValue and revision key, and sort in revision order. */
import { describe, expect, it } from 'vitest';
import { decodeKeyValue, decodeRevisionKey, decodeUint64, encodeKeyValue, encodeRevisionKey, encodeUint64 } from '../../server/mvcc/codec.js';
import type { KeyValue } from '../../server/mvcc/types.js';

const b = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('KeyValue codec', () => {
  it('round-trips edge cases: 63-bit and negative leases, empty and binary keys and values', () => {
    // Goal: nothing is lost between encode and decode.
    const cases: KeyValue[] = [
      { key: b('a'), createRevision: 2, modRevision: 3, version: 2, value: b('hello'), lease: 0n },
      { key: new Uint8Array(0), createRevision: 0, modRevision: 0, version: 0, value: new Uint8Array(0), lease: 0n },
      { key: Uint8Array.of(0, 255, 0), createRevision: 1, modRevision: Number.MAX_SAFE_INTEGER, version: 99, value: Uint8Array.of(0, 0, 255), lease: 0x7fffffffffffffffn },
      { key: b('k'), createRevision: 5, modRevision: 5, version: 1, value: new Uint8Array(4096).fill(7), lease: -1n },
      { key: b('k'), createRevision: 5, modRevision: 5, version: 1, value: b('v'), lease: 0x694d_71a1_2b3c_4d5en },
    ];
    for (const kv of cases) expect(decodeKeyValue(encodeKeyValue(kv))).toEqual(kv);
  });

  it('decodes from a view into a larger buffer', () => {
    // Goal: level may hand back a Uint8Array with a byteOffset; decoding must respect it.
    const kv: KeyValue = { key: b('key'), createRevision: 7, modRevision: 9, version: 3, value: b('value'), lease: 42n };
    const encoded = encodeKeyValue(kv);
    const padded = new Uint8Array(encoded.byteLength + 10);
    padded.set(encoded, 5);
    expect(decodeKeyValue(padded.subarray(5, 5 + encoded.byteLength))).toEqual(kv);
  });

  it('rejects truncated or unknown records', () => {
    // Goal: corrupt bytes crash loudly rather than load a wrong store.
    const encoded = encodeKeyValue({ key: b('key'), createRevision: 1, modRevision: 1, version: 1, value: b(''), lease: 0n });
    expect(() => decodeKeyValue(encoded.subarray(0, 20))).toThrow(/assertion failed/);
    expect(() => decodeKeyValue(encoded.subarray(0, 38))).toThrow(/assertion failed/);
    expect(() => decodeKeyValue(Uint8Array.of(9, ...encoded.subarray(1)))).toThrow(/assertion failed/);
    expect(() => encodeKeyValue({ key: b(''), createRevision: 1, modRevision: 1, version: 1, value: b(''), lease: 1n << 63n })).toThrow(/assertion failed/);
  });
});

describe('revision keys', () => {
  it('round-trips, marks tombstones with a 17th byte and sorts in revision order', () => {
    // Goal: level's byte order over these keys is (main, sub) order, like etcd's bucket keys.
    const revisions = [
      { main: 2, sub: 0 }, { main: 2, sub: 1 }, { main: 3, sub: 0 }, { main: 256, sub: 0 }, { main: 2 ** 40, sub: 7 }, { main: Number.MAX_SAFE_INTEGER, sub: 0 },
    ];
    const encoded = revisions.map((revision, index) => encodeRevisionKey(revision, index % 2 === 1));
    expect(encoded[0]).toHaveLength(16);
    expect(encoded[1]).toHaveLength(17);
    expect(encoded[1]![16]).toBe(0x74);
    encoded.forEach((key, index) => expect(decodeRevisionKey(key)).toEqual({ revision: revisions[index], tombstone: index % 2 === 1 }));
    const sorted = [...encoded].sort(Buffer.compare);
    expect(sorted).toEqual(encoded);
    expect(() => decodeRevisionKey(new Uint8Array(15))).toThrow(/assertion failed/);
  });

  it('round-trips meta numbers', () => {
    // Goal: meta values are exact 8-byte big-endian safe integers.
    for (const value of [0, 1, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) expect(decodeUint64(encodeUint64(value))).toBe(value);
  });
});
