/**
 * Bugs found while building the simulator, pinned down as small deterministic scenarios that
 * fail without their fix.
 */
import { describe, expect, it } from 'vitest';
import {
  MemoryStorage, RawNode, bootstrapStorage, type Message, type NodeId, type Ready,
} from '../../server/raft/index.js';
import { ShellStorage } from '../../server/node/shell-storage.js';
import { Prng } from './prng.js';

class Cluster {
  readonly nodes = new Map<NodeId, { raw: RawNode; storage: MemoryStorage }>();
  queue: Message[] = [];
  readonly readStates = new Map<NodeId, string[]>();

  constructor(size: number) {
    const voters = Array.from({ length: size }, (_, i) => BigInt(i + 1));
    const random = new Prng(1);
    for (const id of voters) {
      const storage = bootstrapStorage({ voters, learners: [] });
      const raw = new RawNode({ id, electionTicks: 10, heartbeatTicks: 1, storage, random: () => random.float(), preVote: true, checkQuorum: true });
      this.nodes.set(id, { raw, storage });
      this.readStates.set(id, []);
    }
  }

  node(id: NodeId): RawNode {
    return this.nodes.get(id)!.raw;
  }

  /** Persist → collect messages → advance, for every member, until nothing is left. */
  processReadies(): void {
    for (const [id, { raw, storage }] of this.nodes) {
      while (raw.hasReady()) {
        const ready: Ready = raw.ready();
        if (ready.snapshot !== undefined) storage.applySnapshot(ready.snapshot);
        storage.append(ready.entries);
        if (ready.hardState !== undefined) storage.setHardState(ready.hardState);
        this.queue.push(...ready.messages, ...ready.messagesAfterPersist);
        for (const state of ready.readStates) this.readStates.get(id)!.push(new TextDecoder().decode(state.context));
        raw.advance();
      }
    }
  }

  stabilize(): void {
    for (let round = 0; round < 100; round++) {
      this.processReadies();
      if (this.queue.length === 0) return;
      const batch = this.queue;
      this.queue = [];
      for (const message of batch) this.node(message.to).step(message);
    }
    throw new Error('did not stabilize');
  }
}

describe('raft core bugs found by the simulator (fixed; regression tests)', () => {
  it('serves a ReadIndex request forwarded back to its sender after leadership moved there', () => {
    // Goal: a follower's ReadIndex request that reaches a member after leadership moved to the
    // requester is forwarded back to it ("from itself"); it must be served as a local read, not
    // trip RawNode.step's "message from self" assertion (first seen as seed 2429, 3 members).
    const cluster = new Cluster(3);
    cluster.node(1n).campaign();
    cluster.stabilize();
    expect(cluster.node(1n).status().role).toBe('leader');
    // n2 asks n1 (its leader) for a read index; the request is still in flight...
    expect(cluster.node(2n).readIndex(new TextEncoder().encode('read-1')).ok).toBe(true);
    cluster.processReadies();
    const inFlight = cluster.queue.filter((m) => m.type === 'readIndex');
    cluster.queue = cluster.queue.filter((m) => m.type !== 'readIndex');
    expect(inFlight).toHaveLength(1);
    // ...while leadership moves to n2.
    cluster.node(1n).transferLeader(2n);
    cluster.stabilize();
    expect(cluster.node(2n).status().role).toBe('leader');
    // n1, now a follower of n2, forwards the old request to n2 "from n2".
    cluster.node(1n).step(inFlight[0]!);
    cluster.stabilize();
    expect(cluster.readStates.get(2n)).toContain('read-1');
  });
});

describe('restart bugs found by the simulator', () => {
  it('a member restarts when a crash left its hard state commit below its snapshot', () => {
    // Goal: a member restarts from a disk where a crash between persisting a received snapshot
    // and persisting the Ready's hard state (separate writes, as in server/node/raft-node.ts)
    // left commit < snapshot index. RawNode's constructor used to assert "hardState commit ..
    // outside [..]", so the member could never start again (in the simulator: a learner crashing
    // while persisting its first snapshot, seed 109 with 3 members); the snapshot index, being
    // committed by definition, now wins.
    const voters = [1n, 2n, 3n];
    const storage = new MemoryStorage();
    storage.applySnapshot({ metadata: { index: 21, term: 7, confState: { voters, learners: [] } }, data: new Uint8Array(0) });
    storage.setHardState({ term: 7, vote: 3n, commit: 19 }); // the hard state from before the snapshot
    const start = (): RawNode => new RawNode({ id: 1n, electionTicks: 10, heartbeatTicks: 1, storage, random: () => 0.5, applied: 21 });
    expect(start().status().commit).toBe(21);
  });
});

describe('shell bugs found while reading the real shell for the simulator', () => {
  it('ShellStorage.snapshot() never hands out a locally recorded snapshot without data', () => {
    // Goal: raft-node.ts maybeSnapshot records createSnapshot(applied, conf, EMPTY data); snapshot()
    // once returned that recorded snapshot, so a lagging follower was sent empty data. Now only a
    // snapshot the node prepared (with its state) is handed out, and one older than the log's start
    // is not: until a fresh one exists the core hears 'temporarily unavailable' and retries.
    const confState = { voters: [1n], learners: [] };
    const storage = new ShellStorage();
    storage.applySnapshot(bootstrapStorage(confState).snapshot());
    storage.append([2, 3, 4].map((index) => ({ term: 1, index, type: 'normal' as const, data: new Uint8Array(0) })));
    storage.prepared({ metadata: { index: 3, term: 1, confState }, data: new Uint8Array([9]) });
    storage.createSnapshot(4, confState, new Uint8Array(0)); // what maybeSnapshot does
    storage.compact(3);
    expect(() => storage.snapshot()).toThrow(/snapshotTemporarilyUnavailable/);
    expect(storage.wantsSnapshot).toBe(true);
    storage.prepared({ metadata: { index: 4, term: 1, confState }, data: new Uint8Array([1, 2, 3]) });
    expect(storage.wantsSnapshot).toBe(false);
    expect(storage.snapshot().metadata.index).toBe(4);
    expect(storage.snapshot().data).toEqual(new Uint8Array([1, 2, 3]));
  });
});
