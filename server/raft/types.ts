/**
 * Public types of the Raft core. The core is a pure, synchronous state machine: it never
 * performs I/O, never reads a clock and never draws its own random numbers. See raw-node.ts
 * for the Ready/advance protocol and the persistence contract.
 */

/** A member id. `0n` (NONE) means "no member" (no leader, no vote). */
export type NodeId = bigint;
export const NONE: NodeId = 0n;

export type EntryType = 'normal' | 'confChange';

export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  /** For 'confChange' entries: encodeConfChange() bytes. Empty for the leader's no-op entry. */
  readonly data: Uint8Array;
}

export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

export interface SnapshotMetadata {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: Uint8Array;
}

export type ConfChangeType = 'addNode' | 'addLearner' | 'removeNode';

export interface ConfChange {
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
  readonly context: Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// Messages. Every message carries from, to and term. 'prop' and 'readIndex' carry term 0: like
// etcd they are requests forwarded to whoever is leader and are not subject to term checks.

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/** A follower forwarding client proposals to the leader. Entries carry term 0 and index 0. */
export interface PropMessage extends MessageBase {
  readonly type: 'prop';
  readonly entries: readonly Entry[];
}

/** AppendEntries: `entries` follow the entry at (index, logTerm). */
export interface AppMessage extends MessageBase {
  readonly type: 'app';
  readonly logTerm: number;
  readonly index: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
}

/**
 * Answer to 'app' or 'snap'. On success `index` is the last index now known to match. On reject
 * `index` echoes the rejected 'app' index, and (rejectHint, logTerm) name the follower's last
 * entry at or below that index whose term is <= the leader's logTerm (fast back-off, as etcd).
 */
export interface AppRespMessage extends MessageBase {
  readonly type: 'appResp';
  readonly index: number;
  readonly reject: boolean;
  readonly rejectHint: number;
  readonly logTerm: number;
}

interface VoteFields extends MessageBase {
  /** Term and index of the candidate's last log entry. */
  readonly logTerm: number;
  readonly index: number;
  /** True when the campaign was triggered by a leader transfer: it overrides the leader lease. */
  readonly transfer: boolean;
}

export interface VoteMessage extends VoteFields {
  readonly type: 'vote';
}

/** A PreVote carries the term the sender WOULD campaign in; the sender has not bumped its term. */
export interface PreVoteMessage extends VoteFields {
  readonly type: 'preVote';
}

export interface VoteRespMessage extends MessageBase {
  readonly type: 'voteResp';
  readonly reject: boolean;
}

export interface PreVoteRespMessage extends MessageBase {
  readonly type: 'preVoteResp';
  readonly reject: boolean;
}

/** `context` is non-empty when the heartbeat confirms leadership for a ReadIndex request. */
export interface HeartbeatMessage extends MessageBase {
  readonly type: 'heartbeat';
  readonly commit: number;
  readonly context: Uint8Array;
}

export interface HeartbeatRespMessage extends MessageBase {
  readonly type: 'heartbeatResp';
  readonly context: Uint8Array;
}

/** InstallSnapshot, sent when the follower needs entries the leader has compacted. */
export interface SnapMessage extends MessageBase {
  readonly type: 'snap';
  readonly snapshot: Snapshot;
}

/** Sent by a leader to a caught-up transfer target: campaign now, ignoring the lease. */
export interface TimeoutNowMessage extends MessageBase {
  readonly type: 'timeoutNow';
}

/** A follower forwarding a leader-transfer request to the leader. */
export interface TransferLeaderMessage extends MessageBase {
  readonly type: 'transferLeader';
  readonly transferee: NodeId;
}

/** A follower forwarding a ReadIndex request to the leader (term 0, like 'prop'). */
export interface ReadIndexMessage extends MessageBase {
  readonly type: 'readIndex';
  readonly context: Uint8Array;
}

export interface ReadIndexRespMessage extends MessageBase {
  readonly type: 'readIndexResp';
  readonly index: number;
  readonly context: Uint8Array;
}

/**
 * Every message that travels between members. Local events (snapshot status, unreachable peers)
 * are not messages here: they enter through RawNode.reportSnapshot/reportUnreachable.
 */
export type Message =
  | PropMessage
  | AppMessage
  | AppRespMessage
  | VoteMessage
  | PreVoteMessage
  | VoteRespMessage
  | PreVoteRespMessage
  | HeartbeatMessage
  | HeartbeatRespMessage
  | SnapMessage
  | TimeoutNowMessage
  | TransferLeaderMessage
  | ReadIndexMessage
  | ReadIndexRespMessage;

export type MessageType = Message['type'];

/** All wire message types; step() asserts that what it gets is one of these. */
export const MESSAGE_TYPES: readonly MessageType[] = [
  'prop', 'app', 'appResp', 'vote', 'preVote', 'voteResp', 'preVoteResp', 'heartbeat',
  'heartbeatResp', 'snap', 'timeoutNow', 'transferLeader', 'readIndex', 'readIndexResp',
];

// ---------------------------------------------------------------------------------------------

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

export interface SoftState {
  readonly leader: NodeId;
  readonly role: Role;
}

/** The answer to readIndex(context): serve the read once the state machine applied `index`. */
export interface ReadState {
  readonly index: number;
  readonly context: Uint8Array;
}

export interface Ready {
  /** Present when changed since the last Ready. Not persisted. */
  readonly softState?: SoftState;
  /** Present when changed; persist (with entries) BEFORE messagesAfterPersist leave. */
  readonly hardState?: HardState;
  /**
   * To append to stable storage. They may replace a conflicting suffix: the shell must drop
   * every stored entry at or after entries[0].index before writing them (MemoryStorage.append
   * does so).
   */
  readonly entries: readonly Entry[];
  /** To persist and apply to the state machine (before committedEntries). */
  readonly snapshot?: Snapshot;
  /** To apply in order. They are durable already (possibly only in this very Ready's entries). */
  readonly committedEntries: readonly Entry[];
  /** May be sent at once, in parallel with persisting. */
  readonly messages: readonly Message[];
  /** May leave only once hardState/entries/snapshot of this Ready are durable. */
  readonly messagesAfterPersist: readonly Message[];
  readonly readStates: readonly ReadState[];
  /** True when hardState term/vote, entries or a snapshot must reach disk with fsync. */
  readonly mustSync: boolean;
}

export type ProposeFailure = 'noLeader' | 'transferring' | 'tooLarge' | 'confChangePending' | 'notVoter';
export type ProposeResult = { ok: true } | { ok: false; reason: ProposeFailure };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

/**
 * The stable log as the core sees it. The shell mutates it (MemoryStorage.append/...) only
 * AFTER the data is durable, so everything readable here survives a crash.
 * Reads throw StorageError with code 'compacted' (index below firstIndex-1) or 'unavailable'
 * (index above lastIndex); snapshot() may throw 'snapshotTemporarilyUnavailable'.
 */
export interface Storage {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi), at least one if lo < hi, then as many as fit in maxBytes. */
  entries(lo: number, hi: number, maxBytes: number): readonly Entry[];
  /** Term of entry i; valid for firstIndex()-1 (the snapshot's index) .. lastIndex(). */
  term(index: number): number;
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): Snapshot;
}

