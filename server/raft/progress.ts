/**
 * What the leader knows about each member's log (like etcd's tracker package): match/next,
 * the flow-control state (probe/replicate/snapshot) and the inflight window.
 */
import type { ConfState, NodeId, ProgressState, ProgressStatus } from './types.js';
import { assert, assertNever } from './util.js';

/** A bounded window of unacknowledged 'app' messages, identified by their last index. */
export class Inflights {
  private readonly lastIndexes: number[] = [];

  constructor(readonly capacity: number) {
    assert(capacity > 0, 'inflight capacity must be positive');
  }

  add(lastIndex: number): void {
    assert(!this.full(), 'inflights full');
    const previous = this.lastIndexes[this.lastIndexes.length - 1];
    assert(previous === undefined || lastIndex > previous, 'inflight indexes must rise');
    this.lastIndexes.push(lastIndex);
  }

  /** Frees every message whose last index is <= index (the follower acknowledged them). */
  freeLE(index: number): void {
    let freed = 0;
    while (freed < this.lastIndexes.length && this.lastIndexes[freed]! <= index) freed++;
    if (freed > 0) this.lastIndexes.splice(0, freed);
  }

  full(): boolean {
    return this.lastIndexes.length >= this.capacity;
  }

  count(): number {
    return this.lastIndexes.length;
  }

  reset(): void {
    this.lastIndexes.length = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** In snapshot state: index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from recently (CheckQuorum); reset each election timeout by the leader. */
  recentActive = true;
  /** Highest commit index sent to this member (in an 'app' or a heartbeat). */
  sentCommit = 0;
  /** In probe state: one 'app' is outstanding, wait for its answer (or a heartbeat response). */
  msgAppFlowPaused = false;
  readonly inflights: Inflights;

  constructor(next: number, maxInflight: number, public isLearner: boolean) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // After a snapshot, resume right after it: the follower has at least that much.
    const after = this.state === 'snapshot' ? this.pendingSnapshot : 0;
    this.resetState('probe');
    this.next = Math.max(this.match + 1, after + 1);
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  /** Called after an 'app' carrying `count` entries up to `lastIndex` was sent. */
  sentEntries(count: number, lastIndex: number): void {
    switch (this.state) {
      case 'replicate':
        if (count > 0) {
          this.next = lastIndex + 1;
          this.inflights.add(lastIndex);
        }
        this.msgAppFlowPaused = this.inflights.full();
        return;
      case 'probe':
        // One probe at a time: wait for its answer before sending another.
        this.msgAppFlowPaused = true;
        return;
      case 'snapshot':
        assert(false, 'sending entries while in snapshot state');
        return;
      default:
        assertNever(this.state, 'progress state');
    }
  }

  /** Records the commit index sent along with an 'app' or a heartbeat. */
  sentCommitIndex(commit: number): void {
    this.sentCommit = Math.max(this.sentCommit, commit);
  }

  /** True if sending `commit` may teach this member something (saves needless empty appends). */
  canBumpCommit(commit: number): boolean {
    return this.state !== 'snapshot' && this.sentCommit < commit;
  }

  /** An acknowledgement up to `index`; false if it is stale. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
    }
    this.next = Math.max(this.next, index + 1);
    this.msgAppFlowPaused = false;
    return updated;
  }

  /**
   * A rejection of the 'app' at `rejected`; matchHint is where the follower's log may match.
   * False if the rejection is stale (answers an older probe).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // Outside replicate we probe one message at a time, so only next-1 can be rejected.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.msgAppFlowPaused;
      case 'replicate':
        // Set when the window fills (sentEntries); a heartbeat response clears it so that
        // one empty append can probe a window whose messages may all have been lost.
        return this.msgAppFlowPaused;
      case 'snapshot':
        return true;
      default:
        return assertNever(this.state, 'progress state');
    }
  }

  toStatus(): ProgressStatus {
    return { match: this.match, next: this.next, state: this.state, isLearner: this.isLearner, recentActive: this.recentActive };
  }
}

export type VoteResult = 'won' | 'lost' | 'pending';

/** Membership (voters, learners), per-member progress and the votes of the current election. */
export class ProgressTracker {
  readonly voters = new Set<NodeId>();
  readonly learners = new Set<NodeId>();
  readonly progress = new Map<NodeId, Progress>();
  private readonly votes = new Map<NodeId, boolean>();

  constructor(private readonly maxInflight: number) {}

  /** Ids of all members (voters then learners), sorted, so iteration is deterministic. */
  memberIds(): NodeId[] {
    return [...this.progress.keys()].sort(compareIds);
  }

  voterIds(): NodeId[] {
    return [...this.voters].sort(compareIds);
  }

  quorum(): number {
    return Math.floor(this.voters.size / 2) + 1;
  }

  isSingleton(self: NodeId): boolean {
    return this.voters.size === 1 && this.voters.has(self);
  }

  addVoter(id: NodeId, next: number): void {
    this.learners.delete(id);
    this.voters.add(id);
    const existing = this.progress.get(id);
    if (existing !== undefined) existing.isLearner = false;
    else this.progress.set(id, new Progress(next, this.maxInflight, false));
  }

  addLearner(id: NodeId, next: number): void {
    assert(!this.voters.has(id), 'demoting a voter is not supported');
    this.learners.add(id);
    if (!this.progress.has(id)) this.progress.set(id, new Progress(next, this.maxInflight, true));
  }

  remove(id: NodeId): void {
    this.voters.delete(id);
    this.learners.delete(id);
    this.progress.delete(id);
    this.votes.delete(id);
  }

  /** Replaces the whole membership (snapshot restore / startup). */
  reset(confState: ConfState, next: number): void {
    this.voters.clear();
    this.learners.clear();
    this.progress.clear();
    this.votes.clear();
    for (const id of confState.voters) this.addVoter(id, next);
    for (const id of confState.learners) this.addLearner(id, next);
  }

  confState(): ConfState {
    return { voters: this.voterIds(), learners: [...this.learners].sort(compareIds) };
  }

  /**
   * The highest index stored on a quorum of voters: sort voters' match descending and take the
   * quorum-th. Learners never count.
   */
  committedIndex(): number {
    const matches = this.voterIds().map((id) => this.progress.get(id)?.match ?? 0);
    if (matches.length === 0) return 0;
    matches.sort((a, b) => b - a);
    return matches[this.quorum() - 1]!;
  }

  resetVotes(): void {
    this.votes.clear();
  }

  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters) {
      const vote = this.votes.get(id);
      if (vote === true) granted++;
      else if (vote === false) rejected++;
    }
    const quorum = this.quorum();
    if (granted >= quorum) return { granted, rejected, result: 'won' };
    if (this.voters.size - rejected < quorum) return { granted, rejected, result: 'lost' };
    return { granted, rejected, result: 'pending' };
  }

  /** True if a quorum of voters was recently active (CheckQuorum). `self` always counts. */
  quorumActive(self: NodeId): boolean {
    let active = 0;
    for (const id of this.voters) {
      if (id === self || this.progress.get(id)?.recentActive === true) active++;
    }
    return active >= this.quorum();
  }

  /** True if the acknowledging ids include a quorum of voters (ReadIndex). */
  hasQuorum(ids: ReadonlySet<NodeId>): boolean {
    let count = 0;
    for (const id of this.voters) if (ids.has(id)) count++;
    return count >= this.quorum();
  }
}

export function compareIds(a: NodeId, b: NodeId): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
