// Goal: log replication — batching, pipelining with an inflight cap, probing, fast back-off,
// the commit rule with the leader's durable self-ack, proposal forwarding and flow limits.
import { describe, expect, it } from 'vitest';
import { RawNode, bootstrapStorage, type AppMessage, type Message } from '../../server/raft/index.js';
import { TestCluster, bytes, seededRandom } from '../interaction/env.js';

/** Like TestCluster.stabilize, but returns every message sent meanwhile. */
function stabilizeRecording(c: TestCluster): Message[] {
  const sent: Message[] = [];
  for (let round = 0; round < 1000; round++) {
    let moved = false;
    for (const id of c.ids()) moved = c.processReady(id) || moved;
    sent.push(...c.queue);
    moved = c.deliver() > 0 || moved;
    if (!moved) return sent;
  }
  throw new Error('did not stabilize');
}

function appsTo(messages: readonly Message[], to: bigint): AppMessage[] {
  return messages.filter((m): m is AppMessage => m.type === 'app' && m.to === to);
}

describe('raft replication', () => {
  it('replicates proposals to every member and applies them in order', () => {
    // Goal: the basic path commits and applies the same sequence everywhere.
    const c = new TestCluster();
    c.addNodes(5);
    c.elect(1n);
    for (const v of ['a', 'b', 'c']) expect(c.propose(1n, v)).toEqual({ ok: true });
    c.stabilize();
    for (const id of c.ids()) expect(c.node(id).applied).toEqual(['a', 'b', 'c']);
  });

  it('a follower forwards proposals to the leader; without a leader they are refused', () => {
    // Goal: propose() on a follower reaches the leader; with no leader the caller hears noLeader.
    const c = new TestCluster();
    c.addNodes(3);
    expect(c.propose(2n, 'early')).toEqual({ ok: false, reason: 'noLeader' });
    c.elect(1n);
    expect(c.propose(2n, 'via-follower')).toEqual({ ok: true });
    c.stabilize();
    expect(c.node(3n).applied).toEqual(['via-follower']);
  });

  it('batches entries up to maxSizePerMsg per append', () => {
    // Goal: a follower catching up receives several small batches, not one huge message.
    const c = new TestCluster();
    c.addNodes(3, { maxSizePerMsg: 60 }); // each 10-byte entry counts 26 bytes: 2 per message
    c.elect(1n);
    c.partition([[1n, 2n], [3n]]);
    for (let i = 0; i < 6; i++) c.propose(1n, `entry-${i}00`.slice(0, 10));
    c.stabilize();
    c.heal();
    c.tick(1n);
    const apps = stabilizeRecording(c).filter((m): m is AppMessage => m.type === 'app' && m.to === 3n && m.entries.length > 0);
    expect(apps.length).toBeGreaterThan(0);
    for (const app of apps) expect(app.entries.length).toBeLessThanOrEqual(2);
    c.stabilize();
    expect(c.node(3n).applied).toHaveLength(6);
  });

  it('pipelines appends in replicate state but caps them at maxInflightMsgs', () => {
    // Goal: without acknowledgements the leader stops after maxInflightMsgs appends.
    const c = new TestCluster();
    c.addNodes(3, { maxInflightMsgs: 2 });
    c.elect(1n);
    expect(c.node(1n).raw.status().progress?.get(2n)?.state).toBe('replicate');
    for (let i = 0; i < 5; i++) {
      c.propose(1n, `v${i}`);
      c.processReady(1n);
    }
    expect(appsTo(c.queue, 2n).filter((m) => m.entries.length > 0)).toHaveLength(2);
    // Acks open the window again and the rest flows.
    c.stabilize();
    expect(c.node(2n).applied).toEqual(['v0', 'v1', 'v2', 'v3', 'v4']);
  });

  it('recovers when every message of a full inflight window was lost', () => {
    // Goal: a heartbeat response lets the leader probe a full window with an empty append.
    const c = new TestCluster();
    c.addNodes(3, { maxInflightMsgs: 2 });
    c.elect(1n);
    for (let i = 0; i < 4; i++) {
      c.propose(1n, `v${i}`);
      c.processReady(1n);
    }
    c.dropQueued((m) => m.to === 2n); // the whole window to 2 is lost
    c.stabilize();
    expect(c.node(2n).applied).toEqual([]);
    c.tick(1n); // heartbeat -> response -> empty append -> reject -> back-off
    c.stabilize();
    expect(c.node(2n).applied).toEqual(['v0', 'v1', 'v2', 'v3']);
  });

  it('in probe state sends one append at a time until it hears back', () => {
    // Goal: a follower of unknown state is probed with a single outstanding message.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.node(1n).raw.reportUnreachable(2n); // replicate -> probe
    expect(c.node(1n).raw.status().progress?.get(2n)?.state).toBe('probe');
    for (let i = 0; i < 3; i++) {
      c.propose(1n, `v${i}`);
      c.processReady(1n);
    }
    expect(appsTo(c.queue, 2n)).toHaveLength(1);
    c.stabilize();
    expect(c.node(2n).applied).toEqual(['v0', 'v1', 'v2']);
  });

  it('backs off over a long conflicting suffix in one round trip (rejectHint + logTerm)', () => {
    // Goal: fast back-off skips a whole term of conflicting entries at once.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.partition([[1n], [2n, 3n]]);
    for (let i = 0; i < 50; i++) c.propose(1n, `old${i}`);
    c.stabilize();
    c.tick(2n, 20);
    c.tick(3n, 20);
    c.stabilize([2n, 3n]);
    if (c.leaderIds().filter((id) => id !== 1n).length === 0) {
      c.tick(2n, 20);
      c.stabilize([2n, 3n]);
    }
    const leader = c.leader([2n, 3n]);
    for (let i = 0; i < 50; i++) c.propose(leader, `new${i}`);
    c.stabilize([2n, 3n]);
    c.heal();
    c.tick(leader, 1);
    const rejects = stabilizeRecording(c).filter((m) => m.type === 'appResp' && m.from === 1n && m.reject);
    expect(rejects.length).toBeLessThanOrEqual(2);
    expect(c.node(1n).applied).toEqual(c.node(leader).applied);
    expect(c.node(1n).applied.filter((v) => v.startsWith('old'))).toEqual([]);
  });

  it('the leader counts its own entries toward commit only after persisting them', () => {
    // Goal: with one follower ack, a 3-member leader commits only after its own advance().
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    const leader = c.node(1n);
    const commitBefore = leader.raw.status().commit;
    c.propose(1n, 'x');
    const rd = leader.raw.ready();
    expect(appsTo(rd.messages, 2n)).toHaveLength(1); // appends leave before the leader's own write
    c.queue.push(...rd.messages.filter((m) => m.to === 2n));
    c.deliver();
    c.processReady(2n);
    c.deliver((m) => m.to === 1n);
    expect(leader.raw.status().commit).toBe(commitBefore); // 1 of 3 durable copies
    leader.storage.append(rd.entries);
    leader.raw.advance();
    expect(leader.raw.status().commit).toBe(commitBefore + 1);
  });

  it('followers acknowledge appends only after persisting them', () => {
    // Goal: append acks are in messagesAfterPersist, never in messages.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.propose(1n, 'x');
    c.processReady(1n);
    c.deliver((m) => m.to === 2n);
    const rd = c.node(2n).raw.ready();
    expect(rd.entries).toHaveLength(1);
    expect(rd.mustSync).toBe(true);
    expect(rd.messages.some((m) => m.type === 'appResp')).toBe(false);
    expect(rd.messagesAfterPersist.some((m) => m.type === 'appResp')).toBe(true);
  });

  it('refuses proposals beyond maxUncommittedEntriesSize', () => {
    // Goal: a leader that cannot commit stops accepting unbounded proposals.
    const c = new TestCluster();
    c.addNodes(3, { maxUncommittedEntriesSize: 100 });
    c.elect(1n);
    c.partition([[1n], [2n, 3n]]);
    const results = Array.from({ length: 10 }, (_, i) => c.propose(1n, `${'x'.repeat(30)}${i}`).ok);
    expect(results.slice(0, 3)).toEqual([true, true, true]);
    expect(results).toContain(false);
    expect(c.propose(1n, 'y'.repeat(10))).toEqual({ ok: false, reason: 'tooLarge' });
    c.heal();
    c.tick(1n);
    c.stabilize();
    expect(c.propose(1n, 'y'.repeat(10))).toEqual({ ok: true });
  });

  it('a restarted member recovers term, vote, log and commit from storage', () => {
    // Goal: the durable state in Storage is enough to restart; unapplied entries come again.
    const c = new TestCluster();
    c.addNodes(3);
    c.elect(1n);
    c.propose(1n, 'a');
    c.stabilize();
    const before = c.node(2n).raw.status();
    c.restart(2n);
    const after = c.node(2n).raw.status();
    expect(after).toMatchObject({ term: before.term, vote: before.vote, commit: before.commit, applied: before.applied, role: 'follower' });
    // Restart with an older applied index: committed entries are handed out again.
    const node = new RawNode({
      id: 2n, storage: c.node(2n).storage, applied: 1, electionTicks: 10, heartbeatTicks: 1, random: seededRandom(2),
    });
    const rd = node.ready();
    expect(rd.committedEntries.map((e) => e.index)).toEqual([2, 3]);
    expect(rd.committedEntries[1]?.data).toEqual(bytes('a'));
  });

  it('a fresh bootstrap storage starts at index 1 with the configured voters', () => {
    // Goal: bootstrapStorage gives every initial member the same committed starting point.
    const storage = bootstrapStorage({ voters: [1n, 2n, 3n], learners: [4n] });
    expect(storage.initialState()).toEqual({
      hardState: { term: 1, vote: 0n, commit: 1 },
      confState: { voters: [1n, 2n, 3n], learners: [4n] },
    });
    expect([storage.firstIndex(), storage.lastIndex()]).toEqual([2, 1]);
    const node = new RawNode({ id: 1n, storage, electionTicks: 10, heartbeatTicks: 1, random: seededRandom(1) });
    expect(node.status()).toMatchObject({ term: 1, commit: 1, applied: 1, role: 'follower' });
    expect(node.hasReady()).toBe(false);
  });
});
