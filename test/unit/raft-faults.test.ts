// Goal: each test-only fault switch really introduces its bug (so the simulator's checkers
// have something to catch), and the default configuration does not have it.
import { describe, expect, it } from 'vitest';
import { RawNode, bootstrapStorage, type Message, type RaftFaults } from '../../server/raft/index.js';
import { seededRandom } from '../interaction/env.js';

function voter(faults?: RaftFaults): { node: RawNode; storage: ReturnType<typeof bootstrapStorage> } {
  const storage = bootstrapStorage({ voters: [1n, 2n, 3n], learners: [] });
  const node = new RawNode({
    id: 1n, storage, electionTicks: 10, heartbeatTicks: 1, random: seededRandom(1), preVote: false, checkQuorum: false,
    ...(faults === undefined ? {} : { faults }),
  });
  return { node, storage };
}

function vote(from: bigint, term: number, logTerm: number, index: number): Message {
  return { type: 'vote', from, to: 1n, term, logTerm, index, transfer: false };
}

describe('raft faults (test only)', () => {
  it('forgetVote: the vote is not persisted, so after a restart the member votes again', () => {
    // Goal: double voting in one term after a crash.
    for (const forgetVote of [false, true]) {
      const { node, storage } = voter({ forgetVote });
      node.step(vote(2n, 5, 1, 1));
      const rd = node.ready();
      if (rd.hardState) storage.setHardState(rd.hardState);
      node.advance();
      expect(rd.messagesAfterPersist).toMatchObject([{ type: 'voteResp', reject: false }]);
      const restarted = new RawNode({ id: 1n, storage, electionTicks: 10, heartbeatTicks: 1, random: seededRandom(1), preVote: false, checkQuorum: false });
      restarted.step(vote(3n, 5, 1, 1));
      const second = restarted.ready().messagesAfterPersist.find((m) => m.type === 'voteResp');
      expect(second).toMatchObject({ reject: !forgetVote });
    }
  });

  it('grantVoteToShorterLog: a candidate with a stale log gets the vote', () => {
    // Goal: the election restriction (§5.4.1) is switched off.
    for (const grantVoteToShorterLog of [false, true]) {
      const { node, storage } = voter({ grantVoteToShorterLog });
      storage.append([{ term: 3, index: 2, type: 'normal', data: new Uint8Array() }]);
      const restarted = new RawNode({
        id: 1n, storage, electionTicks: 10, heartbeatTicks: 1, random: seededRandom(1), preVote: false, checkQuorum: false,
        faults: { grantVoteToShorterLog },
      });
      void node;
      restarted.step(vote(2n, 5, 1, 1));
      const resp = restarted.ready().messagesAfterPersist.find((m) => m.type === 'voteResp');
      expect(resp).toMatchObject({ reject: !grantVoteToShorterLog });
    }
  });

  // commitOldTermEntries: see test/interaction/testdata/figure-8-fault.txt (applied states diverge).
  // readIndexWithoutHeartbeat: see raft-readindex.test.ts (an isolated old leader serves a stale read).
});
