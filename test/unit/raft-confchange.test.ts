// Goal: membership changes one at a time — adding and removing voters, learners that are
// replicated to but never counted, promotion, and removal of the leader itself.
import { describe, expect, it } from 'vitest';
import { TestCluster } from '../interaction/env.js';

describe('raft conf changes', () => {
  it('adds a voter that starts empty and catches up through a snapshot', () => {
    // Goal: a new member joins with an empty storage and ends up with the same state.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.propose(1n, 'a');
    c.stabilize();
    c.addNodes(1, { join: true });
    expect(c.proposeConfChange(1n, { type: 'addNode', nodeId: 4n })).toEqual({ ok: true });
    c.stabilize();
    expect(c.node(1n).raw.status().confState).toEqual({ voters: [1n, 2n, 3n, 4n], learners: [] });
    expect(c.node(4n).raw.status().confState).toEqual({ voters: [1n, 2n, 3n, 4n], learners: [] });
    expect(c.node(4n).applied).toEqual(['a']);
    // With 4 voters the quorum is 3: losing two members stops commits.
    c.partition([[1n, 2n], [3n, 4n]]);
    const commit = c.node(1n).raw.status().commit;
    c.propose(1n, 'b');
    c.stabilize();
    expect(c.node(1n).raw.status().commit).toBe(commit);
  });

  it('refuses a second conf change until the first one is applied', () => {
    // Goal: one change at a time (no joint consensus needed).
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    expect(c.proposeConfChange(1n, { type: 'addLearner', nodeId: 4n })).toEqual({ ok: true });
    expect(c.proposeConfChange(1n, { type: 'addLearner', nodeId: 5n })).toEqual({ ok: false, reason: 'confChangePending' });
    c.stabilize();
    expect(c.proposeConfChange(1n, { type: 'addLearner', nodeId: 5n })).toEqual({ ok: true });
  });

  it('a forwarded conf change that arrives while one is pending becomes a no-op', () => {
    // Goal: the leader enforces one-at-a-time even for changes it did not refuse locally.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.proposeConfChange(1n, { type: 'addLearner', nodeId: 4n });
    expect(c.proposeConfChange(2n, { type: 'addLearner', nodeId: 5n })).toEqual({ ok: true }); // forwarded
    c.stabilize();
    expect(c.node(1n).raw.status().confState.learners).toEqual([4n]);
  });

  it('learners receive the log but never vote and never count toward commit', () => {
    // Goal: a learner is replicated to, yet cannot make the difference for a quorum.
    const c = new TestCluster();
    c.addNodes(4, { voters: [1n, 2n, 3n], learners: [4n] });
    c.elect(1n);
    c.propose(1n, 'a');
    c.stabilize();
    expect(c.node(4n).applied).toEqual(['a']);
    c.partition([[1n, 4n], [2n, 3n]]);
    const commit = c.node(1n).raw.status().commit;
    c.propose(1n, 'b');
    c.stabilize();
    expect(c.node(1n).raw.status().commit).toBe(commit);
    c.node(4n).raw.campaign();
    c.tick(4n, 100);
    expect(c.node(4n).raw.status().role).toBe('follower');
  });

  it('promotes a learner with addNode', () => {
    // Goal: after promotion the former learner counts and may lead.
    const c = new TestCluster();
    c.addNodes(4, { voters: [1n, 2n, 3n], learners: [4n] });
    c.elect(1n);
    c.proposeConfChange(1n, { type: 'addNode', nodeId: 4n });
    c.stabilize();
    for (const id of c.ids()) expect(c.node(id).raw.status().confState).toEqual({ voters: [1n, 2n, 3n, 4n], learners: [] });
    c.node(1n).raw.transferLeader(4n); // an election inside everyone's lease would be ignored
    c.stabilize();
    expect(c.leader()).toBe(4n);
  });

  it('removes a follower: it is no longer replicated to and the quorum shrinks', () => {
    // Goal: after removing 3 of 3, members 1 and 2 commit alone.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.proposeConfChange(1n, { type: 'removeNode', nodeId: 3n });
    c.stabilize();
    expect(c.node(1n).raw.status().confState.voters).toEqual([1n, 2n]);
    c.partition([[1n, 2n], [3n]]);
    c.propose(1n, 'two-of-two');
    c.stabilize();
    expect(c.node(2n).applied).toEqual(['two-of-two']);
    c.tick(3n, 100);
    expect(c.node(3n).raw.status().role).toBe('follower'); // removed members do not campaign
  });

  it('a leader that removes itself steps down after applying it and hands over', () => {
    // Goal: the cluster keeps a leader among the remaining members without waiting a timeout.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.proposeConfChange(1n, { type: 'removeNode', nodeId: 1n });
    c.stabilize();
    expect(c.node(1n).raw.status().role).toBe('follower');
    const leader = c.leader([2n, 3n]);
    c.propose(leader, 'after-removal');
    c.stabilize();
    expect(c.node(2n).applied).toEqual(['after-removal']);
    expect(c.node(3n).raw.status().confState.voters).toEqual([2n, 3n]);
  });

  it('a 2-voter cluster survives removing its leader even if the commit index got lost', () => {
    // Goal: the removed leader hands over by timeoutNow, so the survivor is not left waiting
    // for a vote the removed member would refuse (it holds more of the log).
    const c = new TestCluster();
    c.addNodes(2);
    c.elect(1n);
    c.proposeConfChange(1n, { type: 'removeNode', nodeId: 1n });
    c.processReady(1n);
    c.deliver((m) => m.to === 2n);
    c.processReady(2n);
    c.deliver((m) => m.to === 1n);
    c.processReady(1n); // commits and applies its own removal
    c.dropQueued((m) => m.type === 'app'); // 2 never hears that the removal committed
    c.stabilize();
    expect(c.node(1n).raw.status().role).toBe('follower');
    expect(c.leader([2n])).toBe(2n);
    expect(c.node(2n).raw.status().confState).toEqual({ voters: [2n], learners: [] });
    c.propose(2n, 'alone');
    c.stabilize();
    expect(c.node(2n).applied).toEqual(['alone']);
  });

  it('the removed leader keeps handing over across a long partition', () => {
    // Goal: the hand-over has no deadline, so the survivor gets leadership once it is reachable.
    const c = new TestCluster();
    c.addNodes(2, { maxSizePerMsg: 1 }); // one entry per append
    c.elect(1n);
    c.proposeConfChange(1n, { type: 'removeNode', nodeId: 1n });
    c.propose(1n, 'x'); // after the removal: 2 will lack it when 1 applies the removal
    c.processReady(1n);
    c.deliver((m) => m.to === 2n && m.type === 'app' && m.entries[0]?.type === 'confChange');
    c.processReady(2n);
    c.deliver((m) => m.to === 1n);
    c.processReady(1n); // commits and applies its removal; 2 is behind, so no timeoutNow yet
    c.partition([[1n], [2n]]);
    for (let i = 0; i < 100; i++) {
      c.tick(1n);
      c.tick(2n);
      c.stabilize();
    }
    expect(c.leaderIds()).toEqual([1n]); // still handing over; 2 cannot win alone
    c.heal();
    for (let i = 0; i < 30 && c.leaderIds()[0] !== 2n; i++) {
      c.tick(1n);
      c.tick(2n);
      c.stabilize();
    }
    expect(c.leaderIds()).toEqual([2n]);
    expect(c.node(2n).raw.status().confState.voters).toEqual([2n]);
    expect(c.node(2n).applied).toEqual(['x']);
  });

  it('ignores the removal of the last voter', () => {
    // Goal: a configuration without voters could never elect a leader; every member keeps it.
    const c = new TestCluster();
    c.addNodes(1);
    c.elect(1n);
    c.proposeConfChange(1n, { type: 'removeNode', nodeId: 1n });
    c.stabilize();
    expect(c.node(1n).raw.status()).toMatchObject({ role: 'leader', confState: { voters: [1n], learners: [] } });
  });

  it('a member does not campaign while a committed conf change is not yet applied', () => {
    // Goal: elections happen under the configuration that is about to be in force.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.proposeConfChange(1n, { type: 'addLearner', nodeId: 4n });
    c.processReady(1n);
    c.deliver((m) => m.to === 2n);
    c.processReady(2n);
    c.deliver((m) => m.to === 1n);
    c.processReady(1n); // commits; 2 learns the commit index next
    c.deliver((m) => m.to === 2n);
    const node2 = c.node(2n).raw;
    expect(node2.status().commit).toBeGreaterThan(node2.status().applied);
    node2.campaign();
    expect(node2.status().role).toBe('follower');
  });
});
