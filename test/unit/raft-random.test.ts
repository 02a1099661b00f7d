// Goal: under random partitions, drops, restarts, compactions and leader transfers, the core
// keeps Raft's safety properties (one leader per term, applied sequences never diverge) and
// converges once the network heals. A small seeded fuzz; test/sim does the thorough version.
import { describe, expect, it } from 'vitest';
import type { NodeId } from '../../server/raft/index.js';
import { TestCluster, seededRandom } from '../interaction/env.js';

function isPrefix(a: readonly string[], b: readonly string[]): boolean {
  return a.every((v, i) => b[i] === v);
}

function checkSafety(c: TestCluster, leaders: Map<number, NodeId>): void {
  for (const id of c.ids()) {
    const s = c.node(id).raw.status();
    if (s.role !== 'leader') continue;
    const known = leaders.get(s.term);
    if (known !== undefined && known !== id) throw new Error(`two leaders in term ${s.term}: ${known} and ${id}`);
    leaders.set(s.term, id);
  }
  const applied = c.ids().map((id) => c.node(id).applied);
  for (const a of applied) {
    for (const b of applied) {
      if (!isPrefix(a.length <= b.length ? a : b, a.length <= b.length ? b : a)) {
        throw new Error(`applied sequences diverge: [${a.join(' ')}] vs [${b.join(' ')}]`);
      }
    }
  }
}

function randomStep(c: TestCluster, random: () => number, counter: { next: number }): void {
  const ids = c.ids();
  const pick = (): NodeId => ids[Math.floor(random() * ids.length)]!;
  const r = random();
  if (r < 0.35) c.tick(pick());
  else if (r < 0.55) c.propose(pick(), `p${counter.next++}`);
  else if (r < 0.62) {
    const cut = pick();
    c.partition([[cut], ids.filter((id) => id !== cut)]);
  } else if (r < 0.7) c.heal();
  else if (r < 0.74) c.restart(pick());
  else if (r < 0.77) {
    const node = c.node(pick());
    if (node.appliedIndex > node.storage.snapshot().metadata.index) node.compact(node.appliedIndex);
  } else if (r < 0.79) c.node(pick()).raw.transferLeader(pick());
  else if (r < 0.85) c.queue = c.queue.filter(() => random() < 0.5); // drop some in flight
  if (random() < 0.5) {
    for (const id of ids) c.processReady(id);
    c.deliver((m) => random() < 0.8);
  }
}

describe('raft random schedules', () => {
  for (let seed = 1; seed <= 24; seed++) {
    it(`seed ${seed}: safe under faults and converges after healing`, () => {
      const random = seededRandom(seed * 104729);
      const c = new TestCluster();
      const faultName = process.env['RAFT_FUZZ_FAULT'];
      c.addNodes(seed % 2 === 0 ? 3 : 5, { electionTicks: 5, heartbeatTicks: 1, ...(faultName ? { faults: { [faultName]: true } } : {}) });
      const leaders = new Map<number, NodeId>();
      const counter = { next: 0 };
      for (let step = 0; step < 600; step++) {
        randomStep(c, random, counter);
        checkSafety(c, leaders);
      }
      // Heal: everything is delivered, time passes, and a leader commits a final entry.
      c.heal();
      let done = false;
      for (let round = 0; round < 300 && !done; round++) {
        for (const id of c.ids()) c.tick(id);
        c.stabilize();
        checkSafety(c, leaders);
        const leader = c.leaderIds()[0];
        if (leader !== undefined && round % 10 === 9) {
          c.propose(leader, `final${round}`);
          c.stabilize();
          const applied = c.ids().map((id) => c.node(id).applied.join(' '));
          done = applied.every((a) => a === applied[0]) && applied[0]!.includes('final');
        }
      }
      if (process.env['RAFT_FUZZ_STATS']) console.log(`seed ${seed}: terms=${leaders.size} applied=${c.node(1n).applied.length}`);
      expect(done).toBe(true);
    });
  }
});
