/**
 * The Raft protocol state machine (in the style of etcd-io/raft raft.go). It is driven by
 * RawNode; everything here is synchronous and deterministic. Outgoing messages collect in
 * `msgs` and leave through RawNode.ready(), which decides which of them must wait for the
 * Ready to be persisted (see raw-node.ts).
 */
import { RaftLog } from './log.js';
import { Progress, ProgressTracker, compareIds } from './progress.js';
import { ReadOnly, type ReadIndexRequest } from './read-only.js';
import type {
  AppMessage, AppRespMessage, ConfChange, ConfState, Entry, HardState, HeartbeatMessage,
  HeartbeatRespMessage, Logger, Message, NodeId, PreVoteMessage, ProposeResult, RaftConfig,
  RaftFaults, ReadState, Role, SnapMessage, Snapshot, SoftState, VoteMessage,
} from './types.js';
import { MESSAGE_TYPES, NONE } from './types.js';
import { EMPTY_BYTES, assert, assertNever } from './util.js';

const DEFAULT_MAX_SIZE_PER_MSG = 1024 * 1024;
const DEFAULT_MAX_INFLIGHT_MSGS = 256;

/** A message as built inside the core: `from` and `term` are filled in by send(). */
type Outgoing = Message extends infer M
  ? M extends Message
    ? Omit<M, 'from' | 'term'> & { from?: NodeId; term?: number }
    : never
  : never;

type CampaignKind = 'preVote' | 'vote';

