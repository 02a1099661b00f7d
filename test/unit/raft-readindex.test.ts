// Goal: ReadIndex — the leader confirms leadership with a heartbeat round before answering,
// postpones reads until it committed an entry of its term, and followers forward reads.
import { describe, expect, it } from 'vitest';
import { RawNode, bootstrapStorage, type HeartbeatMessage } from '../../server/raft/index.js';
import { TestCluster, bytes, seededRandom } from '../interaction/env.js';

const text = (b: Uint8Array): string => new TextDecoder().decode(b);

describe('raft readindex', () => {
  it('the leader answers only after a quorum acknowledged a heartbeat carrying the context', () => {
    // Goal: the read state appears after the heartbeat round, with the commit index at request time.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.propose(1n, 'a');
    c.stabilize();
    const commit = c.node(1n).raw.status().commit;
    expect(c.node(1n).raw.readIndex(bytes('r1'))).toEqual({ ok: true });
    c.processReady(1n);
    const beats = c.queue.filter((m): m is HeartbeatMessage => m.type === 'heartbeat');
    expect(beats.map((m) => text(m.context))).toEqual(['r1', 'r1']);
    expect(c.node(1n).readStates).toEqual([]);
    c.deliver((m) => m.to === 2n); // only one follower answers: 2 of 3 with the leader
    c.processReady(2n);
    c.deliver((m) => m.to === 1n);
    c.processReady(1n);
    expect(c.node(1n).readStates.map((rs) => [rs.index, text(rs.context)])).toEqual([[commit, 'r1']]);
  });

  it('a new leader postpones reads until an entry of its term is committed', () => {
    // Goal: before its first commit, a leader's commit index may be stale, so it must wait.
    const c = new TestCluster();
    c.addNodes(3);
    c.node(1n).raw.campaign();
    for (let i = 0; i < 20 && c.node(1n).raw.status().role !== 'leader'; i++) {
      c.processReady(1n);
      c.deliver();
      c.processReady(2n);
      c.processReady(3n);
      c.deliver();
    }
    const leader = c.node(1n).raw;
    expect(leader.status().role).toBe('leader');
    expect(leader.readIndex(bytes('early'))).toEqual({ ok: true });
    c.processReady(1n);
    expect(c.queue.some((m) => m.type === 'heartbeat')).toBe(false);
    c.stabilize();
    expect(c.node(1n).readStates.map((rs) => [rs.index, text(rs.context)])).toEqual([[leader.status().commit, 'early']]);
    expect(leader.status().commit).toBe(2);
  });

  it('a single-voter cluster answers at once', () => {
    // Goal: with no peers there is no one to confirm with; the read state is immediate.
    const storage = bootstrapStorage({ voters: [1n], learners: [] });
    const node = new RawNode({ id: 1n, storage, electionTicks: 10, heartbeatTicks: 1, random: seededRandom(1) });
    node.campaign();
    for (let i = 0; i < 5 && node.hasReady(); i++) {
      const rd = node.ready();
      if (rd.hardState) storage.setHardState(rd.hardState);
      storage.append(rd.entries);
      node.advance();
    }
    expect(node.status()).toMatchObject({ role: 'leader', commit: 2 });
    node.readIndex(bytes('solo'));
    const rd = node.ready();
    expect(rd.readStates.map((rs) => [rs.index, text(rs.context)])).toEqual([[2, 'solo']]);
    expect(rd.messages).toEqual([]);
  });

  it('a follower forwards the request and gets the leader-confirmed index back', () => {
    // Goal: reads served by followers are linearizable through the leader's ReadIndex.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.propose(1n, 'a');
    c.stabilize();
    expect(c.node(2n).raw.readIndex(bytes('f1'))).toEqual({ ok: true });
    c.stabilize();
    expect(c.node(2n).readStates.map((rs) => [rs.index, text(rs.context)])).toEqual([[3, 'f1']]);
    expect(c.node(1n).readStates).toEqual([]);
  });

  it('refuses without a leader and answers several pending reads with one quorum', () => {
    // Goal: noLeader is reported; confirming a later context confirms earlier ones too.
    const c = new TestCluster();
    c.addNodes(3);
    expect(c.node(1n).raw.readIndex(bytes('x'))).toEqual({ ok: false, reason: 'noLeader' });
    c.elect(1n);
    c.node(1n).raw.readIndex(bytes('p1'));
    c.node(1n).raw.readIndex(bytes('p2'));
    c.stabilize();
    expect(c.node(1n).readStates.map((rs) => text(rs.context))).toEqual(['p1', 'p2']);
  });

  it('an isolated old leader cannot serve a read (and would, with readIndexWithoutHeartbeat)', () => {
    // Goal: the heartbeat round is what prevents stale reads from a deposed leader.
    for (const faulty of [false, true]) {
      const c = new TestCluster();
      c.addNodes(3, { checkQuorum: false, ...(faulty ? { faults: { readIndexWithoutHeartbeat: true } } : {}) });
      c.elect(1n);
      c.partition([[1n], [2n, 3n]]);
      c.elect(2n);
      c.propose(2n, 'new');
      c.stabilize([2n, 3n]);
      expect(c.node(1n).raw.status().role).toBe('leader'); // it does not know yet
      c.node(1n).raw.readIndex(bytes('stale?'));
      c.stabilize();
      const answered = c.node(1n).readStates.length > 0;
      expect(answered).toBe(faulty);
      if (faulty) expect(c.node(1n).readStates[0]!.index).toBeLessThan(c.node(2n).raw.status().commit);
    }
  });
});
