/**
 * Raft Message <-> gavel.raft.v1.RaftMessage wire objects (proto-loader form: keepCase field
 * names, uint64 as decimal strings, bytes as Buffers, enums as numbers).
 *
 * Encoding a malformed Message is a programmer error (assert); decoding a malformed wire
 * message is an operating error (GavelError InvalidArgument), because it came from a peer.
 */
import { GavelError, assert, assertNever } from '../errors.js';
import type { ConfState, Entry, EntryType, Message, MessageType, NodeId, Snapshot, SnapshotMetadata } from '../raft/types.js';

export type Uint64 = string;

export interface WireEntry {
  term: Uint64;
  index: Uint64;
  type: number;
  data: Uint8Array;
}

export interface WireConfState {
  voters: Uint64[];
  learners: Uint64[];
}

export interface WireSnapshotMetadata {
  index: Uint64;
  term: Uint64;
  conf_state: WireConfState | null;
}

export interface WireSnapshot {
  metadata: WireSnapshotMetadata | null;
  data: Uint8Array;
}

export interface WireRaftMessage {
  type: number;
  from: Uint64;
  to: Uint64;
  term: Uint64;
  log_term: Uint64;
  index: Uint64;
  entries: WireEntry[];
  commit: Uint64;
  reject: boolean;
  reject_hint: Uint64;
  context: Uint8Array;
  transfer: boolean;
  transferee: Uint64;
  snapshot: WireSnapshot | null;
}

/** gavel.raft.v1.MessageType numbers; a unit test checks them against raft.proto. */
export const WIRE_MESSAGE_TYPE: Readonly<Record<MessageType, number>> = {
  prop: 1,
  app: 2,
  appResp: 3,
  vote: 4,
  preVote: 5,
  voteResp: 6,
  preVoteResp: 7,
  heartbeat: 8,
  heartbeatResp: 9,
  snap: 10,
  timeoutNow: 11,
  transferLeader: 12,
  readIndex: 13,
  readIndexResp: 14,
};

const MESSAGE_TYPE_BY_NUMBER = new Map<number, MessageType>(
  Object.entries(WIRE_MESSAGE_TYPE).map(([name, number]) => [number, name as MessageType]),
);

/** gavel.raft.v1.EntryType numbers. */
export const WIRE_ENTRY_TYPE: Readonly<Record<EntryType, number>> = { normal: 0, confChange: 1 };

const UINT64_MAX = (1n << 64n) - 1n;
const EMPTY = new Uint8Array(0);

// ---------------------------------------------------------------------------------------------
// Encoding

export function encodeMessage(m: Message): WireRaftMessage {
  const w = wireHeader(m);
  switch (m.type) {
    case 'prop':
      return { ...w, entries: m.entries.map(encodeEntry) };
    case 'app':
      return { ...w, log_term: num(m.logTerm), index: num(m.index), entries: m.entries.map(encodeEntry), commit: num(m.commit) };
    case 'appResp':
      return { ...w, index: num(m.index), reject: m.reject, reject_hint: num(m.rejectHint), log_term: num(m.logTerm) };
    case 'vote':
    case 'preVote':
      return { ...w, log_term: num(m.logTerm), index: num(m.index), transfer: m.transfer };
    case 'voteResp':
    case 'preVoteResp':
      return { ...w, reject: m.reject };
    case 'heartbeat':
      return { ...w, commit: num(m.commit), context: m.context };
    case 'heartbeatResp':
    case 'readIndex':
      return { ...w, context: m.context };
    case 'snap':
      return { ...w, snapshot: encodeSnapshot(m.snapshot) };
    case 'timeoutNow':
      return w;
    case 'transferLeader':
      return { ...w, transferee: id(m.transferee) };
    case 'readIndexResp':
      return { ...w, index: num(m.index), context: m.context };
    default:
      return assertNever(m);
  }
}

/** Every field at its proto3 default, so encode and decode see the same object shape. */
function wireHeader(m: Message): WireRaftMessage {
  return {
    type: WIRE_MESSAGE_TYPE[m.type],
    from: id(m.from),
    to: id(m.to),
    term: num(m.term),
    log_term: '0',
    index: '0',
    entries: [],
    commit: '0',
    reject: false,
    reject_hint: '0',
    context: EMPTY,
    transfer: false,
    transferee: '0',
    snapshot: null,
  };
}

function encodeEntry(e: Entry): WireEntry {
  return { term: num(e.term), index: num(e.index), type: WIRE_ENTRY_TYPE[e.type], data: e.data };
}

function encodeSnapshot(s: Snapshot): WireSnapshot {
  const { index, term, confState } = s.metadata;
  return {
    metadata: { index: num(index), term: num(term), conf_state: { voters: confState.voters.map(id), learners: confState.learners.map(id) } },
    data: s.data,
  };
}

function id(value: NodeId): Uint64 {
  assert(value >= 0n && value <= UINT64_MAX, `member id ${value} out of uint64 range`);
  return value.toString();
}

function num(value: number): Uint64 {
  assert(Number.isSafeInteger(value) && value >= 0, `raft number ${value} is not a non-negative safe integer`);
  return String(value);
}

