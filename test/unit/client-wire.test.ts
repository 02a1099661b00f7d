/**
 * The client's wire requests leave range_end unset for a single key: etcd (Go) decodes an
 * explicitly sent empty bytes field as "every key from here on", which turned single-key gets,
 * compares and watches into open-ended ranges against a real etcd.
 */
import { describe, expect, it } from 'vitest';
import { compare, op, rangeToWire, txnToWire } from '../../client/kv.js';
import { serviceDefinition } from '../../server/proto.js';

const RANGE_END_TAG = 0x12; // field 2, length-delimited (RangeRequest.range_end, DeleteRangeRequest.range_end)

describe('client wire requests', () => {
  it('sends no range_end for a single-key range, and the prefix end for a prefix', () => {
    const serialize = serviceDefinition('etcdserverpb.KV')['Range']!.requestSerialize;
    const single = serialize(rangeToWire('a/b', {}));
    // key is field 1 (0x0a, length 3, "a/b"); the byte after it must not start a range_end.
    expect(single[0]).toBe(0x0a);
    expect(single[5]).not.toBe(RANGE_END_TAG);
    expect(rangeToWire('a/', { prefix: true }).range_end.toString()).toBe('a0');
  });

  it('leaves range_end unset in compares and deletes on one key', () => {
    const txn = txnToWire({ compare: [compare.createRevision('k', '==', 3n)], success: [op.delete('k')], failure: [] });
    expect(txn.compare[0]?.range_end).toBeUndefined();
    expect(txn.success[0]?.request_delete_range?.range_end).toBeUndefined();
    const serialize = serviceDefinition('etcdserverpb.KV')['Txn']!.requestSerialize;
    const decoded = serviceDefinition('etcdserverpb.KV')['Txn']!.requestDeserialize(serialize(txn)) as { compare: { range_end: Buffer }[] };
    expect(decoded.compare[0]?.range_end.length).toBe(0);
  });
});
