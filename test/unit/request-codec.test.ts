// Goal: a mutation survives the trip through the Raft log bytes exactly, 63-bit lease ids included.
import { describe, expect, it } from 'vitest';
import { decodeRequest, encodeRequest } from '../../server/apply/request.js';
import { toBigInt } from '../../server/api/convert.js';

describe('log payload codec', () => {
  it('round-trips a put with the largest int64 lease id and arbitrary bytes', () => {
    const key = Buffer.from([0, 255, 1, 128]);
    const bytes = encodeRequest(0xffff_ffff_ffffn, {
      put: { key, value: Buffer.alloc(0), lease: '9223372036854775807', prev_kv: true, ignore_value: false, ignore_lease: false },
    });
    const decoded = decodeRequest(bytes);
    expect(decoded.request).toBe('put');
    expect(toBigInt(decoded.id)).toBe(0xffff_ffff_ffffn);
    expect(Buffer.from(decoded.put!.key).equals(key)).toBe(true);
    expect(decoded.put!.lease).toBe('9223372036854775807');
    expect(toBigInt(decoded.put!.lease)).toBe(0x7fff_ffff_ffff_ffffn);
    expect(decoded.put!.prev_kv).toBe(true);
  });

  it('round-trips a nested txn and a lease grant', () => {
    const decoded = decodeRequest(
      encodeRequest(7n, {
        txn: {
          compare: [{ result: 3, target: 3, key: Buffer.from('k'), target_union: 'value', value: Buffer.from('v'), range_end: Buffer.alloc(0) }],
          success: [{ request_txn: { compare: [], success: [{ request_delete_range: { key: Buffer.from('a'), range_end: Buffer.from([0]), prev_kv: false } }], failure: [] } }],
          failure: [],
        },
      }),
    );
    expect(decoded.txn!.compare[0]!.target_union).toBe('value');
    expect(decoded.txn!.success[0]!.request_txn!.success[0]!.request_delete_range!.range_end).toEqual(Buffer.from([0]));
    const grant = decodeRequest(encodeRequest(8n, { lease_grant: { ID: '1311768467294899695', TTL: '5' } }));
    expect(grant.lease_grant).toEqual({ ID: '1311768467294899695', TTL: '5' });
  });
});
