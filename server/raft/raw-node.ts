/**
 * RawNode: the Raft core's public, synchronous API (in the style of etcd-io/raft rawnode.go).
 *
 * Protocol. Feed inputs with tick(), step(), propose(), proposeConfChange(), readIndex(),
 * transferLeader(), campaign(). When hasReady() is true, take ready() and then, in order:
 *   1. persist `snapshot`, `entries` and `hardState` (one synced write when `mustSync`), then
 *      mirror them into the Storage given in the config (MemoryStorage.applySnapshot/append/
 *      setHardState) — the core reads its stable log from there;
 *   2. send `messages` (allowed at once, even before step 1 finished) and, only after step 1,
 *      `messagesAfterPersist`;
 *   3. apply `snapshot` (if any) and then `committedEntries` in order, calling
 *      applyConfChange() for each 'confChange' entry; serve `readStates` once applied >= index;
 *   4. call advance().
 * Exactly one Ready is outstanding at a time: hasReady() is false and ready() asserts until
 * advance(). Inputs (step, propose, tick, ...) may still arrive between ready() and advance().
 * For every 'snap' message sent, the transport MUST later call reportSnapshot(to, 'finish' |
 * 'failure'): until then the leader sends that follower nothing but heartbeats.
 * Dropping any other message is always safe: the protocol retries.
 *
 * Persistence contract. Term, vote and entries are durable before this member votes,
 * acknowledges an append, or counts itself in a quorum:
 *   - vote requests, vote grants and append acknowledgements travel in messagesAfterPersist,
 *     as does any message carrying a term that is not durable yet;
 *   - a candidate counts its own vote, and a leader counts its own entries toward commit, only
 *     in advance(), i.e. after the shell persisted them (the leader's self-ack). A leader may
 *     still send entries to followers before its own write finished (etcd's parallel append).
 *
 * Starting a new cluster: seed each initial member with bootstrapStorage(voters) (a snapshot at
 * index 1, term 1 holding the ConfState); a member added later starts from an empty
 * MemoryStorage and receives a snapshot from the leader. Restarting: rebuild the Storage from
 * disk (applySnapshot, setHardState, append) and pass `applied`; see bootstrap.ts.
 */
import { encodeConfChange } from './conf-change.js';
import { Raft } from './raft.js';
import { bootstrapStorage } from './bootstrap.js';
import type { MemoryStorage } from './storage.js';
import type {
  BasicStatus, ConfChange, ConfState, Entry, HardState, Message, NodeId, ProgressStatus, ProposeResult,
  RaftConfig, Ready, Snapshot, SoftState, Status,
} from './types.js';
import { MESSAGE_TYPES, NONE } from './types.js';
import { assert, assertNever } from './util.js';

/** What the outstanding Ready handed out, so advance() acknowledges exactly that. */
interface InProgress {
  readonly hardState: HardState | undefined;
  readonly lastEntry: Entry | undefined;
  readonly snapshot: Snapshot | undefined;
  readonly committedEntries: readonly Entry[];
}

