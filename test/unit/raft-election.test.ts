// Goal: leader election, PreVote and CheckQuorum behave as in the Raft thesis / etcd-io/raft.
import { describe, expect, it } from 'vitest';
import { MemoryStorage, NONE, RawNode, bootstrapStorage, type Message } from '../../server/raft/index.js';
import { TestCluster, seededRandom } from '../interaction/env.js';

function voteFrom(from: bigint, to: bigint, term: number, logTerm: number, index: number): Message {
  return { type: 'vote', from, to, term, logTerm, index, transfer: false };
}

describe('raft election', () => {
  it('elects exactly one leader when a member times out', () => {
    // Goal: ticking everyone eventually produces one leader that all others follow.
    const c = new TestCluster();
    c.addNodes(3);
    for (let i = 0; i < 40 && c.leaderIds().length === 0; i++) {
      for (const id of c.ids()) c.tick(id);
      c.stabilize();
    }
    const leader = c.leader();
    for (const id of c.ids()) expect(c.node(id).raw.status().lead).toBe(leader);
  });

  it('randomizes the election timeout within [electionTicks, 2*electionTicks)', () => {
    // Goal: a lone follower campaigns after at least electionTicks and before 2*electionTicks.
    for (let seed = 1; seed <= 20; seed++) {
      const node = new RawNode({
        id: 1n, storage: bootstrapStorage({ voters: [1n, 2n, 3n], learners: [] }),
        electionTicks: 10, heartbeatTicks: 1, random: seededRandom(seed),
      });
      let ticks = 0;
      while (node.status().role === 'follower' && ticks < 100) {
        node.tick();
        ticks++;
      }
      expect(ticks).toBeGreaterThanOrEqual(10);
      expect(ticks).toBeLessThan(20);
    }
  });

  it('a single voter elects itself only once its vote is persisted', () => {
    // Goal: the candidate counts its own vote in advance(), after the hardState is durable.
    const storage = bootstrapStorage({ voters: [1n], learners: [] });
    const node = new RawNode({ id: 1n, storage, electionTicks: 10, heartbeatTicks: 1, random: seededRandom(1) });
    node.campaign();
    expect(node.status().role).toBe('candidate');
    const rd = node.ready();
    expect(rd.hardState).toEqual({ term: 2, vote: 1n, commit: 1 });
    expect(rd.mustSync).toBe(true);
    expect(node.status().role).toBe('candidate');
    storage.setHardState(rd.hardState!);
    node.advance();
    expect(node.status().role).toBe('leader');
    // The leader's empty entry commits only after the leader persisted it (self-ack).
    const rd2 = node.ready();
    expect(rd2.entries.map((e) => e.index)).toEqual([2]);
    expect(node.status().commit).toBe(1);
    storage.append(rd2.entries);
    node.advance();
    expect(node.status().commit).toBe(2);
    expect(node.ready().committedEntries.map((e) => e.index)).toEqual([2]);
  });

  it('grants at most one vote per term and sends grants only after persisting', () => {
    // Goal: a voter votes once per term; its grant waits in messagesAfterPersist.
    const node = new RawNode({
      id: 1n, storage: bootstrapStorage({ voters: [1n, 2n, 3n], learners: [] }),
      electionTicks: 10, heartbeatTicks: 1, random: seededRandom(1), preVote: false,
    });
    node.step(voteFrom(2n, 1n, 5, 1, 1));
    node.step(voteFrom(3n, 1n, 5, 1, 1));
    const rd = node.ready();
    expect(rd.hardState).toEqual({ term: 5, vote: 2n, commit: 1 });
    expect(rd.messages).toEqual([]);
    expect(rd.messagesAfterPersist.map((m) => [m.to, m.type, 'reject' in m ? m.reject : undefined]))
      .toEqual([[2n, 'voteResp', false], [3n, 'voteResp', true]]);
  });

  it('rejects a candidate whose log is less up to date', () => {
    // Goal: §5.4.1 — the last term decides, then the last index.
    const c = new TestCluster();
    c.addNodes(3, { preVote: false, checkQuorum: false });
    c.elect(1n);
    c.propose(1n, 'x');
    c.stabilize();
    const voter = c.node(2n).raw;
    const term = voter.status().term;
    voter.step(voteFrom(3n, 2n, term + 1, 2, 2)); // 3 claims a log shorter than 2's
    const rd = voter.ready();
    const resp = rd.messagesAfterPersist.find((m) => m.type === 'voteResp');
    expect(resp).toMatchObject({ type: 'voteResp', reject: true, term: term + 1 });
  });

  it('a candidate that loses steps down and a higher term always wins over a stale leader', () => {
    // Goal: a message with a higher term turns a leader into a follower.
    const c = new TestCluster();
    c.addNodes(3, { checkQuorum: false });
    c.elect(1n);
    const leader = c.node(1n).raw;
    const term = leader.status().term;
    leader.step({ type: 'heartbeat', from: 2n, to: 1n, term: term + 1, commit: 0, context: new Uint8Array() });
    expect(leader.status()).toMatchObject({ role: 'follower', term: term + 1, lead: 2n });
  });
});

