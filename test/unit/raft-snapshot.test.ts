// Goal: snapshots — compaction, sending a snapshot to a follower that needs compacted
// entries, restoring it, reportSnapshot handling, and the storage/log primitives beneath.
import { describe, expect, it } from 'vitest';
import {
  MemoryStorage, RawNode, StorageError, decodeConfChange, encodeConfChange, isStorageError,
  type Entry,
} from '../../server/raft/index.js';
import { TestCluster, bytes, seededRandom } from '../interaction/env.js';

function entry(term: number, index: number, data = ''): Entry {
  return { term, index, type: 'normal', data: bytes(data) };
}

/** 3 members; 3 is cut off while 1 commits a, b, c and compacts its log. */
function laggingFollower(): TestCluster {
  const c = new TestCluster();
  c.addNodes(3);
  c.elect(1n);
  c.partition([[1n, 2n], [3n]]);
  for (const v of ['a', 'b', 'c']) c.propose(1n, v);
  c.stabilize();
  c.node(1n).compact(c.node(1n).appliedIndex);
  c.heal();
  return c;
}

describe('raft snapshot', () => {
  it('sends a snapshot when the follower needs compacted entries, then resumes replication', () => {
    // Goal: the lagging follower restores the snapshot and then receives later entries normally.
    const c = laggingFollower();
    c.propose(1n, 'd');
    c.stabilize();
    expect(c.out.some((line) => line.includes('1->3 snap'))).toBe(true);
    expect(c.node(3n).applied).toEqual(['a', 'b', 'c', 'd']);
    expect(c.node(1n).raw.status().progress?.get(3n)).toMatchObject({ state: 'replicate', match: 6 });
    expect(c.node(3n).storage.snapshot().metadata.index).toBe(5);
  });

  it('after a failed snapshot the leader probes again and re-sends it', () => {
    // Goal: reportSnapshot(failure) moves the follower back to probe; a retry follows.
    const c = laggingFollower();
    c.tick(1n);
    c.stabilize([1n]); // heartbeat to 3 queued
    c.deliver((m) => m.to === 3n);
    c.processReady(3n);
    c.deliver((m) => m.to === 1n);
    c.processReady(1n); // append to 3
    c.deliver((m) => m.to === 3n);
    c.processReady(3n); // reject
    c.deliver((m) => m.to === 1n);
    c.processReady(1n);
    const snap = c.queue.find((m) => m.type === 'snap');
    expect(snap).toBeDefined();
    expect(c.node(1n).raw.status().progress?.get(3n)?.state).toBe('snapshot');
    c.queue = c.queue.filter((m) => m !== snap);
    c.node(1n).raw.reportSnapshot(3n, 'failure');
    expect(c.node(1n).raw.status().progress?.get(3n)?.state).toBe('probe');
    c.tick(1n);
    c.stabilize();
    expect(c.node(3n).applied).toEqual(['a', 'b', 'c']);
  });

  it('ignores a snapshot that is not newer than its commit index', () => {
    // Goal: a stale snapshot must not roll a follower back.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.propose(1n, 'a');
    c.stabilize();
    const follower = c.node(2n).raw;
    const term = follower.status().term;
    follower.step({
      type: 'snap', from: 1n, to: 2n, term,
      snapshot: { metadata: { index: 2, term, confState: { voters: [1n, 2n, 3n], learners: [] } }, data: new Uint8Array() },
    });
    const rd = follower.ready();
    expect(rd.snapshot).toBeUndefined();
    expect(rd.messagesAfterPersist).toMatchObject([{ type: 'appResp', index: 3, reject: false }]);
  });

  it('restarts from a storage that holds a snapshot and later entries', () => {
    // Goal: the documented restart path (applySnapshot, setHardState, append) works.
    const storage = new MemoryStorage();
    storage.applySnapshot({ metadata: { index: 10, term: 3, confState: { voters: [1n, 2n, 3n], learners: [] } }, data: bytes('state') });
    storage.setHardState({ term: 4, vote: 2n, commit: 12 });
    storage.append([entry(4, 11, 'x'), entry(4, 12, 'y'), entry(4, 13, 'z')]);
    const node = new RawNode({ id: 1n, storage, applied: 10, electionTicks: 10, heartbeatTicks: 1, random: seededRandom(1) });
    expect(node.status()).toMatchObject({ term: 4, vote: 2n, commit: 12, applied: 10 });
    expect(node.ready().committedEntries.map((e) => e.index)).toEqual([11, 12]);
  });
});

describe('MemoryStorage', () => {
  it('reads entries, terms and bounds; reports compacted and unavailable with stable codes', () => {
    // Goal: the Storage contract the core relies on.
    const s = new MemoryStorage();
    s.append([entry(1, 1), entry(1, 2, 'b'), entry(2, 3, 'c')]);
    expect([s.firstIndex(), s.lastIndex(), s.term(0), s.term(3)]).toEqual([1, 3, 0, 2]);
    expect(s.entries(2, 4, Infinity).map((e) => e.index)).toEqual([2, 3]);
    expect(s.entries(1, 4, 1).map((e) => e.index)).toEqual([1]); // always at least one
    s.createSnapshot(2, { voters: [1n], learners: [] }, bytes('snap'));
    s.compact(2);
    expect([s.firstIndex(), s.lastIndex(), s.term(2)]).toEqual([3, 3, 1]);
    expect(() => s.term(1)).toThrow(StorageError);
    expect(() => s.entries(2, 3, Infinity)).toThrowError(expect.objectContaining({ code: 'compacted' }));
    try {
      s.term(9);
    } catch (err) {
      expect(isStorageError(err, 'unavailable')).toBe(true);
    }
    expect(() => s.compact(2)).toThrowError(expect.objectContaining({ code: 'compacted' }));
    expect(() => s.applySnapshot(s.snapshot())).toThrowError(expect.objectContaining({ code: 'snapshotOutOfDate' }));
  });

  it('append overwrites a conflicting suffix and ignores compacted entries', () => {
    // Goal: a follower's durable log follows the leader after a conflict.
    const s = new MemoryStorage();
    s.append([entry(1, 1), entry(1, 2), entry(1, 3)]);
    s.append([entry(2, 2), entry(2, 3), entry(2, 4)]);
    expect(s.entries(1, 5, Infinity).map((e) => e.term)).toEqual([1, 2, 2, 2]);
    s.createSnapshot(3, { voters: [1n], learners: [] }, new Uint8Array());
    s.compact(3);
    s.append([entry(2, 3), entry(2, 4), entry(2, 5)]);
    expect([s.firstIndex(), s.lastIndex()]).toEqual([4, 5]);
    expect(() => s.append([entry(2, 9)])).toThrow(/gap/);
  });

  it('conf changes round-trip through their entry encoding', () => {
    // Goal: encodeConfChange/decodeConfChange are inverse and reject garbage.
    const cc = { type: 'addLearner' as const, nodeId: 0xffff_ffff_ffn, context: bytes('ctx') };
    expect(decodeConfChange(encodeConfChange(cc))).toEqual(cc);
    expect(() => decodeConfChange(new Uint8Array([7, 0, 0, 0, 0, 0, 0, 0, 1]))).toThrow(/unknown conf change type/);
    expect(() => decodeConfChange(new Uint8Array(3))).toThrow(/too short/);
  });
});
