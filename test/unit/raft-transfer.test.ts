// Goal: leader transfer — catch the target up, send timeoutNow, refuse proposals meanwhile,
// abort after an election timeout, and ignore transfers to learners or to the leader itself.
import { describe, expect, it } from 'vitest';
import { TestCluster } from '../interaction/env.js';

describe('raft leader transfer', () => {
  it('transfers to an up-to-date follower at once', () => {
    // Goal: the target gets timeoutNow immediately and becomes leader in a higher term.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    const term = c.node(1n).raw.status().term;
    c.node(1n).raw.transferLeader(2n);
    c.processReady(1n);
    expect(c.queue.map((m) => [m.type, m.to])).toEqual([['timeoutNow', 2n]]);
    c.stabilize();
    expect(c.leader()).toBe(2n);
    expect(c.node(2n).raw.status().term).toBe(term + 1);
  });

  it('catches a lagging target up first and refuses proposals meanwhile', () => {
    // Goal: no timeoutNow before the target matches the leader's last index.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.partition([[1n, 2n], [3n]]);
    c.propose(1n, 'a');
    c.stabilize();
    c.heal();
    c.node(1n).raw.transferLeader(3n);
    expect(c.node(1n).raw.status().leadTransferee).toBe(3n);
    expect(c.propose(1n, 'b')).toEqual({ ok: false, reason: 'transferring' });
    c.processReady(1n);
    expect(c.queue.some((m) => m.type === 'timeoutNow')).toBe(false);
    c.stabilize();
    expect(c.leader()).toBe(3n);
    expect(c.node(3n).applied).toEqual(['a']);
  });

  it('a follower forwards a transfer request to its leader', () => {
    // Goal: transferLeader() may be called on any member.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.node(2n).raw.transferLeader(3n);
    c.stabilize();
    expect(c.leader()).toBe(3n);
  });

  it('gives up after an election timeout and accepts proposals again', () => {
    // Goal: an unreachable target does not block the leader forever.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.partition([[1n, 2n], [3n]]);
    c.node(1n).raw.transferLeader(3n);
    c.tick(1n, 9);
    expect(c.node(1n).raw.status().leadTransferee).toBe(3n);
    c.tick(1n, 1);
    expect(c.node(1n).raw.status().leadTransferee).toBe(0n);
    expect(c.propose(1n, 'after')).toEqual({ ok: true });
  });

  it('ignores transfers to itself and to learners', () => {
    // Goal: only voters other than the leader can receive leadership.
    const c = new TestCluster();
    c.addNodes(3, { learners: [3n], voters: [1n, 2n] });
    c.elect(1n);
    c.node(1n).raw.transferLeader(1n);
    c.node(1n).raw.transferLeader(3n);
    expect(c.node(1n).raw.status().leadTransferee).toBe(0n);
    c.stabilize();
    expect(c.leader()).toBe(1n);
  });

  it('a timeoutNow campaign skips PreVote and ignores the lease', () => {
    // Goal: the transfer target sends real votes flagged `transfer`, which followers grant.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.node(1n).raw.transferLeader(2n);
    c.stabilize([1n]);
    c.deliver((m) => m.to === 2n);
    c.processReady(2n);
    const votes = c.queue.filter((m) => m.type === 'vote' || m.type === 'preVote');
    expect(votes.length).toBe(2);
    expect(votes.every((m) => m.type === 'vote' && m.transfer)).toBe(true);
  });
});