// ---------------------------------------------------------------------------------------------
// Decoding

export function decodeMessage(w: WireRaftMessage): Message {
  const type = MESSAGE_TYPE_BY_NUMBER.get(w.type);
  if (type === undefined) throw bad(`unknown message type ${w.type}`);
  const base = { from: decodeId(w.from), to: decodeId(w.to), term: decodeNum(w.term, 'term') };
  switch (type) {
    case 'prop':
      return { ...base, type, entries: decodeEntries(w.entries) };
    case 'app':
      return { ...base, type, logTerm: decodeNum(w.log_term, 'log_term'), index: decodeNum(w.index, 'index'), entries: decodeEntries(w.entries), commit: decodeNum(w.commit, 'commit') };
    case 'appResp':
      return { ...base, type, index: decodeNum(w.index, 'index'), reject: w.reject, rejectHint: decodeNum(w.reject_hint, 'reject_hint'), logTerm: decodeNum(w.log_term, 'log_term') };
    case 'vote':
    case 'preVote':
      return { ...base, type, logTerm: decodeNum(w.log_term, 'log_term'), index: decodeNum(w.index, 'index'), transfer: w.transfer };
    case 'voteResp':
    case 'preVoteResp':
      return { ...base, type, reject: w.reject };
    case 'heartbeat':
      return { ...base, type, commit: decodeNum(w.commit, 'commit'), context: copy(w.context) };
    case 'heartbeatResp':
    case 'readIndex':
      return { ...base, type, context: copy(w.context) };
    case 'snap':
      if (w.snapshot === null) throw bad('snap message without a snapshot');
      return { ...base, type, snapshot: decodeSnapshot(w.snapshot) };
    case 'timeoutNow':
      return { ...base, type };
    case 'transferLeader':
      return { ...base, type, transferee: decodeId(w.transferee) };
    case 'readIndexResp':
      return { ...base, type, index: decodeNum(w.index, 'index'), context: copy(w.context) };
    default:
      return assertNever(type);
  }
}

function decodeEntries(entries: readonly WireEntry[]): Entry[] {
  return entries.map((e) => {
    const type = e.type === WIRE_ENTRY_TYPE.normal ? 'normal' : e.type === WIRE_ENTRY_TYPE.confChange ? 'confChange' : undefined;
    if (type === undefined) throw bad(`unknown entry type ${e.type}`);
    return { term: decodeNum(e.term, 'entry term'), index: decodeNum(e.index, 'entry index'), type, data: copy(e.data) };
  });
}

/** Used by the snapshot receiver too, which attaches the reassembled data itself. */
export function decodeSnapshot(s: WireSnapshot): Snapshot {
  if (s.metadata === null) throw bad('snapshot without metadata');
  return { metadata: decodeSnapshotMetadata(s.metadata), data: copy(s.data) };
}

function decodeSnapshotMetadata(m: WireSnapshotMetadata): SnapshotMetadata {
  const confState: ConfState = { voters: (m.conf_state?.voters ?? []).map(decodeId), learners: (m.conf_state?.learners ?? []).map(decodeId) };
  return { index: decodeNum(m.index, 'snapshot index'), term: decodeNum(m.term, 'snapshot term'), confState };
}

function decodeId(value: Uint64): NodeId {
  if (!/^\d{1,20}$/.test(value)) throw bad(`bad member id ${JSON.stringify(value)}`);
  const parsed = BigInt(value);
  if (parsed > UINT64_MAX) throw bad(`member id ${value} out of range`);
  return parsed;
}

export function decodeNum(value: Uint64, field: string): number {
  const parsed = Number(value);
  if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(parsed)) throw bad(`${field} ${JSON.stringify(value)} is not a safe integer`);
  return parsed;
}

/**
 * Decoded bytes are views into the whole received batch; copying lets that buffer go once the
 * batch is delivered, instead of living as long as any one entry stays in the Raft log.
 */
function copy(bytes: Uint8Array | null | undefined): Uint8Array {
  return bytes === null || bytes === undefined || bytes.length === 0 ? EMPTY : new Uint8Array(bytes);
}

function bad(reason: string): GavelError {
  return new GavelError('InvalidArgument', `gavel: bad raft message: ${reason}`);
}

// ---------------------------------------------------------------------------------------------

/** Per-message and per-entry framing overhead, an upper bound on the proto varints and tags. */
const MESSAGE_OVERHEAD_BYTES = 96;
const ENTRY_OVERHEAD_BYTES = 32;

/** An upper-bound estimate of a message's encoded size, for batch and queue limits. */
export function messageBytes(m: Message): number {
  let bytes = MESSAGE_OVERHEAD_BYTES;
  if ('entries' in m) for (const e of m.entries) bytes += ENTRY_OVERHEAD_BYTES + e.data.length;
  if ('context' in m) bytes += m.context.length;
  if (m.type === 'snap') bytes += m.snapshot.data.length + 16 * (m.snapshot.metadata.confState.voters.length + m.snapshot.metadata.confState.learners.length);
  return bytes;
}
