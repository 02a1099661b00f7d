/**
 * Where Raft's durable state USED to live, in level: log entries ('log', key = index), the hard
 * state and the metadata of the newest snapshot ('raft'). The Raft log is now the write-ahead log
 * (wal.ts); this reader remains to migrate a data dir written by an earlier gavel
 * (raft-wal.ts openRaftLog), and the encoders for the tests that build such a data dir.
 */
import type { ConfState, Entry, EntryType, HardState, SnapshotMetadata } from '../raft/index.js';
import { assert } from '../errors.js';
import { metaKey, u64Key, type BatchOp, type Storage } from './layout.js';

const HARD_STATE_KEY = metaKey('hard-state');
const SNAPSHOT_KEY = metaKey('snapshot');
/** The 'raft' space's keys, removed once migrated. */
export const RAFT_STATE_KEYS: readonly Uint8Array[] = [HARD_STATE_KEY, SNAPSHOT_KEY];
const ENTRY_HEADER_BYTES = 9;

export function encodeEntry(entry: Entry): Uint8Array {
  const bytes = new Uint8Array(ENTRY_HEADER_BYTES + entry.data.byteLength);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, entry.type === 'normal' ? 0 : 1);
  view.setBigUint64(1, BigInt(entry.term));
  bytes.set(entry.data, ENTRY_HEADER_BYTES);
  return bytes;
}

export function decodeEntry(index: number, bytes: Uint8Array): Entry {
  assert(bytes.byteLength >= ENTRY_HEADER_BYTES, `log entry ${index} is truncated`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const code = view.getUint8(0);
  assert(code === 0 || code === 1, `log entry ${index} has unknown type ${code}`);
  const type: EntryType = code === 0 ? 'normal' : 'confChange';
  return { index, term: Number(view.getBigUint64(1)), type, data: bytes.slice(ENTRY_HEADER_BYTES) };
}

export function encodeHardState(hs: HardState): Uint8Array {
  const bytes = new Uint8Array(24);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, BigInt(hs.term));
  view.setBigUint64(8, hs.vote);
  view.setBigUint64(16, BigInt(hs.commit));
  return bytes;
}

export function decodeHardState(bytes: Uint8Array): HardState {
  assert(bytes.byteLength === 24, 'hard state record has the wrong size');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { term: Number(view.getBigUint64(0)), vote: view.getBigUint64(8), commit: Number(view.getBigUint64(16)) };
}

export function encodeSnapshotMetadata(meta: SnapshotMetadata): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      index: meta.index,
      term: meta.term,
      voters: meta.confState.voters.map(String),
      learners: meta.confState.learners.map(String),
    }),
  );
}

export function decodeSnapshotMetadata(bytes: Uint8Array): SnapshotMetadata {
  const raw = JSON.parse(new TextDecoder().decode(bytes)) as { index: number; term: number; voters: string[]; learners: string[] };
  const confState: ConfState = { voters: raw.voters.map(BigInt), learners: raw.learners.map(BigInt) };
  return { index: raw.index, term: raw.term, confState };
}

export const raftOps = {
  entries(entries: readonly Entry[]): BatchOp[] {
    return entries.map((entry) => ({ type: 'put', space: 'log', key: u64Key(entry.index), value: encodeEntry(entry) }));
  },
  hardState(hs: HardState): BatchOp {
    return { type: 'put', space: 'raft', key: HARD_STATE_KEY, value: encodeHardState(hs) };
  },
  snapshot(meta: SnapshotMetadata): BatchOp {
    return { type: 'put', space: 'raft', key: SNAPSHOT_KEY, value: encodeSnapshotMetadata(meta) };
  },
};

export interface PersistedRaftState {
  readonly hardState: HardState | undefined;
  readonly snapshot: SnapshotMetadata | undefined;
  /** Entries after the snapshot, in index order. */
  readonly entries: Entry[];
}

export async function loadRaftState(storage: Storage): Promise<PersistedRaftState> {
  const hsBytes = await storage.get('raft', HARD_STATE_KEY);
  const snapBytes = await storage.get('raft', SNAPSHOT_KEY);
  const snapshot = snapBytes ? decodeSnapshotMetadata(snapBytes) : undefined;
  const entries: Entry[] = [];
  const from = snapshot ? snapshot.index + 1 : 0;
  for await (const [key, value] of storage.space('log').iterator({ gte: u64Key(from) })) {
    const index = Number(new DataView(key.buffer, key.byteOffset, 8).getBigUint64(0));
    const entry = decodeEntry(index, value);
    const previous = entries[entries.length - 1];
    // A gap means a torn write or a bug; refuse to start rather than serve a broken log.
    assert(previous === undefined || previous.index + 1 === index, `raft log gap after ${previous?.index}`);
    entries.push(entry);
  }
  return { hardState: hsBytes ? decodeHardState(hsBytes) : undefined, snapshot, entries };
}

/** Deletes stored entries at or after `index` (a new leader's entries replace a conflicting suffix). */
export async function truncateLogFrom(storage: Storage, index: number): Promise<void> {
  await storage.space('log').clear({ gte: u64Key(index) });
}

/** Deletes stored entries at or below `index` (already covered by the state spaces). */
export async function compactLogThrough(storage: Storage, index: number): Promise<void> {
  await storage.space('log').clear({ lte: u64Key(index) });
}