export class RawNode {
  private readonly raft: Raft;
  private prevSoftState: SoftState;
  /** The hardState as last reported in a Ready (or loaded from storage). */
  private prevHardState: HardState;
  /** The hardState known durable: reported in a Ready that was advanced. */
  private durableHardState: HardState;
  private inProgress: InProgress | undefined = undefined;

  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.reportedHardState();
    this.durableHardState = this.prevHardState;
  }

  /** Seeds storage for a member of a brand-new cluster; see bootstrap.ts. */
  static bootstrapStorage(voters: readonly NodeId[], learners: readonly NodeId[] = []): MemoryStorage {
    return bootstrapStorage({ voters, learners });
  }

  tick(): void {
    this.raft.tick();
  }

  /** Messages from peers. Local events have their own methods (reportSnapshot, ...). */
  step(message: Message): void {
    assert((MESSAGE_TYPES as readonly string[]).includes(message.type), `step: not a peer message type: ${String(message.type)}`);
    assert(message.to === this.raft.id, `step: message to ${message.to} delivered to ${this.raft.id}`);
    // A ReadIndex request keeps its requester as `from` while followers forward it, so it can
    // come back to the requester after leadership moved there; the leader then serves it
    // locally (as etcd does). Any other message from ourselves is a bug.
    assert(message.from !== this.raft.id || message.type === 'readIndex', 'step: message from self');
    this.raft.step(message);
  }

  propose(data: Uint8Array): ProposeResult {
    return this.proposeEntries([{ term: 0, index: 0, type: 'normal', data }]);
  }

  /**
   * Several normal entries as one proposal: the leader appends them together and sends each
   * follower one append for all of them (a forwarding follower sends the leader one message).
   * They succeed or fail together.
   */
  proposeMany(data: readonly Uint8Array[]): ProposeResult {
    assert(data.length > 0, 'proposeMany: nothing to propose');
    return this.proposeEntries(data.map((bytes) => ({ term: 0, index: 0, type: 'normal', data: bytes })));
  }

  /** One change at a time: refused while an earlier one is not yet applied (on the leader). */
  proposeConfChange(cc: ConfChange): ProposeResult {
    if (this.raft.role === 'leader' && this.raft.confChangePending()) return { ok: false, reason: 'confChangePending' };
    return this.proposeEntries([{ term: 0, index: 0, type: 'confChange', data: encodeConfChange(cc) }]);
  }

  private proposeEntries(entries: readonly Entry[]): ProposeResult {
    const raft = this.raft;
    switch (raft.role) {
      case 'leader':
        return raft.leaderPropose(entries);
      case 'follower':
        if (raft.lead === NONE) return { ok: false, reason: 'noLeader' };
        // Forwarded; the leader may still drop it (the caller's timeout covers that).
        raft.send({ type: 'prop', to: raft.lead, term: 0, entries });
        return { ok: true };
      case 'candidate':
      case 'preCandidate':
        return { ok: false, reason: 'noLeader' };
      default:
        return assertNever(raft.role, 'role');
    }
  }

  /** Called by the shell when it applies a committed 'confChange' entry. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /** The answer comes back as a ReadState in a later Ready. `context` must be unique. */
  readIndex(context: Uint8Array): ProposeResult {
    return this.raft.readIndex(context);
  }

  transferLeader(to: NodeId): void {
    this.raft.transferLeader(to);
  }

  /** Starts an election now (with PreVote if enabled). */
  campaign(): void {
    this.raft.hup(false);
  }

  reportUnreachable(id: NodeId): void {
    this.raft.reportUnreachable(id);
  }

  reportSnapshot(id: NodeId, status: 'finish' | 'failure'): void {
    this.raft.reportSnapshot(id, status);
  }

  hasReady(): boolean {
    if (this.inProgress !== undefined) return false;
    const raft = this.raft;
    const log = raft.log;
    return !softStateEqual(raft.softState(), this.prevSoftState)
      || !hardStateEqual(this.reportedHardState(), this.prevHardState)
      || log.unstable.nextEntries().length > 0
      || log.unstable.nextSnapshot() !== undefined
      || log.hasNextCommittedEntries()
      || raft.msgs.length > 0
      || raft.readStates.length > 0;
  }

  ready(): Ready {
    assert(this.inProgress === undefined, 'ready() called again before advance()');
    const raft = this.raft;
    const softState = raft.softState();
    const hardState = this.reportedHardState();
    const hardChanged = !hardStateEqual(hardState, this.prevHardState);
    const entries = raft.log.unstable.nextEntries();
    const snapshot = raft.log.unstable.nextSnapshot();
    const committedEntries = raft.log.nextCommittedEntries();
    const { now, afterPersist } = this.splitMessages(raft.msgs);
    const ready: Ready = {
      ...(softStateEqual(softState, this.prevSoftState) ? {} : { softState }),
      ...(hardChanged ? { hardState } : {}),
      entries,
      ...(snapshot === undefined ? {} : { snapshot }),
      committedEntries,
      messages: now,
      messagesAfterPersist: afterPersist,
      readStates: raft.readStates,
      mustSync: entries.length > 0 || snapshot !== undefined
        || hardState.term !== this.prevHardState.term || hardState.vote !== this.prevHardState.vote,
    };
    this.accept(ready, hardChanged ? hardState : undefined);
    return ready;
  }

  /** Marks everything in `ready` as handed out. */
  private accept(ready: Ready, hardState: HardState | undefined): void {
    const raft = this.raft;
    raft.log.unstable.acceptInProgress();
    const lastCommitted = ready.committedEntries[ready.committedEntries.length - 1];
    if (lastCommitted !== undefined) raft.log.acceptApplying(lastCommitted.index);
    raft.msgs = [];
    raft.readStates = [];
    if (ready.softState !== undefined) this.prevSoftState = ready.softState;
    if (hardState !== undefined) this.prevHardState = hardState;
    this.inProgress = {
      hardState,
      lastEntry: ready.entries[ready.entries.length - 1],
      snapshot: ready.snapshot,
      committedEntries: ready.committedEntries,
    };
  }

  /**
   * Messages that depend on state not yet durable wait for persistence: vote requests and
   * grants (our term/vote), append acks (our entries), and anything stamped with a term that
   * is not durable yet (e.g. a new leader's first appends).
   * PreVote traffic binds nothing, so it never waits.
   */
  private splitMessages(msgs: readonly Message[]): { now: Message[]; afterPersist: Message[] } {
    const durableTerm = this.durableHardState.term;
    const now: Message[] = [];
    const afterPersist: Message[] = [];
    for (const m of msgs) {
      const isPreVote = m.type === 'preVote' || m.type === 'preVoteResp';
      const needsPersist = m.type === 'vote' || m.type === 'voteResp' || m.type === 'appResp'
        || (!isPreVote && m.term > durableTerm);
      (needsPersist ? afterPersist : now).push(m);
    }
    return { now, afterPersist };
  }

  /** Acknowledges the outstanding Ready: it is persisted, sent and applied. */
  advance(): void {
    const done = this.inProgress;
    assert(done !== undefined, 'advance() without a ready()');
    this.inProgress = undefined;
    const log = this.raft.log;
    if (done.hardState !== undefined) this.durableHardState = done.hardState;
    if (done.snapshot !== undefined) {
      log.unstable.stableSnapTo(done.snapshot.metadata.index);
      log.appliedTo(done.snapshot.metadata.index);
    }
    if (done.lastEntry !== undefined) log.unstable.stableTo(done.lastEntry.index, done.lastEntry.term);
    const lastCommitted = done.committedEntries[done.committedEntries.length - 1];
    if (lastCommitted !== undefined) {
      log.appliedTo(lastCommitted.index);
      this.raft.reduceUncommittedSize(done.committedEntries);
    }
    this.raft.onPersisted(this.durableHardState);
  }

  /**
   * The hardState to report. With the test-only `forgetVote` fault, a vote granted to another
   * member is hidden, so it is never persisted (a restarted member may vote twice in a term).
   */
  private reportedHardState(): HardState {
    const hs = this.raft.hardState();
    if (this.raft.faults.forgetVote !== true || hs.vote === NONE || hs.vote === this.raft.id) return hs;
    const previous = this.prevHardState;
    const vote = previous !== undefined && previous.term === hs.term ? previous.vote : NONE;
    return { term: hs.term, vote, commit: hs.commit };
  }

  /** The cheap part of status(), for callers on a request path. */
  basicStatus(): BasicStatus {
    const raft = this.raft;
    return { id: raft.id, term: raft.term, vote: raft.vote, commit: raft.log.committed, applied: raft.log.applied, lead: raft.lead, role: raft.role };
  }

  status(): Status {
    const raft = this.raft;
    const base = {
      id: raft.id,
      term: raft.term,
      vote: raft.vote,
      commit: raft.log.committed,
      applied: raft.log.applied,
      lead: raft.lead,
      role: raft.role,
      leadTransferee: raft.leadTransferee,
      confState: raft.tracker.confState(),
    };
    if (raft.role !== 'leader') return base;
    const progress = new Map<NodeId, ProgressStatus>();
    for (const [id, pr] of raft.progressSnapshot()) progress.set(id, pr.toStatus());
    return { ...base, progress };
  }

  /** Read-only access for tests and debugging tools. Do not mutate. */
  get internals(): { readonly raft: Raft } {
    return { raft: this.raft };
  }
}

function softStateEqual(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}

function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