describe('raft prevote', () => {
  it('a partitioned member does not raise its term, so it does not disrupt on return', () => {
    // Goal: PreVote keeps an isolated member's term unchanged while it keeps timing out.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    const term = c.node(1n).raw.status().term;
    c.partition([[1n, 2n], [3n]]);
    for (let i = 0; i < 100; i++) {
      c.tick(3n);
      c.stabilize();
    }
    expect(c.node(3n).raw.status().term).toBe(term);
    c.heal();
    c.tick(1n);
    c.stabilize();
    expect(c.node(1n).raw.status()).toMatchObject({ role: 'leader', term });
    expect(c.node(3n).raw.status().lead).toBe(1n);
  });

  it('without PreVote the same member raises its term and deposes the leader', () => {
    // Goal: contrast — this is the disruption that PreVote exists to prevent.
    const c = new TestCluster();
    c.addNodes(3, { preVote: false, checkQuorum: false });
    c.elect(1n);
    const term = c.node(1n).raw.status().term;
    c.partition([[1n, 2n], [3n]]);
    for (let i = 0; i < 100; i++) {
      c.tick(3n);
      c.stabilize();
    }
    expect(c.node(3n).raw.status().term).toBeGreaterThan(term + 1);
    c.heal();
    // 3's next vote request carries its inflated term: the leader must step down for it.
    for (let i = 0; i < 40 && c.node(1n).raw.status().term === term; i++) {
      c.tick(3n);
      c.stabilize();
    }
    expect(c.node(1n).raw.status().term).toBeGreaterThan(term + 1);
  });

  it('a pre-vote changes neither term nor vote of the voters', () => {
    // Goal: granting a pre-vote leaves no trace in the voter's hardState.
    const node = new RawNode({
      id: 1n, storage: bootstrapStorage({ voters: [1n, 2n, 3n], learners: [] }),
      electionTicks: 10, heartbeatTicks: 1, random: seededRandom(1),
    });
    node.step({ type: 'preVote', from: 2n, to: 1n, term: 2, logTerm: 1, index: 1, transfer: false });
    const rd = node.ready();
    expect(rd.hardState).toBeUndefined();
    expect(rd.messages).toEqual([{ type: 'preVoteResp', from: 1n, to: 2n, term: 2, reject: false }]);
    expect(node.status()).toMatchObject({ term: 1, vote: NONE });
  });
});

describe('raft checkquorum', () => {
  it('a leader without contact from a quorum steps down within two election timeouts', () => {
    // Goal: CheckQuorum makes an isolated leader give up leadership.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.partition([[1n], [2n, 3n]]);
    c.tick(1n, 20);
    expect(c.node(1n).raw.status()).toMatchObject({ role: 'follower', lead: NONE });
  });

  it('a follower with a live leader ignores vote requests (leader lease)', () => {
    // Goal: within the lease a disruptive candidate cannot win votes, even with a higher term.
    const c = new TestCluster();
    c.addNodes(3, { preVote: false });
    c.elect(1n);
    const follower = c.node(2n).raw;
    const term = follower.status().term;
    follower.step(voteFrom(3n, 2n, term + 1, 9, 99));
    expect(follower.status()).toMatchObject({ term, lead: 1n });
    expect(follower.hasReady()).toBe(false);
  });

  it('a vote request from a leader transfer overrides the lease', () => {
    // Goal: timeoutNow campaigns carry `transfer`, which followers must honour.
    const c = new TestCluster();
    c.addNodes(3, { preVote: false });
    c.elect(1n);
    const follower = c.node(2n).raw;
    const term = follower.status().term;
    follower.step({ type: 'vote', from: 3n, to: 2n, term: term + 1, logTerm: term, index: 99, transfer: true });
    expect(follower.status()).toMatchObject({ term: term + 1, vote: 3n });
  });

  it('a stale leader learns the new term from a follower that ignores it', () => {
    // Goal: followers answer lower-term appends so a returning old leader steps down.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.partition([[1n], [2n, 3n]]);
    c.tick(2n, 20);
    c.tick(3n, 20);
    c.stabilize([2n, 3n]);
    c.tick(2n, 20);
    c.stabilize([2n, 3n]);
    const newLeader = c.leader([2n, 3n]);
    expect(c.node(1n).raw.status().role).toBe('leader'); // not yet noticed
    c.heal();
    c.tick(1n); // heartbeat with the old term
    c.stabilize();
    expect(c.node(1n).raw.status().role).toBe('follower');
    c.tick(newLeader);
    c.stabilize();
    expect(c.node(1n).raw.status().lead).toBe(newLeader);
  });

  it('a member that is not a voter never campaigns', () => {
    // Goal: members missing from the configuration (new, removed, learners) stay followers.
    const node = new RawNode({ id: 9n, storage: new MemoryStorage(), electionTicks: 10, heartbeatTicks: 1, random: seededRandom(9) });
    for (let i = 0; i < 100; i++) node.tick();
    node.campaign();
    expect(node.status().role).toBe('follower');
    expect(node.hasReady()).toBe(false);
  });
});