export function validateConfig(config: RaftConfig): void {
  assert(config.id !== NONE, 'config.id must not be NONE (0n)');
  assert(Number.isSafeInteger(config.heartbeatTicks) && config.heartbeatTicks > 0, 'heartbeatTicks must be > 0');
  assert(Number.isSafeInteger(config.electionTicks) && config.electionTicks > config.heartbeatTicks,
    'electionTicks must be > heartbeatTicks');
  assert((config.maxInflightMsgs ?? DEFAULT_MAX_INFLIGHT_MSGS) > 0, 'maxInflightMsgs must be > 0');
  assert((config.maxSizePerMsg ?? DEFAULT_MAX_SIZE_PER_MSG) > 0, 'maxSizePerMsg must be > 0');
  assert((config.maxUncommittedEntriesSize ?? 0) >= 0, 'maxUncommittedEntriesSize must be >= 0');
}

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  role: Role = 'follower';
  readonly log: RaftLog;
  readonly tracker: ProgressTracker;
  /** Outgoing messages since the last Ready. */
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  leadTransferee: NodeId = NONE;
  /** Index of the newest conf change proposed by this leader; a new one waits until it is applied. */
  private pendingConfIndex = 0;
  /** Payload bytes of entries this leader appended but that are not applied yet. */
  private uncommittedSize = 0;
  private readOnly = new ReadOnly();
  /** ReadIndex requests that arrived before this leader committed an entry of its term. */
  private pendingReadIndex: ReadIndexRequest[] = [];
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** True while campaigning because of a leader transfer (timeoutNow): skips PreVote and leases. */
  private campaignTransfer = false;

  private readonly electionTimeout: number;
  private readonly heartbeatTimeout: number;
  private readonly random: () => number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly maxSizePerMsg: number;
  private readonly maxUncommittedSize: number;
  private readonly logger: Logger | undefined;
  readonly faults: RaftFaults;

  constructor(config: RaftConfig) {
    validateConfig(config);
    this.id = config.id;
    this.electionTimeout = config.electionTicks;
    this.heartbeatTimeout = config.heartbeatTicks;
    this.random = config.random;
    this.preVote = config.preVote ?? true;
    this.checkQuorum = config.checkQuorum ?? true;
    this.maxSizePerMsg = config.maxSizePerMsg ?? DEFAULT_MAX_SIZE_PER_MSG;
    this.maxUncommittedSize = config.maxUncommittedEntriesSize ?? 0;
    this.logger = config.logger;
    this.faults = config.faults ?? {};
    this.log = new RaftLog(config.storage, this.maxSizePerMsg);
    this.tracker = new ProgressTracker(config.maxInflightMsgs ?? DEFAULT_MAX_INFLIGHT_MSGS);
    const { hardState, confState } = config.storage.initialState();
    this.tracker.reset(confState, this.log.lastIndex() + 1);
    this.loadHardState(hardState);
    if (config.applied !== undefined && config.applied > 0) this.log.appliedTo(config.applied);
    this.becomeFollower(this.term, NONE);
  }

  private loadHardState(hs: HardState): void {
    if (hs.term === 0 && hs.vote === NONE && hs.commit === 0) return;
    assert(hs.commit <= this.log.lastIndex(), `hardState commit ${hs.commit} beyond lastIndex ${this.log.lastIndex()}`);
    // A snapshot is committed by definition. A crash between persisting a received snapshot and
    // the hard state that followed it leaves a stale, lower commit on disk: the log's commit
    // (the snapshot index) wins, so the member can restart.
    this.log.committed = Math.max(hs.commit, this.log.committed);
    this.term = hs.term;
    this.vote = hs.vote;
  }

  softState(): SoftState {
    return { leader: this.lead, role: this.role };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private promotable(): boolean {
    return this.tracker.voters.has(this.id);
  }

  // ------------------------------------------------------------------------------------------
  // Role transitions

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    const draw = this.random();
    assert(draw >= 0 && draw < 1, `config.random() returned ${draw}, outside [0, 1)`);
    this.randomizedElectionTimeout = this.electionTimeout + Math.floor(draw * this.electionTimeout);
    this.leadTransferee = NONE;
    this.campaignTransfer = false;
    this.tracker.resetVotes();
    const next = this.log.lastIndex() + 1;
    for (const [id, pr] of this.tracker.progress) {
      const fresh = new Progress(next, pr.inflights.capacity, pr.isLearner);
      if (id === this.id) fresh.match = this.log.persistedLastIndex();
      this.tracker.progress.set(id, fresh);
    }
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly = new ReadOnly();
    this.pendingReadIndex = [];
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.role = 'follower';
    this.logger?.debug('raft: became follower', { id: this.id, term, lead });
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'leader cannot become pre-candidate');
    // PreVote changes neither term nor vote: a failed pre-election leaves no trace.
    this.tracker.resetVotes();
    this.lead = NONE;
    this.role = 'preCandidate';
    this.logger?.debug('raft: became pre-candidate', { id: this.id, term: this.term });
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'leader cannot become candidate');
    const transfer = this.campaignTransfer;
    this.reset(this.term + 1);
    this.campaignTransfer = transfer;
    this.vote = this.id;
    this.role = 'candidate';
    this.logger?.debug('raft: became candidate', { id: this.id, term: this.term });
  }

  private becomeLeader(): void {
    assert(this.role !== 'follower', 'follower cannot become leader directly');
    this.reset(this.term);
    this.lead = this.id;
    this.role = 'leader';
    const self = this.tracker.progress.get(this.id);
    if (self !== undefined) {
      self.match = this.log.persistedLastIndex(); // only what is durable counts (onPersisted)
      self.becomeReplicate();
    }
    // Any conf change in the uncommitted tail may still be pending.
    this.pendingConfIndex = this.log.lastIndex();
    // An entry of our own term lets us commit (and learn the commit index) per §5.4.2.
    const appended = this.appendEntries([{ term: 0, index: 0, type: 'normal', data: EMPTY_BYTES }]);
    assert(appended, 'leader could not append its empty entry');
    this.logger?.info('raft: became leader', { id: this.id, term: this.term });
  }

  // ------------------------------------------------------------------------------------------
  // Time

  tick(): void {
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (!this.tracker.voters.has(this.id)) {
        // Removed and still handing over: never give up (see handOverAfterRemoval), but
        // retry, preferring a voter we heard from lately.
        this.handOverAfterRemoval();
      } else {
        if (this.checkQuorum && !this.checkQuorumActive()) return;
        // A transfer that did not finish within an election timeout is abandoned.
        if (this.leadTransferee !== NONE) this.abortLeaderTransfer();
      }
    }
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat(this.readOnly.lastPendingContext() ?? EMPTY_BYTES);
    }
  }

  /** CheckQuorum: step down unless a quorum was heard from during the last election timeout. */
  private checkQuorumActive(): boolean {
    const active = this.tracker.quorumActive(this.id);
    for (const [id, pr] of this.tracker.progress) pr.recentActive = id === this.id;
    if (active) return true;
    this.logger?.warn('raft: stepped down, no recent contact with a quorum', { id: this.id, term: this.term });
    this.becomeFollower(this.term, NONE);
    return false;
  }

  // ------------------------------------------------------------------------------------------
  // Elections

  /** Starts an election if allowed (the "MsgHup" of etcd). */
  hup(transfer: boolean): void {
    if (this.role === 'leader') return;
    if (!this.promotable()) {
      this.logger?.debug('raft: not promotable, not campaigning', { id: this.id });
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      // The configuration we would campaign under may be about to change.
      this.logger?.warn('raft: not campaigning, conf changes pending apply', { id: this.id });
      return;
    }
    this.campaignTransfer = transfer;
    this.campaign(this.preVote && !transfer ? 'preVote' : 'vote');
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.log.committed <= this.log.applied) return false;
    const entries = this.log.slice(this.log.applied + 1, this.log.committed + 1, Number.MAX_SAFE_INTEGER);
    return entries?.some((entry) => entry.type === 'confChange') ?? false;
  }

  private campaign(kind: CampaignKind): void {
    let term: number;
    if (kind === 'preVote') {
      this.becomePreCandidate();
      term = this.term + 1; // the term we would campaign in
    } else {
      this.becomeCandidate();
      term = this.term;
    }
    if (kind === 'preVote') {
      // A pre-vote binds nothing, so we may count our own at once.
      if (this.poll(this.id, kind, true) !== 'pending') return;
    }
    // A real self-vote is counted only once our term and vote are durable (onPersisted).
    const lastIndex = this.log.lastIndex();
    const logTerm = this.log.lastTerm();
    for (const id of this.tracker.voterIds()) {
      if (id === this.id) continue;
      this.send({ type: kind, to: id, term, logTerm, index: lastIndex, transfer: this.campaignTransfer });
    }
  }

  /** Records a vote and acts on the outcome. */
  private poll(from: NodeId, kind: CampaignKind, granted: boolean): 'won' | 'lost' | 'pending' {
    this.tracker.recordVote(from, granted);
    const { result } = this.tracker.tallyVotes();
    if (result === 'won') {
      if (kind === 'preVote') this.campaign('vote');
      else {
        this.becomeLeader();
        this.bcastAppend();
      }
    } else if (result === 'lost') {
      // A rejection may carry our own term: stay in it, as a follower without a leader.
      this.becomeFollower(this.term, NONE);
    }
    return result;
  }

  /**
   * Called by RawNode.advance() after the shell persisted a Ready: counts our own vote and our
   * own log toward quorums only now, because only durable state may be counted (see raw-node.ts).
   */
  onPersisted(durable: HardState): void {
    if (this.role === 'candidate' && durable.term === this.term && durable.vote === this.id) {
      this.poll(this.id, 'vote', true);
      return;
    }
    if (this.role !== 'leader') return;
    const self = this.tracker.progress.get(this.id);
    if (self === undefined) return;
    if (self.maybeUpdate(this.log.persistedLastIndex()) && this.maybeCommit()) this.onCommitAdvanced();
  }

  // ------------------------------------------------------------------------------------------
  // Step

  step(m: Message): void {
    assert((MESSAGE_TYPES as readonly string[]).includes(m.type), `unknown message type ${String(m.type)}`);
    if (m.term === 0) {
      // 'prop' and 'readIndex' carry no term (forwarded requests).
      assert(m.type === 'prop' || m.type === 'readIndex', `${m.type} without a term`);
    } else if (m.term > this.term) {
      if (!this.stepHigherTerm(m)) return;
    } else if (m.term < this.term) {
      this.stepLowerTerm(m);
      return;
    }
    switch (m.type) {
      case 'vote':
      case 'preVote':
        this.handleVoteRequest(m);
        return;
      default:
        this.stepByRole(m);
    }
  }

  /** A message from a newer term. Returns false if it must be ignored. */
  private stepHigherTerm(m: Message): boolean {
    if (m.type === 'vote' || m.type === 'preVote') {
      const inLease = this.checkQuorum && this.lead !== NONE && this.electionElapsed < this.electionTimeout;
      if (inLease && !m.transfer) {
        // We heard from a live leader within the minimum election timeout: a disruptive
        // candidate (e.g. one returning from a partition) must not depose it.
        this.logger?.debug('raft: ignoring vote request inside leader lease', { id: this.id, from: m.from });
        return false;
      }
    }
    if (m.type === 'preVote') return true; // a pre-vote never changes our term
    if (m.type === 'preVoteResp' && !m.reject) return true; // we bump our term when we win
    const leader = m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap' ? m.from : NONE;
    this.becomeFollower(m.term, leader);
    return true;
  }

  private stepLowerTerm(m: Message): void {
    if ((this.checkQuorum || this.preVote) && (m.type === 'heartbeat' || m.type === 'app')) {
      // A stale leader (e.g. back from a partition) learns our term from this and steps
      // down; without it, it could stay leader forever since we ignore it.
      this.send({ type: 'appResp', to: m.from, index: 0, reject: false, rejectHint: 0, logTerm: 0 });
    } else if (m.type === 'preVote') {
      this.send({ type: 'preVoteResp', to: m.from, reject: true });
    }
  }

  private handleVoteRequest(m: VoteMessage | PreVoteMessage): void {
    const canVote = this.vote === m.from
      || (this.vote === NONE && this.lead === NONE)
      || (m.type === 'preVote' && m.term > this.term);
    const upToDate = this.faults.grantVoteToShorterLog === true || this.log.isUpToDate(m.index, m.logTerm);
    const respType = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
    if (canVote && upToDate) {
      // A granted pre-vote answers in the requested term so the pre-candidate can count it.
      this.send({ type: respType, to: m.from, term: m.term, reject: false });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, to: m.from, reject: true });
    }
  }

  private stepByRole(m: Message): void {
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        return;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        return;
      case 'follower':
        this.stepFollower(m);
        return;
      default:
        assertNever(this.role, 'role');
    }
  }

  // ------------------------------------------------------------------------------------------
  // Leader

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'prop':
        this.leaderPropose(m.entries);
        return;
      case 'readIndex':
        this.leaderReadIndex({ from: m.from, context: m.context });
        return;
      case 'appResp':
        this.handleAppendResponse(m);
        return;
      case 'heartbeatResp':
        this.handleHeartbeatResponse(m);
        return;
      case 'transferLeader':
        this.handleTransferLeader(m.transferee);
        return;
      case 'app':
      case 'heartbeat':
      case 'snap':
        // Two leaders in one term would be a safety violation; never expected.
        this.logger?.warn('raft: leader got a leader message in its own term', { id: this.id, from: m.from, type: m.type });
        return;
      case 'vote':
      case 'preVote':
      case 'voteResp':
      case 'preVoteResp':
      case 'timeoutNow':
      case 'readIndexResp':
        return; // stale or irrelevant for a leader
      default:
        assertNever(m, 'message');
    }
  }

  /** Appends proposals on the leader. Returns the reason when refused. */
  leaderPropose(entries: readonly Entry[]): ProposeResult {
    assert(entries.length > 0, 'empty proposal');
    if (!this.tracker.progress.has(this.id)) return { ok: false, reason: 'notVoter' };
    if (this.leadTransferee !== NONE) return { ok: false, reason: 'transferring' };
    const filtered = entries.map((entry) => this.filterConfChange(entry));
    if (!this.appendEntries(filtered)) return { ok: false, reason: 'tooLarge' };
    this.bcastAppend();
    return { ok: true };
  }

  /** One conf change at a time: a forwarded one that arrives while another is pending becomes a no-op. */
  private filterConfChange(entry: Entry): Entry {
    if (entry.type !== 'confChange') return entry;
    if (this.pendingConfIndex > this.log.applied) {
      this.logger?.info('raft: dropping conf change, another one is pending', { id: this.id });
      return { term: 0, index: 0, type: 'normal', data: EMPTY_BYTES };
    }
    // Mark "pending" now so that a second conf change in this same batch is dropped too;
    // appendEntries then records the exact index.
    this.pendingConfIndex = this.log.lastIndex() + 1;
    return entry;
  }

  confChangePending(): boolean {
    return this.pendingConfIndex > this.log.applied;
  }

  /** Assigns term and index to new entries and appends them to our (unstable) log. */
  private appendEntries(entries: readonly Entry[]): boolean {
    const size = payloadBytes(entries);
    if (this.maxUncommittedSize > 0 && this.uncommittedSize > 0 && this.uncommittedSize + size > this.maxUncommittedSize) {
      return false;
    }
    this.uncommittedSize += size;
    let index = this.log.lastIndex();
    const stamped = entries.map((entry) => ({ term: this.term, index: ++index, type: entry.type, data: entry.data }));
    for (const entry of stamped) {
      if (entry.type === 'confChange') this.pendingConfIndex = Math.max(this.pendingConfIndex, entry.index);
    }
    this.log.append(stamped);
    // Our own progress is NOT updated here: it moves in onPersisted, once the shell made these
    // entries durable, so the leader never counts a non-durable copy toward commit.
    return true;
  }

  /** Called when applied entries leave the uncommitted window (leader only). */
  reduceUncommittedSize(applied: readonly Entry[]): void {
    if (this.role !== 'leader') return;
    this.uncommittedSize = Math.max(0, this.uncommittedSize - payloadBytes(applied));
  }

  maybeCommit(): boolean {
    const allowOld = this.faults.commitOldTermEntries === true;
    return this.log.maybeCommit(this.tracker.committedIndex(), this.term, allowOld);
  }

  private onCommitAdvanced(): void {
    this.releasePendingReadIndex();
    this.bcastAppend();
  }

  private handleAppendResponse(m: AppRespMessage): void {
    const pr = this.tracker.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (m.reject) {
      this.handleAppendRejection(m, pr);
      return;
    }
    if (!pr.maybeUpdate(m.index) && !(pr.match === m.index && pr.state === 'probe')) return;
    this.advanceProgressState(pr, m.index);
    if (this.maybeCommit()) this.onCommitAdvanced();
    else if (pr.canBumpCommit(this.log.committed)) this.sendAppend(m.from);
    // Keep the pipeline full: send as many batches as the inflight window allows.
    while (this.maybeSendAppend(m.from, false)) { /* continue */ }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.sendTimeoutNow(m.from);
    }
  }

  private handleAppendRejection(m: AppRespMessage, pr: Progress): void {
    // Fast back-off: skip every entry whose term cannot match the follower's log.
    let nextProbe = m.rejectHint;
    if (m.logTerm > 0) nextProbe = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
    if (!pr.maybeDecrTo(m.index, nextProbe)) return;
    if (pr.state === 'replicate') pr.becomeProbe();
    this.sendAppend(m.from);
  }

  private advanceProgressState(pr: Progress, index: number): void {
    switch (pr.state) {
      case 'probe':
        pr.becomeReplicate();
        return;
      case 'snapshot':
        // The follower caught up (through the snapshot or otherwise): resume from the log
        // if it still holds what the follower needs next.
        if (pr.match + 1 >= this.log.firstIndex()) {
          pr.becomeProbe();
          pr.becomeReplicate();
        }
        return;
      case 'replicate':
        pr.inflights.freeLE(index);
        return;
      default:
        assertNever(pr.state, 'progress state');
    }
  }

  private handleHeartbeatResponse(m: HeartbeatRespMessage): void {
    const pr = this.tracker.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.msgAppFlowPaused = false;
    if (pr.match < this.log.lastIndex() || pr.state === 'probe') this.sendAppend(m.from);
    if (m.context.byteLength === 0) return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (acks === undefined || !this.tracker.hasQuorum(acks)) return;
    for (const status of this.readOnly.advance(m.context)) {
      this.respondToReadIndex(status.request, status.index);
    }
  }

  /** Entry point for a local transferLeader(); followers forward it to their leader. */
  transferLeader(transferee: NodeId): void {
    if (this.role === 'leader') this.handleTransferLeader(transferee);
    else if (this.role === 'follower' && this.lead !== NONE) this.send({ type: 'transferLeader', to: this.lead, transferee });
  }

  private handleTransferLeader(transferee: NodeId): void {
    const pr = this.tracker.progress.get(transferee);
    if (pr === undefined || pr.isLearner) {
      this.logger?.info('raft: ignoring transfer to a non-voter', { id: this.id, transferee });
      return;
    }
    if (this.leadTransferee !== NONE) {
      if (this.leadTransferee === transferee) return; // already in progress
      this.abortLeaderTransfer();
    }
    if (transferee === this.id) return; // already leader
    // The transfer must finish within one election timeout (see tickHeartbeat).
    this.electionElapsed = 0;
    this.leadTransferee = transferee;
    this.logger?.info('raft: starting leader transfer', { id: this.id, transferee });
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(transferee);
    else this.sendAppend(transferee);
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: 'timeoutNow', to });
    // A removed leader handing over has nothing left to do; its successor has every entry.
    if (!this.tracker.voters.has(this.id)) this.becomeFollower(this.term, NONE);
  }

  // ------------------------------------------------------------------------------------------
  // ReadIndex

  /** Entry point for a local readIndex() on any role. */
  readIndex(context: Uint8Array): ProposeResult {
    assert(context.byteLength > 0, 'readIndex needs a non-empty, unique context');
    switch (this.role) {
      case 'leader':
        this.leaderReadIndex({ from: this.id, context });
        return { ok: true };
      case 'follower':
        if (this.lead === NONE) return { ok: false, reason: 'noLeader' };
        this.send({ type: 'readIndex', to: this.lead, term: 0, context });
        return { ok: true };
      case 'candidate':
      case 'preCandidate':
        return { ok: false, reason: 'noLeader' };
      default:
        return assertNever(this.role, 'role');
    }
  }

  private leaderReadIndex(request: ReadIndexRequest): void {
    if (!this.committedEntryInCurrentTerm()) {
      // Our commit index may be stale until an entry of our term commits (§6.4 of the thesis).
      this.pendingReadIndex.push(request);
      return;
    }
    this.confirmReadIndex(request);
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  private confirmReadIndex(request: ReadIndexRequest): void {
    const index = this.log.committed;
    if (this.tracker.isSingleton(this.id) || this.faults.readIndexWithoutHeartbeat === true) {
      this.respondToReadIndex(request, index);
      return;
    }
    if (!this.readOnly.addRequest(index, request)) return;
    this.readOnly.recvAck(this.id, request.context);
    this.bcastHeartbeat(request.context);
  }

  private releasePendingReadIndex(): void {
    if (this.pendingReadIndex.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const pending = this.pendingReadIndex;
    this.pendingReadIndex = [];
    for (const request of pending) this.confirmReadIndex(request);
  }

  private respondToReadIndex(request: ReadIndexRequest, index: number): void {
    if (request.from === this.id || request.from === NONE) {
      this.readStates.push({ index, context: request.context });
    } else {
      this.send({ type: 'readIndexResp', to: request.from, index, context: request.context });
    }
  }

  // ------------------------------------------------------------------------------------------
  // Candidate and follower

  private stepCandidate(m: Message): void {
    const myResp = this.role === 'preCandidate' ? 'preVoteResp' : 'voteResp';
    switch (m.type) {
      case 'app':
      case 'heartbeat':
      case 'snap':
        // A leader of our term exists: it won, we lost.
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        return;
      case 'voteResp':
      case 'preVoteResp':
        if (m.type === myResp) this.poll(m.from, this.role === 'preCandidate' ? 'preVote' : 'vote', !m.reject);
        return;
      case 'prop':
      case 'readIndex':
      case 'transferLeader':
        this.logger?.debug('raft: no leader, dropping request', { id: this.id, type: m.type });
        return;
      case 'timeoutNow':
      case 'appResp':
      case 'heartbeatResp':
      case 'readIndexResp':
      case 'vote':
      case 'preVote':
        return;
      default:
        assertNever(m, 'message');
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'prop':
        if (this.lead === NONE) return;
        this.send({ type: 'prop', to: this.lead, term: 0, entries: m.entries });
        return;
      case 'app':
        this.heardFromLeader(m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.heardFromLeader(m.from);
        this.handleHeartbeat(m);
        return;
      case 'snap':
        this.heardFromLeader(m.from);
        this.handleSnapshot(m);
        return;
      case 'transferLeader':
        if (this.lead !== NONE) this.send({ type: 'transferLeader', to: this.lead, transferee: m.transferee });
        return;
      case 'timeoutNow':
        // Leadership transfers skip PreVote: the old leader asked us, no partition to fear.
        this.hup(true);
        return;
      case 'readIndex':
        // Keep the original requester as `from` so the leader answers it directly.
        if (this.lead !== NONE) this.send({ type: 'readIndex', to: this.lead, from: m.from, term: 0, context: m.context });
        return;
      case 'readIndexResp':
        this.readStates.push({ index: m.index, context: m.context });
        return;
      case 'appResp':
      case 'heartbeatResp':
      case 'voteResp':
      case 'preVoteResp':
      case 'vote':
      case 'preVote':
        return;
      default:
        assertNever(m, 'message');
    }
  }

  private heardFromLeader(from: NodeId): void {
    this.electionElapsed = 0;
    this.lead = from;
  }

  private handleAppend(m: AppMessage): void {
    if (m.index < this.log.committed) {
      // Everything up to our commit index matches any leader's log; tell it where we are.
      this.sendAppendResponse(m.from, this.log.committed);
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.sendAppendResponse(m.from, lastNew);
      return;
    }
    // Reject with a hint: our last entry at or below m.index whose term is <= m.logTerm.
    const hintIndex = Math.min(m.index, this.log.lastIndex());
    const hint = this.log.findConflictByTerm(hintIndex, m.logTerm);
    this.send({ type: 'appResp', to: m.from, index: m.index, reject: true, rejectHint: hint.index, logTerm: hint.term });
  }

  private sendAppendResponse(to: NodeId, index: number): void {
    this.send({ type: 'appResp', to, index, reject: false, rejectHint: 0, logTerm: 0 });
  }

  private handleHeartbeat(m: HeartbeatMessage): void {
    // The leader sends min(our match, its commit), so this never exceeds what we hold.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send({ type: 'heartbeatResp', to: m.from, context: m.context });
  }

  private handleSnapshot(m: SnapMessage): void {
    if (this.restore(m.snapshot)) this.sendAppendResponse(m.from, this.log.lastIndex());
    else this.sendAppendResponse(m.from, this.log.committed);
  }

  /** Installs a snapshot from the leader; false if it brings nothing new. */
  private restore(snapshot: Snapshot): boolean {
    const meta = snapshot.metadata;
    if (meta.index <= this.log.committed) return false;
    if (this.log.matchTerm(meta.index, meta.term)) {
      // We already hold the entry: just learn that it is committed, keep the log.
      this.log.commitTo(meta.index);
      return false;
    }
    this.log.restore(snapshot);
    this.tracker.reset(meta.confState, this.log.lastIndex() + 1);
    this.logger?.info('raft: restored snapshot', { id: this.id, index: meta.index, term: meta.term });
    return true;
  }

  // ------------------------------------------------------------------------------------------
  // Sending

  send(out: Outgoing): void {
    const isRequest = out.type === 'prop' || out.type === 'readIndex';
    const term = out.term ?? (isRequest ? 0 : this.term);
    // Every caller passes a fresh object literal, so it is completed in place: copying it with a
    // spread cost more than anything else the leader did per message (a megamorphic clone).
    const message = out as { from?: NodeId; term?: number } & Outgoing;
    if (message.from === undefined) message.from = this.id;
    message.term = term;
    assert(message.to !== this.id, `message ${message.type} addressed to self`);
    this.msgs.push(message as Message);
  }

  private bcastAppend(): void {
    for (const id of this.tracker.memberIds()) {
      if (id !== this.id) this.sendAppend(id);
    }
  }

  private sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /**
   * Sends the next batch of entries to `to` (or a snapshot if they were compacted).
   * Returns true if a message was sent.
   */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.tracker.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    // With a full window, send no entries: the (empty) append gets acked or rejected, and
    // either answer frees the window even if every inflight message was lost.
    const windowFull = pr.state === 'replicate' && pr.inflights.full();
    const entries = prevTerm === undefined ? undefined : windowFull ? [] : this.log.entriesFrom(pr.next, this.maxSizePerMsg);
    if (prevTerm === undefined || entries === undefined) return this.maybeSendSnapshot(to, pr);
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({ type: 'app', to, index: prevIndex, logTerm: prevTerm, entries, commit: this.log.committed });
    pr.sentEntries(entries.length, prevIndex + entries.length);
    pr.sentCommitIndex(this.log.committed);
    return true;
  }

  private maybeSendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) {
      // Do not ship a (large) snapshot to a member that may be down.
      this.logger?.debug('raft: not sending snapshot to inactive member', { id: this.id, to });
      return false;
    }
    let snapshot: Snapshot;
    try {
      snapshot = this.log.snapshot();
    } catch (err) {
      if (err instanceof Error && (err as { code?: unknown }).code === 'snapshotTemporarilyUnavailable') return false;
      throw err;
    }
    assert(snapshot.metadata.index > 0, 'need a snapshot but storage has none');
    pr.becomeSnapshot(snapshot.metadata.index);
    this.logger?.info('raft: sending snapshot', { id: this.id, to, index: snapshot.metadata.index });
    this.send({ type: 'snap', to, snapshot });
    return true;
  }

  private bcastHeartbeat(context: Uint8Array): void {
    for (const id of this.tracker.memberIds()) {
      if (id === this.id) continue;
      const pr = this.tracker.progress.get(id)!;
      // Never tell a follower to commit beyond what it is known to hold.
      const commit = Math.min(pr.match, this.log.committed);
      this.send({ type: 'heartbeat', to: id, commit, context });
      pr.sentCommitIndex(commit);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Local reports and membership

  reportUnreachable(id: NodeId): void {
    if (this.role !== 'leader') return;
    const pr = this.tracker.progress.get(id);
    // Optimistic pipelining is pointless towards an unreachable peer: probe instead.
    if (pr?.state === 'replicate') pr.becomeProbe();
  }

  reportSnapshot(id: NodeId, status: 'finish' | 'failure'): void {
    if (this.role !== 'leader') return;
    const pr = this.tracker.progress.get(id);
    if (pr === undefined || pr.state !== 'snapshot') return;
    if (status === 'failure') pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for an answer (appResp after a finished snapshot, or a heartbeat response after a
    // failure) before probing again, instead of retrying at once.
    pr.msgAppFlowPaused = true;
  }

  /** Applies a committed conf change (called when the shell applies its entry). */
  applyConfChange(cc: ConfChange): ConfState {
    const isNewMember = cc.type !== 'removeNode' && !this.tracker.progress.has(cc.nodeId);
    this.changeMembership(cc);
    if (this.role !== 'leader') return this.tracker.confState();
    if (!this.tracker.voters.has(this.id)) {
      this.handOverAfterRemoval();
      return this.tracker.confState();
    }
    if (this.leadTransferee !== NONE && !this.tracker.voters.has(this.leadTransferee)) this.abortLeaderTransfer();
    // The quorum may have shrunk, so commit may advance.
    if (this.maybeCommit()) this.onCommitAdvanced();
    // Probe a new member at once rather than at the next heartbeat.
    if (isNewMember && cc.nodeId !== this.id) this.sendAppend(cc.nodeId);
    return this.tracker.confState();
  }

  private changeMembership(cc: ConfChange): void {
    const next = this.log.lastIndex() + 1;
    switch (cc.type) {
      case 'addNode':
        this.tracker.addVoter(cc.nodeId, next);
        return;
      case 'addLearner':
        if (this.tracker.voters.has(cc.nodeId)) {
          // Demotion is not supported; every member applies this same no-op.
          this.logger?.warn('raft: ignoring addLearner for a voter', { id: this.id, nodeId: cc.nodeId });
          return;
        }
        this.tracker.addLearner(cc.nodeId, next);
        return;
      case 'removeNode':
        if (this.tracker.voters.has(cc.nodeId) && this.tracker.voters.size === 1) {
          // A configuration without voters could never elect a leader again.
          this.logger?.warn('raft: ignoring removal of the last voter', { id: this.id, nodeId: cc.nodeId });
          return;
        }
        this.tracker.remove(cc.nodeId);
        return;
      default:
        assertNever(cc.type, 'conf change type');
    }
  }

  /**
   * The leader applied its own removal. It must not just stop: the remaining voters may not
   * know yet that the removal (or later entries) committed, and in a 2-voter cluster the one
   * left could then never win an election (etcd-io/etcd#10563): the removed member, holding
   * the longer log, refuses its vote and, being removed, never campaigns itself. So it hands
   * over like a leader transfer: the most caught-up voter is brought to our last index
   * (learning the commit index on the way) and then gets timeoutNow, after which we step down
   * (sendTimeoutNow). Until then we stay leader, refuse proposals and retry every election
   * timeout; a higher term from a new leader also ends it. This cannot help if we crash
   * meanwhile: shells should transfer leadership away before removing the leader.
   */
  private handOverAfterRemoval(): void {
    const successor = this.pickSuccessor();
    for (const [id, pr] of this.tracker.progress) pr.recentActive = id === this.id;
    if (successor === undefined) {
      this.becomeFollower(this.term, NONE);
      return;
    }
    this.logger?.info('raft: removed from the configuration, handing over', { id: this.id, successor: successor.id });
    this.leadTransferee = successor.id;
    if (successor.match === this.log.lastIndex()) this.sendTimeoutNow(successor.id);
    else this.sendAppend(successor.id);
  }

  /** The most caught-up voter, preferring those heard from recently; ties go to the lowest id. */
  private pickSuccessor(): { id: NodeId; match: number } | undefined {
    let best: { id: NodeId; match: number; active: boolean } | undefined;
    for (const id of this.tracker.voterIds()) {
      const pr = this.tracker.progress.get(id);
      if (pr === undefined) continue;
      const better = best === undefined
        || (pr.recentActive && !best.active)
        || (pr.recentActive === best.active && pr.match > best.match);
      if (better) best = { id, match: pr.match, active: pr.recentActive };
    }
    return best;
  }

  progressSnapshot(): Map<NodeId, Progress> {
    return new Map([...this.tracker.progress].sort(([a], [b]) => compareIds(a, b)));
  }
}

function payloadBytes(entries: readonly Entry[]): number {
  let size = 0;
  for (const entry of entries) size += entry.data.byteLength;
  return size;
}
