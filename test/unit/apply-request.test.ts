// Goal: a Put's log entry written by hand (server/apply/request.ts) decodes to exactly what
// protobufjs's encoding of the same InternalRequest decodes to, for every field of a PutRequest,
// with and without the auth header, and owns its bytes (no view into Node's buffer pool).
import { describe, expect, it } from 'vitest';
import { decodeRequest, encodeRequest } from '../../server/apply/request.js';
import { messageCodec } from '../../server/proto.js';
import type { WireInternalRequest, WirePutRequest } from '../../server/api/wire.js';

const codec = messageCodec<WireInternalRequest>('gavel.internal.v1.InternalRequest');

function put(overrides: Partial<WirePutRequest> = {}): WirePutRequest {
  return { key: Buffer.from('k'), value: Buffer.from('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false, ...overrides };
}

const cases: [string, Parameters<typeof encodeRequest>[1]][] = [
  ['a plain put', { put: put() }],
  ['a put with the auth header', { put: put(), header: { username: 'alice' } }],
  ['an empty username', { put: put(), header: { username: '' } }],
  ['a 63-bit lease and every flag', { put: put({ lease: '9223372036854775807', prev_kv: true, ignore_value: true, ignore_lease: true }), header: { username: 'ü' } }],
  ['an empty value and a binary key', { put: put({ key: Buffer.from([0, 255, 10]), value: Buffer.alloc(0) }) }],
  ['a large value', { put: put({ value: Buffer.alloc(100_000, 7) }) }],
  // Members' own proposals and tests write partial objects: absent fields are proto3 defaults.
  ['a put with only key and value', { put: { key: Buffer.from('k'), value: Buffer.from('v') } as WirePutRequest }],
  ['a put with only a key and a numeric lease', { put: { key: Buffer.from('k'), lease: 7 } as unknown as WirePutRequest }],
  ['a put whose key is not bytes (left to protobufjs)', { put: { key: 'aGk=', value: Buffer.from('v') } as unknown as WirePutRequest }],
];

describe('Put entries encoded by hand', () => {
  for (const [name, mutation] of cases) {
    for (const id of [1n, 0xffff_ffff_ffff_ffffn, 0x1234_5678_9abc_def0n]) {
      it(`${name}, request id ${id}`, () => {
        const bytes = encodeRequest(id, mutation);
        const reference = codec.encode({ ...mutation, id: id.toString() } as WireInternalRequest);
        expect(decodeRequest(bytes)).toEqual(decodeRequest(reference));
        expect(bytes.byteLength).toBe(bytes.buffer.byteLength);
      });
    }
  }
});
