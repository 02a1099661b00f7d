/**
 * The node shell: drives the pure Raft core with real time, disk and network.
 *
 *   timer → tick(); proposals/reads/messages → core; then for each Ready, one at a time:
 *   send `messages` → persist (one write-ahead log append; fdatasync when mustSync) → send
 *   `messagesAfterPersist` → apply committed entries and answer their proposers → stage their
 *   level ops → resolve reads → advance(). Staged ops go to level in batches spanning Readies,
 *   each with the applied index it brings level to (writeApplied, flushApplied).
 *
 * Group commit falls out of the loop: every proposal that arrives while a Ready is being
 * persisted lands in the next Ready, so one fsync covers all of them.
 *
 * Snapshots for lagging followers are prepared (node/snapshots.ts) inside the Ready loop right
 * after the staged ops are written, when level holds exactly the applied state.
 *
 * A committed entry that cannot be applied stops the member (fail-stop), naming the entry: every
 * member applies the same entries, so carrying on would serve a state that is not the cluster's.
 */
import { randomBytes } from 'node:crypto';
import { assert, GavelError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  RawNode, decodeConfChange, encodeConfChange, NONE,
  type ConfChange, type ConfState, type Entry, type Message, type ProposeResult, type Ready, type SoftState,
} from '../raft/index.js';
import { encodeRequest, type Mutation } from '../apply/request.js';
import type { ApplyResult, MachineState, StateMachine } from '../apply/state-machine.js';
import { installSnapshotFile, pruneSnapshotFiles } from '../apply/snapshot.js';
import { metaOps, u64Key, type BatchOp, type Storage } from '../storage/layout.js';
import type { Wal } from '../storage/wal.js';
import { encodeAddContext, memberIdFor, type Membership } from '../cluster/membership.js';
import type { Consensus, MemberInfo, NodeStatus } from './consensus.js';
import { deferred, type Deferred } from './deferred.js';
import { Conditions } from './conditions.js';
import { ShellStorage } from './shell-storage.js';
import { MemberSnapshots } from './snapshots.js';
import { renewOnLeader, type KeepAliveLeader } from '../lease/keep-alive.js';
import type { MemberMetrics } from '../metrics/registry.js';

/** What the node needs from the peer transport. */
export interface PeerNetwork {
  send(messages: readonly Message[]): void;
  addPeer(id: bigint, urls: readonly string[]): void;
  updatePeer(id: bigint, urls: readonly string[]): void;
  removePeer(id: bigint): void;
  leaseRenew(leader: bigint, id: bigint, signal?: AbortSignal): Promise<number>;
  leaseTimeToLive(leader: bigint, id: bigint, keys: boolean, signal?: AbortSignal): Promise<{ ttl: number; grantedTtl: number; keys: Uint8Array[] }>;
}

export interface RaftNodeOptions {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly clusterToken: string;
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
  readonly snapshotCount: number;
  readonly maxRequestBytes: number;
  readonly maxPendingProposals: number;
  readonly logger: Logger;
  readonly storage: Storage;
  /** The Raft log, hard state and snapshot markers (storage/wal.ts). */
  readonly wal: Wal;
  readonly machine: StateMachine;
  /** The core's log storage, already loaded from disk (or bootstrapped). */
  readonly raftStorage: ShellStorage;
  readonly network: PeerNetwork;
  /** Reloads the state machine from the state spaces after a snapshot was installed. */
  readonly reload: () => Promise<MachineState>;
  /** Prepared snapshots for followers and the files of received ones. */
  readonly snapshots: Pick<MemberSnapshots, 'prepare'>;
  /** Where received snapshot files live (pruned after an install). */
  readonly snapshotDirectory: string;
  /** Called before a snapshot replaces the state (background work on the old state stops). */
  readonly beforeRestore?: () => Promise<void>;
  /** Called when a snapshot replaced the state (watchers catch up from the new history). */
  readonly onRestored?: () => void;
  readonly onLeaderChange?: (leader: bigint, isLeader: boolean) => void;
  /** Called once when this member has been removed from the cluster. */
  readonly onRemoved?: () => void;
  readonly metrics?: MemberMetrics;
}

/** A proposal the core dropped because it knew no leader: propose() waits for one and tries again. */
const DROPPED = Symbol('dropped');

interface QueuedProposal {
  readonly id: bigint;
  readonly data: Uint8Array;
  readonly outcome: Deferred<ApplyResult | typeof DROPPED>;
}

interface Waiter {
  readonly deferred: Deferred<ApplyResult | typeof DROPPED>;
  readonly data: Uint8Array;
  readonly timer: NodeJS.Timeout;
}

interface ReadRequest {
  readonly waiters: Deferred<void>[];
  readonly issuedAtMs: number;
  index: number | undefined;
}

