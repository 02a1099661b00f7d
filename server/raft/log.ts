/**
 * RaftLog: the log as the core sees it = stable entries (Storage) + an unstable tail that the
 * shell has not yet made durable (like etcd's raftLog + unstable). Entries handed out in a Ready
 * are "in progress"; advance() marks them stable once the shell has appended them to Storage.
 */
import { isStorageError } from './storage.js';
import type { Entry, Snapshot, Storage } from './types.js';
import { assert, limitSize } from './util.js';

/** Entries (and possibly a snapshot) not yet durable. */
class Unstable {
  snapshot: Snapshot | undefined = undefined;
  entries: Entry[] = [];
  /** Index of entries[0]. */
  offset: number;
  snapshotInProgress = false;
  /** Entries from this index on have not been handed out in a Ready yet. */
  offsetInProgress: number;

  constructor(offset: number) {
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  maybeFirstIndex(): number | undefined {
    return this.snapshot === undefined ? undefined : this.snapshot.metadata.index + 1;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot?.metadata.index;
  }

  maybeTerm(index: number): number | undefined {
    if (index < this.offset) {
      const meta = this.snapshot?.metadata;
      return meta !== undefined && meta.index === index ? meta.term : undefined;
    }
    return this.entries[index - this.offset]?.term;
  }

  nextEntries(): readonly Entry[] {
    const start = this.offsetInProgress - this.offset;
    return start >= this.entries.length ? [] : this.entries.slice(start);
  }

  nextSnapshot(): Snapshot | undefined {
    return this.snapshotInProgress ? undefined : this.snapshot;
  }

  acceptInProgress(): void {
    this.offsetInProgress = this.offset + this.entries.length;
    this.snapshotInProgress = this.snapshot !== undefined;
  }

  /** Entries up to (index, term) are durable; drop them unless they were replaced meanwhile. */
  stableTo(index: number, term: number): void {
    if (index < this.offset || this.maybeTerm(index) !== term) return;
    this.entries = this.entries.slice(index + 1 - this.offset);
    this.offset = index + 1;
    this.offsetInProgress = Math.max(this.offsetInProgress, this.offset);
  }

  stableSnapTo(index: number): void {
    if (this.snapshot?.metadata.index !== index) return;
    this.snapshot = undefined;
    this.snapshotInProgress = false;
  }

  restore(snapshot: Snapshot): void {
    this.offset = snapshot.metadata.index + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = snapshot;
    this.snapshotInProgress = false;
  }

  truncateAndAppend(entries: readonly Entry[]): void {
    const fromIndex = entries[0]!.index;
    const end = this.offset + this.entries.length;
    if (fromIndex === end) {
      // A loop, not push(...entries): a spread passes every entry as an argument, and a large
      // append (a burst of proposals) would overflow the stack.
      for (const entry of entries) this.entries.push(entry);
    } else if (fromIndex <= this.offset) {
      // Replaces everything unstable (and, once written, a suffix of the stable log).
      this.entries = [...entries];
      this.offset = fromIndex;
    } else {
      this.entries = this.entries.slice(0, fromIndex - this.offset).concat(entries);
    }
    // Anything at or after fromIndex must be (re)written by the shell.
    this.offsetInProgress = Math.min(this.offsetInProgress, fromIndex);
  }

  slice(lo: number, hi: number): Entry[] {
    assert(lo >= this.offset && hi <= this.offset + this.entries.length, `unstable slice [${lo},${hi}) out of bounds`);
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}

export class RaftLog {
  readonly unstable: Unstable;
  committed: number;
  /** Highest index handed out for applying (in a Ready not yet advanced, or earlier). */
  applying: number;
  /** Highest index the shell has applied (acknowledged by advance). */
  applied: number;

  constructor(readonly storage: Storage, private readonly maxApplyingBytes: number) {
    const firstIndex = storage.firstIndex();
    this.unstable = new Unstable(storage.lastIndex() + 1);
    this.committed = firstIndex - 1;
    this.applying = firstIndex - 1;
    this.applied = firstIndex - 1;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): number {
    const term = this.term(this.lastIndex());
    assert(term !== undefined, 'term of lastIndex unavailable');
    return term;
  }

  /** Term of entry `index`, or undefined if compacted or beyond the log. */
  term(index: number): number | undefined {
    const fromUnstable = this.unstable.maybeTerm(index);
    if (fromUnstable !== undefined) return fromUnstable;
    if (index < this.firstIndex() - 1 || index > this.lastIndex()) return undefined;
    if (index >= this.unstable.offset) return undefined;
    try {
      return this.storage.term(index);
    } catch (err) {
      if (isStorageError(err, 'compacted') || isStorageError(err, 'unavailable')) return undefined;
      throw err;
    }
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** The Raft paper's "at least as up-to-date" rule (§5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Follower side of AppendEntries: if (index, logTerm) matches, append the new part of
   * `entries` (truncating a conflicting suffix) and commit up to min(commit, last new index).
   * Returns the last index known to match the leader, or undefined on mismatch.
   */
  maybeAppend(index: number, logTerm: number, commit: number, entries: readonly Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNewIndex = index + entries.length;
    const conflictIndex = this.findConflict(entries);
    if (conflictIndex !== 0) {
      assert(conflictIndex > this.committed, `conflict at ${conflictIndex} <= committed ${this.committed}`);
      this.append(entries.slice(conflictIndex - (index + 1)));
    }
    this.commitTo(Math.min(commit, lastNewIndex));
    return lastNewIndex;
  }

  append(entries: readonly Entry[]): number {
    if (entries.length === 0) return this.lastIndex();
    const after = entries[0]!.index - 1;
    assert(after >= this.committed, `append after ${after} would overwrite committed ${this.committed}`);
    this.unstable.truncateAndAppend(entries);
    return this.lastIndex();
  }

  /** First index whose term differs from ours (or is new), or 0 if all entries already match. */
  private findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * The last entry at or below `index` whose term is <= `term` (etcd's fast back-off): every
   * entry after it in our log has a larger term, so it cannot match the other log there.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (let i = index; i > 0; i--) {
      const ourTerm = this.term(i);
      if (ourTerm === undefined) return { index: i, term: 0 };
      if (ourTerm <= term) return { index: i, term: ourTerm };
    }
    return { index: 0, term: 0 };
  }

  commitTo(commit: number): void {
    if (commit <= this.committed) return;
    assert(commit <= this.lastIndex(), `commit ${commit} beyond lastIndex ${this.lastIndex()}`);
    this.committed = commit;
  }

  /**
   * Leader commit rule: commit `index` only if it holds an entry of `term` (the leader's
   * current term), unless the test-only fault allows counting older-term entries (Figure 8).
   */
  maybeCommit(index: number, term: number, allowOldTerm: boolean): boolean {
    if (index <= this.committed) return false;
    if (!allowOldTerm && this.term(index) !== term) return false;
    this.commitTo(index);
    return true;
  }

  /** Entries [lo, lastIndex], at most maxBytes (at least one); undefined if lo is compacted. */
  entriesFrom(lo: number, maxBytes: number): readonly Entry[] | undefined {
    if (lo > this.lastIndex()) return [];
    return this.slice(lo, this.lastIndex() + 1, maxBytes);
  }

  /** Entries [lo, hi) limited to maxBytes; undefined if lo is compacted. */
  slice(lo: number, hi: number, maxBytes: number): readonly Entry[] | undefined {
    assert(lo <= hi && hi <= this.lastIndex() + 1, `slice [${lo},${hi}) beyond lastIndex ${this.lastIndex()}`);
    if (lo < this.firstIndex()) return undefined;
    if (lo === hi) return [];
    let result: Entry[] = [];
    const offset = this.unstable.offset;
    if (lo < offset) {
      let stored: readonly Entry[];
      try {
        stored = this.storage.entries(lo, Math.min(hi, offset), maxBytes);
      } catch (err) {
        if (isStorageError(err, 'compacted')) return undefined;
        throw err;
      }
      // Stopped early because of maxBytes: do not append unstable entries after a gap.
      if (stored.length < Math.min(hi, offset) - lo) return stored;
      result = [...stored];
    }
    if (hi > offset) result = result.concat(this.unstable.slice(Math.max(lo, offset), hi));
    return limitSize(result, maxBytes);
  }

  /**
   * The last index that is durable AND belongs to this log: storage may still hold a stale
   * suffix that the unstable tail is about to overwrite.
   */
  persistedLastIndex(): number {
    if (this.unstable.snapshot !== undefined) return 0;
    return Math.min(this.storage.lastIndex(), this.unstable.offset - 1);
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  restore(snapshot: Snapshot): void {
    this.committed = snapshot.metadata.index;
    this.unstable.restore(snapshot);
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  /** Committed entries not yet handed out, unless a snapshot must be applied first. */
  nextCommittedEntries(): readonly Entry[] {
    if (this.hasPendingSnapshot()) return [];
    const lo = this.applying + 1;
    const hi = this.committed + 1;
    if (lo >= hi) return [];
    const entries = this.slice(lo, hi, this.maxApplyingBytes);
    assert(entries !== undefined, `committed entries from ${lo} compacted before being applied`);
    return entries;
  }

  hasNextCommittedEntries(): boolean {
    return !this.hasPendingSnapshot() && this.applying < this.committed;
  }

  acceptApplying(index: number): void {
    assert(index <= this.committed, `applying ${index} beyond committed ${this.committed}`);
    this.applying = Math.max(this.applying, index);
  }

  appliedTo(index: number): void {
    assert(index <= this.committed, `applied ${index} beyond committed ${this.committed}`);
    this.applied = Math.max(this.applied, index);
    this.applying = Math.max(this.applying, index);
  }
}
