/**
 * Storage: the stable log the core reads from. MemoryStorage mirrors etcd's MemoryStorage:
 * the shell calls its mutators only AFTER the same data is durable on disk, so what the core
 * reads here is what survives a crash.
 */
import type { ConfState, Entry, HardState, Snapshot, Storage } from './types.js';
import { NONE } from './types.js';
import { assert, limitSize } from './util.js';

export type StorageErrorCode =
  | 'compacted' // the requested index is below the first available entry
  | 'unavailable' // the requested index is above the last entry
  | 'snapshotOutOfDate' // applySnapshot/createSnapshot with an index not above the current one
  | 'snapshotTemporarilyUnavailable'; // a custom Storage may not have a snapshot ready yet

/** An operating error of a Storage, with a stable code. */
export class StorageError extends Error {
  constructor(readonly code: StorageErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? `raft storage: ${code}`, options);
    this.name = 'StorageError';
  }
}

export function isStorageError(err: unknown, code?: StorageErrorCode): err is StorageError {
  return err instanceof StorageError && (code === undefined || err.code === code);
}

export const EMPTY_CONF_STATE: ConfState = { voters: [], learners: [] };
export const EMPTY_HARD_STATE: HardState = { term: 0, vote: NONE, commit: 0 };

export class MemoryStorage implements Storage {
  private hardState: HardState = EMPTY_HARD_STATE;
  private snap: Snapshot = {
    metadata: { index: 0, term: 0, confState: EMPTY_CONF_STATE },
    data: new Uint8Array(0),
  };
  /** entries[0] is a dummy standing for the snapshot's (index, term); real entries follow. */
  private ents: Entry[] = [{ term: 0, index: 0, type: 'normal', data: new Uint8Array(0) }];

  /** Set by setConfState() on restart when applied > snapshot index; else the snapshot's. */
  private confStateOverride: ConfState | undefined = undefined;

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.confStateOverride ?? this.snap.metadata.confState };
  }

  /** On restart only: the membership as of the applied index, if newer than the snapshot's. */
  setConfState(confState: ConfState): void {
    this.confStateOverride = confState;
  }

  setHardState(hardState: HardState): void {
    this.hardState = hardState;
  }

  private offset(): number {
    return this.ents[0]!.index;
  }

  firstIndex(): number {
    return this.offset() + 1;
  }

  lastIndex(): number {
    return this.offset() + this.ents.length - 1;
  }

  term(index: number): number {
    const offset = this.offset();
    if (index < offset) throw new StorageError('compacted');
    const entry = this.ents[index - offset];
    if (entry === undefined) throw new StorageError('unavailable');
    return entry.term;
  }

  entries(lo: number, hi: number, maxBytes: number): readonly Entry[] {
    const offset = this.offset();
    if (lo <= offset) throw new StorageError('compacted');
    assert(hi <= this.lastIndex() + 1, `entries hi ${hi} beyond lastIndex ${this.lastIndex()}`);
    assert(lo <= hi, `entries lo ${lo} > hi ${hi}`);
    if (this.ents.length === 1) throw new StorageError('unavailable');
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxBytes);
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces the whole log by a (durable) snapshot received from the leader. */
  applySnapshot(snapshot: Snapshot): void {
    if (snapshot.metadata.index <= this.snap.metadata.index) throw new StorageError('snapshotOutOfDate');
    this.snap = snapshot;
    this.confStateOverride = undefined;
    this.ents = [{ term: snapshot.metadata.term, index: snapshot.metadata.index, type: 'normal', data: new Uint8Array(0) }];
  }

  /** Records a snapshot of the applied state at `index`; follow with compact() to free entries. */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) throw new StorageError('snapshotOutOfDate');
    assert(index <= this.lastIndex(), `createSnapshot ${index} beyond lastIndex ${this.lastIndex()}`);
    this.snap = { metadata: { index, term: this.term(index), confState }, data };
    return this.snap;
  }

  /** Discards entries up to and including compactIndex; that entry becomes the dummy. */
  compact(compactIndex: number): void {
    const offset = this.offset();
    if (compactIndex <= offset) throw new StorageError('compacted');
    assert(compactIndex <= this.lastIndex(), `compact ${compactIndex} beyond lastIndex ${this.lastIndex()}`);
    const kept = this.ents.slice(compactIndex - offset);
    const head = kept[0]!;
    kept[0] = { term: head.term, index: head.index, type: 'normal', data: new Uint8Array(0) };
    this.ents = kept;
  }

  /** Appends durable entries, replacing any conflicting suffix. Must be contiguous. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const lastNew = entries[entries.length - 1]!.index;
    if (lastNew < first) return; // all already compacted
    const usable = entries[0]!.index < first ? entries.slice(first - entries[0]!.index) : entries;
    const start = usable[0]!.index;
    assert(start <= this.lastIndex() + 1, `append gap: last ${this.lastIndex()}, got ${start}`);
    checkContiguous(usable);
    this.ents = this.ents.slice(0, start - this.offset()).concat(usable);
  }
}

function checkContiguous(entries: readonly Entry[]): void {
  for (let i = 1; i < entries.length; i++) {
    assert(entries[i]!.index === entries[i - 1]!.index + 1, 'entries not contiguous');
    assert(entries[i]!.term >= entries[i - 1]!.term, 'entry terms decrease');
  }
}