/**
 * Deliberate bugs, for tests ONLY: the simulator switches one on to prove that its checkers
 * catch it. Production configs must leave this undefined (every fault defaults to false).
 */
export interface RaftFaults {
  /** The leader commits by counting replicas of any entry, not only of its own term (Figure 8). */
  readonly commitOldTermEntries?: boolean;
  /** A granted vote is not reported as a hardState change, so it is never persisted. */
  readonly forgetVote?: boolean;
  /** A voter grants its vote without checking that the candidate's log is up to date. */
  readonly grantVoteToShorterLog?: boolean;
  /** The leader answers ReadIndex at once, without confirming leadership by a heartbeat round. */
  readonly readIndexWithoutHeartbeat?: boolean;
}

export interface RaftConfig {
  readonly id: NodeId;
  /** The election timeout is randomized in [electionTicks, 2*electionTicks). */
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly storage: Storage;
  /** Seeded PRNG returning a float in [0, 1). */
  readonly random: () => number;
  /** Last applied index on restart; committed entries above it are handed out again. */
  readonly applied?: number;
  /** Default true. */
  readonly preVote?: boolean;
  /** Default true. */
  readonly checkQuorum?: boolean;
  /** Bytes of entries per 'app'; default 1 MiB. */
  readonly maxSizePerMsg?: number;
  /** Unacknowledged 'app' messages per follower in replicate state; default 256. */
  readonly maxInflightMsgs?: number;
  /** Cap on bytes of proposed but uncommitted entries (leader only); reports tooLarge. 0 = none. */
  readonly maxUncommittedEntriesSize?: number;
  readonly logger?: Logger;
  /** Tests only, see RaftFaults. */
  readonly faults?: RaftFaults;
}

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly isLearner: boolean;
  readonly recentActive: boolean;
}

/** etcd's BasicStatus: what costs nothing to read (no copies of the membership or progress). */
export interface BasicStatus {
  readonly id: NodeId;
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
  readonly applied: number;
  readonly lead: NodeId;
  readonly role: Role;
}

export interface Status extends BasicStatus {
  /** Present on the leader only. */
  readonly progress?: Map<NodeId, ProgressStatus>;
  readonly leadTransferee: NodeId;
  readonly confState: ConfState;
}
