/** The election observer's core: every revision's leader is reported, in order, none skipped. */
import { describe, expect, it } from 'vitest';
import { LeaderTracker } from '../../client/election.js';
import type { KeyValue } from '../../client/kv.js';
import type { WatchBatch } from '../../client/watch.js';

function kv(key: string, value: string, createRevision: number, modRevision = createRevision): KeyValue {
  return { key: Buffer.from(key), value: Buffer.from(value), createRevision: BigInt(createRevision), modRevision: BigInt(modRevision), version: 1n, lease: 1n };
}

function values(changes: { leader: KeyValue | undefined }[]): string[] {
  return changes.map((c) => (c.leader === undefined ? '-' : c.leader.value.toString()));
}

describe('LeaderTracker', () => {
  it('reports "no leader" first when the election is empty', () => {
    expect(values(new LeaderTracker().reset([], 5n))).toEqual(['-']);
  });

  it('reports each revision of a batch that spans several (a proclaim is not skipped)', () => {
    const tracker = new LeaderTracker();
    expect(values(tracker.reset([kv('e/a', 'one', 2)], 2n))).toEqual(['one']);
    const batch: WatchBatch = {
      revision: 4n,
      events: [
        { type: 'put', kv: kv('e/a', 'two', 2, 3), prevKv: undefined },
        { type: 'put', kv: kv('e/a', 'three', 2, 4), prevKv: undefined },
      ],
    };
    expect(values(tracker.apply(batch))).toEqual(['two', 'three']);
  });

  it('ignores candidates joining behind the leader, and hands over in create order', () => {
    const tracker = new LeaderTracker();
    tracker.reset([kv('e/a', 'A', 2)], 2n);
    expect(values(tracker.apply({ revision: 3n, events: [{ type: 'put', kv: kv('e/b', 'B', 3), prevKv: undefined }] }))).toEqual([]);
    const resign: WatchBatch = { revision: 5n, events: [{ type: 'delete', kv: kv('e/a', '', 2, 4), prevKv: undefined }, { type: 'delete', kv: kv('e/b', '', 3, 5), prevKv: undefined }] };
    expect(values(tracker.apply(resign))).toEqual(['B', '-']);
  });

  it('treats the events of one revision (one txn) as one change', () => {
    const tracker = new LeaderTracker();
    tracker.reset([kv('e/a', 'A', 2)], 2n);
    const txn: WatchBatch = { revision: 3n, events: [{ type: 'delete', kv: kv('e/a', '', 2, 3), prevKv: undefined }, { type: 'put', kv: kv('e/c', 'C', 3), prevKv: undefined }] };
    expect(values(tracker.apply(txn))).toEqual(['C']);
  });
});