/** Entries kept in the log after a snapshot, so a briefly lagging follower needs no snapshot. */
const MAX_CATCH_UP_ENTRIES = 5000;
/** A ReadIndex request unanswered this long is issued again (the leader may have dropped it). */
const READ_RETRY_MS = 500;
/** How often waiters for the applied index are checked against their deadline (they are released by apply). */
const APPLIED_WAIT_CHECK_MS = 250;
/** Staged state ops are written at most this long after their entries were applied. */
const FLUSH_INTERVAL_MS = 20;
/** Followers fsync inline while the last synced append took less than this. */
const INLINE_FSYNC_MAX_MS = 2;
/** etcd warns about disk writes and applies slower than this. */
const SLOW_MS = 100;
/**
 * A state batch is written after at most this many entries or level operations: a restart that
 * replays 100,000 entries, or one lease revoke deleting many keys, never builds one huge batch.
 */
const APPLY_BATCH_ENTRIES = 1000;
const APPLY_BATCH_OPS = 50_000;
/** Queued proposals go to the core in chunks of at most this many entries and bytes (etcd's max message size). */
const PROPOSAL_CHUNK_ENTRIES = 1024;
const PROPOSAL_CHUNK_BYTES = 1024 * 1024;

/** A committed entry the state machine could not apply: the member must stop. */
export class ApplyFailure extends Error {
  constructor(readonly index: number, cause: unknown) {
    super(`cannot apply committed entry ${index}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'ApplyFailure';
  }
}

export class RaftNode implements Consensus {
  private readonly rawNode: RawNode;
  private readonly waiters = new Map<bigint, Waiter>();
  /** Proposals not yet handed to the core (the Ready loop proposes them together). */
  private proposalQueue: QueuedProposal[] = [];
  /** Callers waiting for a leader, a leadership transfer or a hand-over (released by onSoftState). */
  private readonly conditions = new Conditions();
  private readonly confWaiters = new Map<string, Deferred<void>>();
  private pendingReads: Deferred<void>[] = [];
  private readonly reads = new Map<string, ReadRequest>();
  private nextRequestId = randomBytes(8).readBigUInt64BE();
  private nextReadId = 0n;
  private leader: bigint = NONE;
  private role: SoftState['role'] = 'follower';
  private processing = false;
  private readsScheduled = false;
  private ticker: NodeJS.Timeout | undefined;
  private stopped = false;
  private removed = false;
  private snapshotIndex: number;
  private readonly requestTimeoutMs: number;
  /** Level ops of applied entries not written yet (writeApplied, flushApplied). */
  private stagedOps: BatchOp[] = [];
  private stagedEntries = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  /** The chain of state flushes: one at a time, in order. */
  private flushes: Promise<void> = Promise.resolve();
  /** How long the last synced append took; a slow disk turns inline fsyncs off (persist). */
  private lastFsyncMs = Number.POSITIVE_INFINITY;

  constructor(private readonly options: RaftNodeOptions) {
    const electionTicks = Math.max(2, Math.round(options.electionTimeoutMs / options.heartbeatIntervalMs));
    this.requestTimeoutMs = 5000 + 2 * options.electionTimeoutMs; // etcd's request timeout
    this.snapshotIndex = options.raftStorage.firstIndex() - 1;
    this.rawNode = new RawNode({
      id: options.memberId,
      electionTicks,
      heartbeatTicks: 1,
      storage: options.raftStorage,
      random: cryptoRandom,
      applied: options.machine.appliedIndex,
      preVote: true,
      checkQuorum: true,
      maxUncommittedEntriesSize: 64 * 1024 * 1024,
      logger: options.logger.child({ component: 'raft' }),
    });
  }

  start(): void {
    this.ticker = setInterval(() => this.tick(), this.options.heartbeatIntervalMs);
    const conf = this.rawNode.status().confState;
    // A lone voter need not wait an election timeout to lead itself.
    if (conf.voters.length === 1 && conf.voters[0] === this.options.memberId) this.rawNode.campaign();
    this.scheduleReady();
  }

  // ---- Consensus ----

  async propose(mutation: Mutation, signal?: AbortSignal): Promise<ApplyResult> {
    if (this.stopped || this.removed) throw new GavelError('Stopped');
    const id = this.nextRequestId;
    this.nextRequestId = (this.nextRequestId + 1n) & 0xffff_ffff_ffff_ffffn;
    const data = encodeRequest(id, mutation);
    if (data.length > this.options.maxRequestBytes) throw new GavelError('RequestTooLarge');
    // Like etcd, a write made while there is no leader waits for one (bounded by the request
    // timeout) instead of failing. The core can know the leader is gone a moment before this
    // shell does (the Ready saying so is not handled yet, on a busy machine): a proposal it drops
    // for that waits again, within the same bound, instead of answering "no leader" at once.
    const deadline = performance.now() + this.requestTimeoutMs;
    for (;;) {
      if (this.leader === NONE) {
        await this.conditions.wait(() => this.leader !== NONE, Math.max(0, deadline - performance.now()), () => new GavelError('NoLeader'), signal);
      }
      const outcome = await this.queueProposal(id, data, signal);
      if (outcome !== DROPPED) return outcome;
      const remaining = deadline - performance.now();
      if (remaining <= 0) throw new GavelError('NoLeader');
      await pause(Math.min(this.options.heartbeatIntervalMs, remaining), signal);
    }
  }

  /**
   * Queues a proposal for the Ready loop, which hands everything queued to the core at once
   * (proposeQueued): one append per follower for all of them, not one per client request.
   * Resolves with the entry's result once applied, or DROPPED when there was no leader to take it.
   */
  private queueProposal(id: bigint, data: Uint8Array, signal?: AbortSignal): Promise<ApplyResult | typeof DROPPED> {
    const refusal = this.refuseWrite();
    if (refusal) return Promise.reject(refusal);
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.waiters.size + this.proposalQueue.length >= this.options.maxPendingProposals) return Promise.reject(new GavelError('TooManyRequests'));
    const outcome = deferred<ApplyResult | typeof DROPPED>();
    this.proposalQueue.push({ id, data, outcome });
    this.scheduleReady();
    return outcome.promise;
  }

  /** Hands the queued proposals to the core, in chunks of bounded size; each chunk succeeds or fails whole. */
  private proposeQueued(): void {
    if (this.proposalQueue.length === 0) return;
    const queue = this.proposalQueue;
    this.proposalQueue = [];
    for (let start = 0; start < queue.length; ) {
      let end = start;
      let bytes = 0;
      while (end < queue.length && (end === start || (end - start < PROPOSAL_CHUNK_ENTRIES && bytes + queue[end]!.data.length <= PROPOSAL_CHUNK_BYTES))) {
        bytes += queue[end]!.data.length;
        end += 1;
      }
      const chunk = queue.slice(start, end);
      start = end;
      const result = this.rawNode.proposeMany(chunk.map((p) => p.data));
      for (const proposal of chunk) {
        if (result.ok) {
          const timer = setTimeout(() => this.failWaiter(proposal.id, new GavelError('Timeout')), this.requestTimeoutMs);
          this.waiters.set(proposal.id, { deferred: proposal.outcome, data: proposal.data, timer });
        } else if (result.reason === 'noLeader') {
          proposal.outcome.resolve(DROPPED);
        } else {
          this.options.metrics?.proposalsFailed.inc();
          proposal.outcome.reject(proposeError(result));
        }
      }
    }
  }

  async readBarrier(signal?: AbortSignal): Promise<void> {
    if (this.stopped || this.removed) throw new GavelError('Stopped');
    if (this.leader === NONE) await this.waitForLeader(signal);
    return this.readIndexNow();
  }

  /**
   * Waits until a leader is known, at most the request timeout (or until the caller gives up):
   * an election usually ends well within it. Then NoLeader.
   */
  private async waitForLeader(signal?: AbortSignal): Promise<void> {
    if (this.stopped || this.removed) throw new GavelError('Stopped');
    await this.conditions.wait(() => this.leader !== NONE, this.requestTimeoutMs, () => new GavelError('NoLeader'), signal);
  }

  private readIndexNow(): Promise<void> {
    if (this.leader === NONE) return Promise.reject(new GavelError('NoLeader'));
    const waiter = deferred<void>();
    const timer = setTimeout(() => waiter.reject(new GavelError('Timeout')), this.requestTimeoutMs);
    void waiter.promise.then(() => clearTimeout(timer), () => clearTimeout(timer));
    // Reads that arrive in one event-loop turn share one ReadIndex round.
    this.pendingReads.push(waiter);
    if (!this.readsScheduled) {
      this.readsScheduled = true;
      setImmediate(() => this.issueReads());
    }
    return waiter.promise;
  }

  status(): NodeStatus {
    const status = this.rawNode.basicStatus();
    const member = this.options.machine.membership.get(this.options.memberId);
    return {
      memberId: this.options.memberId,
      clusterId: this.options.clusterId,
      leader: this.leader,
      term: status.term,
      commitIndex: status.commit,
      appliedIndex: this.options.machine.appliedIndex,
      isLearner: member?.isLearner ?? false,
    };
  }

  members(): readonly MemberInfo[] {
    return this.options.machine.membership.list();
  }

  isLeader(): boolean {
    return this.role === 'leader' && !this.stopped;
  }

  leaderId(): bigint {
    return this.leader;
  }

  pendingProposals(): number {
    return this.waiters.size + this.proposalQueue.length;
  }

  private checkpointClears = new Set<bigint>();

  /** Batches checkpoint clears made in one turn into one entry. */
  private clearCheckpoint(id: bigint): void {
    if (this.checkpointClears.size === 0) {
      setImmediate(() => {
        const ids = [...this.checkpointClears];
        this.checkpointClears.clear();
        const checkpoints = ids.map((lease) => ({ ID: lease.toString(), remaining_TTL: '0' }));
        this.propose({ lease_checkpoint: { checkpoints } }).catch(() => undefined);
      });
    }
    this.checkpointClears.add(id);
  }

  /** This member as the leader that answers keep-alives (server/lease/keep-alive.ts). */
  private readonly keepAliveLeader: KeepAliveLeader = {
    lessor: () => this.options.machine.lessor,
    isLeader: () => this.isLeader(),
    caughtUp: () => this.waitApplied(this.rawNode.basicStatus().commit),
  };

  /**
   * Keep-alives are served by the leader: locally when this is it, else forwarded. Call it as the
   * keep-alive arrives (the client's stream or a follower's forward): the leader stamps the lease
   * synchronously, BEFORE the answer waits for the applied index, so a member busy applying
   * cannot expire a lease whose keep-alive it has already received.
   */
  async renewLease(id: bigint, signal?: AbortSignal): Promise<number> {
    // Like etcd, a keep-alive that meets an election waits for the new leader (bounded) rather
    // than failing: a failover must not cost a client its lease.
    const deadline = Date.now() + this.requestTimeoutMs;
    for (;;) {
      if (this.stopped) throw new GavelError('Stopped');
      if (this.leader === NONE) await this.waitForLeader(signal);
      if (this.isLeader()) {
        const answer = await renewOnLeader(this.keepAliveLeader, id);
        // Leadership went while the answer waited: the stamp went with it; the new leader answers.
        if (answer === undefined) continue;
        if (answer.clearCheckpoint) this.clearCheckpoint(id);
        return answer.ttlSeconds;
      }
      const leader = this.leader;
      try {
        return await this.options.network.leaseRenew(leader, id, signal);
      } catch (error) {
        // The lease's own answers are final; a failed hop to a leader that just went away is retried.
        if (error instanceof GavelError && error.code === 'LeaseNotFound') throw error;
        if (Date.now() >= deadline || signal?.aborted) throw error;
        await sleep(this.options.heartbeatIntervalMs);
      }
    }
  }

  async leaseTimeToLive(id: bigint, keys: boolean, signal?: AbortSignal): Promise<{ ttl: number; grantedTtl: number; keys: Uint8Array[] }> {
    if (this.isLeader()) {
      await this.waitApplied(this.rawNode.basicStatus().commit);
      const info = this.options.machine.lessor.timeToLive(id);
      if (info === undefined) return { ttl: -1, grantedTtl: 0, keys: [] };
      return { ttl: info.ttlSeconds, grantedTtl: info.grantedTtlSeconds, keys: keys ? info.keys : [] };
    }
    if (this.leader === NONE) throw new GavelError('NoLeader');
    return this.options.network.leaseTimeToLive(this.leader, id, keys, signal);
  }

  // ---- membership ----

  async addMember(peerUrls: readonly string[], isLearner: boolean): Promise<bigint> {
    const id = memberIdFor(peerUrls, this.options.clusterToken, Date.now());
    await this.changeMembership({ type: isLearner ? 'addLearner' : 'addNode', nodeId: id, context: encodeAddContext({ name: '', peerUrls }) });
    return id;
  }

  async removeMember(id: bigint): Promise<void> {
    await this.changeMembership({ type: 'removeNode', nodeId: id, context: new Uint8Array(0) });
  }

  async promoteMember(id: bigint): Promise<void> {
    if (this.isLeader()) {
      const progress = this.rawNode.status().progress?.get(id);
      const commit = this.rawNode.status().commit;
      // etcd promotes only a learner that has caught up (within 90% of the leader's log).
      if (progress === undefined || progress.match < commit * 0.9) throw new GavelError('LearnerNotReady');
    }
    await this.changeMembership({ type: 'addNode', nodeId: id, context: new Uint8Array(0) });
  }

  private async changeMembership(change: ConfChange): Promise<void> {
    if (this.leader === NONE) await this.waitForLeader();
    const refusal = this.refuseWrite();
    if (refusal) return Promise.reject(refusal);
    const key = confKey(change);
    if (this.confWaiters.has(key)) return Promise.reject(new GavelError('TooManyRequests'));
    const result = this.rawNode.proposeConfChange(change);
    if (!result.ok) return Promise.reject(proposeError(result));
    const waiter = deferred<void>();
    this.confWaiters.set(key, waiter);
    const timer = setTimeout(() => {
      if (this.confWaiters.get(key) === waiter) this.confWaiters.delete(key);
      waiter.reject(new GavelError('Timeout'));
    }, this.requestTimeoutMs);
    void waiter.promise.then(() => clearTimeout(timer), () => clearTimeout(timer));
    this.scheduleReady();
    return waiter.promise;
  }

  /** MoveLeader: the leader hands over to `to` and waits until it leads. */
  async transferLeadership(to: bigint, timeoutMs = 2 * this.options.electionTimeoutMs): Promise<void> {
    if (!this.isLeader()) throw new GavelError('NotLeader');
    if (to === this.options.memberId) return;
    this.rawNode.transferLeader(to);
    this.scheduleReady();
    await this.conditions.wait(() => this.leader === to, timeoutMs, () => new GavelError('LeaderTransferTimeout'));
  }

  /** Graceful stop: a leader first hands over to its most caught-up voter. */
  async close(): Promise<void> {
    if (this.stopped) return;
    if (this.isLeader()) {
      const target = this.bestTransferee();
      if (target !== undefined) {
        await this.transferLeadership(target, this.options.electionTimeoutMs).then(
          () => this.options.logger.info('handed leadership over before stopping', { to: target.toString(16) }),
          (error: unknown) => this.options.logger.warn('leadership transfer before stopping failed', { error }),
        );
      }
    }
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    while (this.processing) await sleep(5);
    // The staged state goes to level now, so a restart need not replay it.
    await this.flushApplied().catch((error: unknown) => this.options.logger.warn('writing the applied state at stop failed', { error }));
    for (const id of [...this.waiters.keys()]) this.failWaiter(id, new GavelError('Stopped'));
    for (const proposal of this.proposalQueue) proposal.outcome.reject(new GavelError('Stopped'));
    this.proposalQueue = [];
    this.releaseAppliedWaiters();
    this.conditions.failAll(new GavelError('Stopped'));
    for (const read of this.reads.values()) for (const w of read.waiters) w.reject(new GavelError('Stopped'));
    for (const w of this.pendingReads) w.reject(new GavelError('Stopped'));
    this.reads.clear();
    this.pendingReads = [];
  }

  private bestTransferee(): bigint | undefined {
    const status = this.rawNode.status();
    let best: bigint | undefined;
    let bestMatch = -1;
    for (const [id, progress] of status.progress ?? []) {
      if (id === this.options.memberId || progress.isLearner || !progress.recentActive) continue;
      if (progress.match > bestMatch) {
        best = id;
        bestMatch = progress.match;
      }
    }
    return best;
  }

  // ---- inputs from the network and the clock ----

  step(message: Message): void {
    if (this.stopped) return;
    this.rawNode.step(message);
    this.scheduleReady();
  }

  reportUnreachable(peer: bigint): void {
    if (!this.stopped) this.rawNode.reportUnreachable(peer);
  }

  reportSnapshot(peer: bigint, status: 'finish' | 'failure'): void {
    if (!this.stopped) this.rawNode.reportSnapshot(peer, status);
  }

  private tick(): void {
    if (this.stopped) return;
    this.rawNode.tick();
    this.retryStaleReads();
    this.scheduleReady();
  }

  // ---- the Ready loop ----

  private scheduleReady(): void {
    if (this.processing || this.stopped) return;
    this.processing = true;
    setImmediate(() => {
      this.processReadies().then(
        () => {
          this.processing = false;
          if (this.stopped) return;
          if (this.rawNode.hasReady() || this.proposalQueue.length > 0 || this.options.raftStorage.wantsSnapshot) this.scheduleReady();
        },
        // A failed disk write leaves memory and disk disagreeing, and an entry that cannot be
        // applied leaves this member unable to follow the log: stopping is the only safe move.
        (error: unknown) => this.failStop(error),
      );
    });
  }

  private async processReadies(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      // Everything proposed while the last Ready was being handled goes to the core together.
      this.proposeQueued();
      if (!this.rawNode.hasReady()) {
        if (this.options.raftStorage.wantsSnapshot) {
          // Level must hold exactly the applied state: write what is staged, within the loop.
          await this.flushApplied();
          this.prepareSnapshot();
        }
        return;
      }
      await this.handleReady(this.rawNode.ready());
    }
  }

  private async handleReady(ready: Ready): Promise<void> {
    if (ready.softState) this.onSoftState(ready.softState);
    this.options.network.send(ready.messages);
    await this.persist(ready);
    this.options.network.send(ready.messagesAfterPersist);
    if (ready.committedEntries.length > 0) await this.applyEntries(ready.committedEntries);
    for (const state of ready.readStates) {
      const read = this.reads.get(hex(state.context));
      if (read !== undefined) read.index = state.index;
    }
    this.releaseReads();
    this.rawNode.advance();
    await this.maybeSnapshot();
  }

  /** Persist BEFORE the core hears advance() and before messagesAfterPersist leave. */
  private async persist(ready: Ready): Promise<void> {
    const storage = this.options.raftStorage;
    if (ready.snapshot) await this.installSnapshot(ready);
    if (ready.entries.length > 0 || ready.hardState) {
      const started = performance.now();
      // A follower's loop has nothing better to do while its append reaches the disk: it syncs
      // inline (no thread-pool round trip) while the disk is fast. The leader keeps serving
      // clients meanwhile, and a slow disk must not block anyone's loop.
      const inline = ready.mustSync && this.role !== 'leader' && this.lastFsyncMs < INLINE_FSYNC_MAX_MS;
      // New entries may replace a longer conflicting suffix: the log's reader drops it (wal.ts).
      await this.options.wal.save(ready.entries, ready.hardState, inline ? 'inline' : ready.mustSync);
      const ms = performance.now() - started;
      if (ready.mustSync) this.lastFsyncMs = ms;
      if (ready.mustSync) this.options.metrics?.walFsync.observe(ms / 1000);
      if (ms > SLOW_MS) this.options.logger.warn('slow fsync', { tookMs: Math.round(ms), entries: ready.entries.length });
    }
    storage.append(ready.entries);
    if (ready.hardState) storage.setHardState(ready.hardState);
  }

  /**
   * A snapshot from the leader, already verified and synced to a file by the transport. The Raft
   * snapshot marker (naming the file) and hard state reach the write-ahead log first; then the
   * state is rewritten from the file, its applied index last. A crash in between installs the
   * file again at restart (apply/snapshot.ts resumeSnapshotInstall).
   */
  private async installSnapshot(ready: Ready): Promise<void> {
    const snapshot = ready.snapshot!;
    const meta = snapshot.metadata;
    const path = MemberSnapshots.fileOf(snapshot.data);
    assert(path !== undefined, `snapshot ${meta.index} from the leader names no file`);
    this.options.logger.info('installing snapshot from the leader', { index: meta.index, term: meta.term, file: path });
    // What is staged belongs to the state being replaced; written first, so no flush can land after the install.
    await this.flushApplied();
    await this.options.beforeRestore?.();
    await this.options.wal.saveSnapshot({ metadata: meta, file: path }, ready.hardState);
    await installSnapshotFile(this.options.storage, path);
    await this.options.wal.releaseTo(meta.index);
    this.options.raftStorage.applySnapshot(snapshot);
    this.options.machine.restore(await this.options.reload());
    assert(this.options.machine.appliedIndex === meta.index, `snapshot ${meta.index} installed the state at ${this.options.machine.appliedIndex}`);
    this.releaseAppliedWaiters();
    this.snapshotIndex = meta.index;
    await pruneSnapshotFiles(this.options.snapshotDirectory);
    this.syncPeers();
    this.options.onRestored?.();
  }

  /**
   * Applies committed entries in bounded groups; each group's state changes and applied index go
   * to level in one batch. Proposers are answered as soon as their entry is applied in memory:
   * the entry is committed (durable in a quorum's logs) and readers already see it; the state
   * write only saves replaying it after a restart, and if it fails the member stops.
   */
  private async applyEntries(entries: readonly Entry[]): Promise<void> {
    const machine = this.options.machine;
    let ops: BatchOp[] = [];
    let results: { id: bigint; data: Uint8Array; result: ApplyResult }[] = [];
    let confApplied: ConfChange[] = [];
    let grouped = 0;
    let applyMs = 0;
    for (const entry of entries) {
      if (entry.index <= machine.appliedIndex) continue;
      const started = performance.now();
      try {
        if (entry.type === 'confChange') {
          const change = decodeConfChange(entry.data);
          this.rawNode.applyConfChange(change);
          for (const op of machine.applyConfChange(entry.index, change)) ops.push(op);
          confApplied.push(change);
        } else {
          const applied = machine.apply(entry.index, entry.data);
          if (applied !== undefined) {
            for (const op of applied.ops) ops.push(op);
            results.push({ id: applied.requestId, data: entry.data, result: applied.result });
          }
        }
      } catch (error) {
        throw new ApplyFailure(entry.index, error);
      }
      applyMs += performance.now() - started;
      assert(machine.appliedIndex === entry.index, `applied index ${machine.appliedIndex} after entry ${entry.index}`);
      if (++grouped >= APPLY_BATCH_ENTRIES || ops.length >= APPLY_BATCH_OPS) {
        await this.writeApplied(ops, results, confApplied, applyMs, grouped);
        ops = [];
        results = [];
        confApplied = [];
        grouped = 0;
        applyMs = 0;
      }
    }
    if (grouped > 0) await this.writeApplied(ops, results, confApplied, applyMs, grouped);
  }

  /**
   * A group of applied entries: answer their proposers, then stage their level ops. The state is
   * written in batches that span many Readies (flushApplied): every member applies every entry,
   * and a level write per Ready cost a thread-pool round trip each time. Nothing is lost by
   * waiting: the entries are in the write-ahead log, and a restart replays those after the applied
   * index level holds. A large backlog is written at once, and waited for, so memory stays bounded.
   */
  private async writeApplied(ops: BatchOp[], results: readonly { id: bigint; data: Uint8Array; result: ApplyResult }[], confApplied: readonly ConfChange[], applyMs: number, entries: number): Promise<void> {
    if (applyMs > SLOW_MS) {
      this.options.metrics?.slowApply.inc();
      this.options.logger.warn('slow apply', { tookMs: Math.round(applyMs), entries });
    }
    for (const { id, data, result } of results) this.resolveWaiter(id, data, result);
    this.releaseAppliedWaiters();
    for (const op of ops) this.stagedOps.push(op);
    this.stagedEntries += entries;
    for (const change of confApplied) this.afterConfChange(change);
    if (this.stagedEntries >= APPLY_BATCH_ENTRIES || this.stagedOps.length >= APPLY_BATCH_OPS) {
      await this.flushApplied();
    } else if (this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        this.flushApplied().catch((error: unknown) => this.failStop(error));
      }, FLUSH_INTERVAL_MS);
    }
  }

  /**
   * Writes the staged ops with the applied index they bring level to, in one batch (synced when
   * asked: a snapshot makes the state durable before the log may drop entries). Flushes run one
   * at a time; each cuts what is staged when it starts. Resolves when everything staged before
   * the call is in level.
   */
  private flushApplied(sync = false): Promise<void> {
    const run = async (): Promise<void> => {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
      const machine = this.options.machine;
      if (this.stagedOps.length === 0 && !sync && machine.durableAppliedIndex >= machine.appliedIndex) return;
      const ops = this.stagedOps;
      this.stagedOps = [];
      this.stagedEntries = 0;
      const mark = machine.durableMark();
      ops.push(metaOps.appliedIndex(mark.index));
      const started = performance.now();
      await this.options.storage.write(ops, sync);
      this.options.metrics?.backendCommit.observe((performance.now() - started) / 1000);
      machine.markDurable(mark);
    };
    const done = this.flushes.then(run);
    this.flushes = done.catch(() => undefined);
    return done;
  }

  /** A failed state write leaves memory and disk disagreeing: the member stops (fail-stop). */
  private failStop(error: unknown): never {
    if (error instanceof ApplyFailure) {
      const cause = error.cause instanceof Error ? error.cause.stack : String(error.cause);
      this.options.logger.error('cannot apply a committed entry; stopping the member', { index: error.index, error: cause });
    } else {
      this.options.logger.error('raft loop failed; stopping the member', { error: error instanceof Error ? error.stack : String(error) });
    }
    process.exit(1);
  }

  private resolveWaiter(id: bigint, data: Uint8Array, result: ApplyResult): void {
    const waiter = this.waiters.get(id);
    // Ids are random per member; the bytes check rules out another member's entry with our id.
    if (waiter === undefined || !bytesEqual(waiter.data, data)) return;
    this.waiters.delete(id);
    clearTimeout(waiter.timer);
    waiter.deferred.resolve(result);
  }

  private failWaiter(id: bigint, error: GavelError): void {
    const waiter = this.waiters.get(id);
    if (waiter === undefined) return;
    this.options.metrics?.proposalsFailed.inc();
    this.waiters.delete(id);
    clearTimeout(waiter.timer);
    waiter.deferred.reject(error);
  }

  private afterConfChange(change: ConfChange): void {
    this.syncPeers();
    const waiter = this.confWaiters.get(confKey(change));
    if (waiter !== undefined) {
      this.confWaiters.delete(confKey(change));
      waiter.resolve();
    }
    this.options.logger.info(change.type === 'removeNode' ? 'member removed' : 'member added', { member: change.nodeId.toString(16), learner: change.type === 'addLearner' });
    if (change.type === 'removeNode' && change.nodeId === this.options.memberId && !this.removed) {
      this.removed = true;
      this.options.logger.warn('this member has been removed from the cluster; stopping');
      void this.stopWhenHandedOver();
    }
  }

  /**
   * A removed leader keeps running until the core has handed leadership over (it sends
   * timeoutNow to a remaining voter): stopping at once could leave the rest without a leader.
   */
  private async stopWhenHandedOver(): Promise<void> {
    const handedOver = (): boolean => this.role !== 'leader' || this.stopped;
    await this.conditions.wait(handedOver, 3 * this.options.electionTimeoutMs, () => new GavelError('LeaderTransferTimeout')).catch(() => undefined);
    this.options.onRemoved?.();
  }

  /** Points the transport at every other member of the registry. */
  syncPeers(): void {
    const membership: Membership = this.options.machine.membership;
    const known = new Set<bigint>();
    for (const member of membership.list()) {
      if (member.id === this.options.memberId) continue;
      known.add(member.id);
      this.options.network.addPeer(member.id, member.peerUrls);
    }
    for (const id of membership.removedIds()) if (!known.has(id)) this.options.network.removePeer(id);
  }

  private onSoftState(soft: SoftState): void {
    const previousLeader = this.leader;
    const wasLeader = this.role === 'leader';
    this.leader = soft.leader;
    this.role = soft.role;
    if (soft.leader !== previousLeader) {
      if (soft.leader !== NONE) this.options.metrics?.leaderChanges.inc();
      this.options.logger.info(soft.leader === NONE ? 'lost leader' : soft.leader === this.options.memberId ? 'became leader' : 'leader changed', {
        leader: soft.leader.toString(16),
        term: this.rawNode.basicStatus().term,
      });
      // Writes and reads in flight under the old leader have an unknown outcome now.
      if (previousLeader !== NONE) {
        for (const id of [...this.waiters.keys()]) this.failWaiter(id, new GavelError('LeaderChanged'));
        for (const read of this.reads.values()) for (const w of read.waiters) w.reject(new GavelError('LeaderChanged'));
        this.reads.clear();
      }
    }
    const isLeader = soft.role === 'leader';
    // The grace covers the election that just happened and the whole-second rounding of checkpoints.
    if (isLeader && !wasLeader) this.options.machine.lessor.promote(Math.max(this.options.electionTimeoutMs, 1000));
    if (!isLeader && wasLeader) this.options.machine.lessor.demote();
    // Lock-delays run on the leader's clock too: a new leader gives each running one its full length.
    if (isLeader && !wasLeader) this.options.machine.coordinator.promote();
    if (!isLeader && wasLeader) this.options.machine.coordinator.demote();
    if (soft.leader !== previousLeader || isLeader !== wasLeader) this.options.onLeaderChange?.(soft.leader, isLeader);
    this.conditions.check();
  }

  // ---- linearizable reads ----

  private issueReads(): void {
    this.readsScheduled = false;
    if (this.pendingReads.length === 0 || this.stopped) return;
    const waiters = this.pendingReads;
    this.pendingReads = [];
    this.requestReadIndex(waiters);
  }

  private requestReadIndex(waiters: Deferred<void>[]): void {
    const context = u64Key(++this.nextReadId);
    const result = this.rawNode.readIndex(context);
    if (!result.ok) {
      for (const w of waiters) w.reject(proposeError(result));
      return;
    }
    this.reads.set(hex(context), { waiters, issuedAtMs: Date.now(), index: undefined });
    this.scheduleReady();
  }

  private releaseReads(): void {
    const applied = this.options.machine.appliedIndex;
    for (const [key, read] of this.reads) {
      if (read.index === undefined || read.index > applied) continue;
      this.reads.delete(key);
      for (const w of read.waiters) w.resolve();
    }
  }

  private retryStaleReads(): void {
    const now = Date.now();
    for (const [key, read] of this.reads) {
      if (read.index !== undefined || now - read.issuedAtMs < READ_RETRY_MS) continue;
      this.reads.delete(key);
      if (this.leader === NONE) continue; // the leader-change path already failed them
      this.requestReadIndex(read.waiters);
    }
  }

  /** Keep-alives and TimeToLive calls waiting for the applied index to reach theirs. */
  private appliedWaiters: { readonly index: number; readonly deadlineMs: number; readonly waiter: Deferred<void> }[] = [];
  private appliedTimeouts: NodeJS.Timeout | undefined;

  /**
   * Resolves once the applied index reaches `index` (at once if it has), or fails with Timeout
   * after the request timeout: a wait registry (etcd's pkg/wait), released by the apply loop as
   * it applies, with one coarse timer for the deadlines while anyone waits.
   */
  private waitApplied(index: number): Promise<void> {
    if (this.options.machine.appliedIndex >= index) return Promise.resolve();
    const waiter = deferred<void>();
    this.appliedWaiters.push({ index, deadlineMs: Date.now() + this.requestTimeoutMs, waiter });
    if (this.appliedTimeouts === undefined) {
      this.appliedTimeouts = setInterval(() => this.releaseAppliedWaiters(), APPLIED_WAIT_CHECK_MS);
      this.appliedTimeouts.unref();
    }
    return waiter.promise;
  }

  private releaseAppliedWaiters(): void {
    if (this.appliedWaiters.length === 0) return;
    const applied = this.options.machine.appliedIndex;
    const now = Date.now();
    const waiting: typeof this.appliedWaiters = [];
    for (const entry of this.appliedWaiters) {
      if (entry.index <= applied) entry.waiter.resolve();
      else if (now > entry.deadlineMs || this.stopped) entry.waiter.reject(new GavelError(this.stopped ? 'Stopped' : 'Timeout'));
      else waiting.push(entry);
    }
    this.appliedWaiters = waiting;
    if (waiting.length === 0 && this.appliedTimeouts !== undefined) {
      clearInterval(this.appliedTimeouts);
      this.appliedTimeouts = undefined;
    }
  }

  // ---- snapshots and log compaction ----

  /** Every --snapshot-count applied entries: make the state durable, then drop old log entries. */
  private async maybeSnapshot(): Promise<void> {
    const applied = this.options.machine.appliedIndex;
    if (applied - this.snapshotIndex < this.options.snapshotCount) return;
    const storage = this.options.raftStorage;
    const confState = this.confState();
    // A synced write makes every earlier state batch durable (level's write-ahead log is ordered).
    const snapshot = storage.createSnapshot(applied, confState, new Uint8Array(0));
    await this.flushApplied(true);
    // Only with the state durable at applied may the log say it begins there.
    await this.options.wal.saveSnapshot({ metadata: snapshot.metadata });
    const keep = Math.min(MAX_CATCH_UP_ENTRIES, this.options.snapshotCount);
    const compactIndex = applied - keep;
    if (compactIndex > storage.firstIndex()) {
      storage.compact(compactIndex);
      await this.options.wal.releaseTo(compactIndex - 1);
    }
    this.snapshotIndex = applied;
    this.options.logger.info('snapshot taken', { index: applied, compactedThrough: compactIndex });
  }

  confState(): ConfState {
    const members = this.options.machine.membership.list();
    return { voters: members.filter((m) => !m.isLearner).map((m) => m.id), learners: members.filter((m) => m.isLearner).map((m) => m.id) };
  }

  /**
   * The core wants a snapshot for a follower: take one of level as it stands, which the caller
   * has just made exactly the applied state (flushApplied). Its metadata is the applied index's.
   */
  private prepareSnapshot(): void {
    const applied = this.options.machine.appliedIndex;
    const metadata = { index: applied, term: this.options.raftStorage.term(applied), confState: this.confState() };
    this.options.raftStorage.prepared(this.options.snapshots.prepare(metadata));
    // The core retries on the follower's next response; a heartbeat brings one soon.
  }

  private refuseWrite(): GavelError | undefined {
    if (this.stopped || this.removed) return new GavelError('Stopped');
    if (this.leader === NONE) return new GavelError('NoLeader');
    return undefined;
  }
}

function proposeError(result: Exclude<ProposeResult, { ok: true }>): GavelError {
  switch (result.reason) {
    case 'noLeader':
      return new GavelError('NoLeader');
    case 'transferring':
      return new GavelError('LeaderTransferTimeout');
    case 'tooLarge':
      return new GavelError('TooManyRequests');
    case 'confChangePending':
      return new GavelError('TooManyRequests', 'etcdserver: a membership change is already in progress');
    case 'notVoter':
      return new GavelError('NotLeader');
  }
}

function confKey(change: ConfChange): string {
  return `${change.type}:${change.nodeId}`;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

function cryptoRandom(): number {
  return randomBytes(6).readUIntBE(0, 6) / 2 ** 48;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves after ms; rejects with the signal's reason if it aborts first. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
