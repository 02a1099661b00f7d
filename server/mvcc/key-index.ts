/**
 * The in-memory key index, etcd's keyIndex: per key, the revisions of its versions and nothing
 * else of them. Values (and the create revision, version and lease of old versions) live in
 * level under the version's revision key and are read on demand (store.ts), so memory grows with
 * the number of keys and revisions held, not with the bytes written.
 *
 * A key's versions are one flat number array, two slots each: main revision, then the sub
 * revision, stored bitwise-negated (~sub, always < 0) for a tombstone. A flat array of small
 * integers is a few bytes per version; an object per version was a few hundred.
 */
import { assert } from '../errors.js';
import type { Revision } from './types.js';

export interface KeyEntry {
  /** The key's latin1 image (key-range.ts keyString): string order is byte order. */
  readonly key: string;
  /** [main, subCode, main, subCode, ...] in strictly increasing revision order; never empty once committed. */
  revisions: number[];
  /** Of the newest version, when it is live; 0 when the newest version is a tombstone (etcd's zero KeyValue). */
  createRevision: number;
  /** Of the newest version when live, else 0. */
  version: number;
  /** Of the newest version when live, else 0n. */
  lease: bigint;
}

/** The newest version's generation, saved so a failed write can put it back. */
export interface EntryMeta {
  readonly createRevision: number;
  readonly version: number;
  readonly lease: bigint;
}

export function newEntry(key: string): KeyEntry {
  return { key, revisions: [], createRevision: 0, version: 0, lease: 0n };
}

export function versionCount(entry: KeyEntry): number {
  return entry.revisions.length >>> 1;
}

export function mainAt(entry: KeyEntry, index: number): number {
  return entry.revisions[index * 2]!;
}

export function isTombstoneAt(entry: KeyEntry, index: number): boolean {
  return entry.revisions[index * 2 + 1]! < 0;
}

export function revisionAt(entry: KeyEntry, index: number): Revision {
  const code = entry.revisions[index * 2 + 1]!;
  return { main: entry.revisions[index * 2]!, sub: code < 0 ? ~code : code };
}

export function subCode(sub: number, tombstone: boolean): number {
  return tombstone ? ~sub : sub;
}

export function isLive(entry: KeyEntry): boolean {
  return entry.createRevision !== 0;
}

export function metaOf(entry: KeyEntry): EntryMeta {
  return { createRevision: entry.createRevision, version: entry.version, lease: entry.lease };
}

export function setMeta(entry: KeyEntry, meta: EntryMeta): void {
  entry.createRevision = meta.createRevision;
  entry.version = meta.version;
  entry.lease = meta.lease;
}

/** Up to this many slots a key's array is reallocated at its exact size (most keys have few versions). */
const EXACT_SLOTS = 8;

/** Appends a version; revisions must increase. */
export function pushVersion(entry: KeyEntry, revision: Revision, tombstone: boolean): void {
  const count = versionCount(entry);
  if (count > 0) {
    const last = revisionAt(entry, count - 1);
    assert(last.main < revision.main || (last.main === revision.main && last.sub < revision.sub), 'key versions must increase');
  }
  const code = subCode(revision.sub, tombstone);
  // push() grows an array by half plus 16 slots: 144 bytes for a key's first version. For the
  // million keys of one version each that a member may hold, exact arrays save most of that.
  if (entry.revisions.length < EXACT_SLOTS) entry.revisions = entry.revisions.concat(revision.main, code);
  else entry.revisions.push(revision.main, code);
}

/** Removes the newest version (a failed write's); returns its main revision. */
export function popVersion(entry: KeyEntry): number {
  assert(entry.revisions.length >= 2, 'popVersion on a key without versions');
  entry.revisions.pop();
  return entry.revisions.pop()!;
}

/** The index of the last version with main <= revision, or -1. */
export function lastAtOrBelow(entry: KeyEntry, revision: number): number {
  let low = 0;
  let high = versionCount(entry);
  const revisions = entry.revisions;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (revisions[middle * 2]! <= revision) low = middle + 1;
    else high = middle;
  }
  return low - 1;
}

/** The index of the version visible at revision (live), or -1 (none, or deleted then). */
export function visibleAt(entry: KeyEntry, revision: number): number {
  const last = versionCount(entry) - 1;
  const index = last >= 0 && mainAt(entry, last) <= revision ? last : lastAtOrBelow(entry, revision);
  return index >= 0 && !isTombstoneAt(entry, index) ? index : -1;
}

/**
 * The index of the version with exactly this revision, or -1. (Through the API a key changes at
 * most once per revision, but the store tolerates a txn that writes one key twice.)
 */
export function indexOfRevision(entry: KeyEntry, revision: Revision): number {
  for (let index = lastAtOrBelow(entry, revision.main); index >= 0 && mainAt(entry, index) === revision.main; index--) {
    if (revisionAt(entry, index).sub === revision.sub) return index;
  }
  return -1;
}

/** Whether the index still holds this exact version (the physical compactor deletes the rest). */
export function holdsVersion(entry: KeyEntry, revision: Revision, tombstone: boolean): boolean {
  const index = indexOfRevision(entry, revision);
  return index >= 0 && isTombstoneAt(entry, index) === tombstone;
}

/**
 * etcd's keyIndex.compact: drop every version not visible at or after revision, i.e. all below
 * the newest version <= revision, and that one too if it is a tombstone. Returns how many went.
 */
export function compactEntry(entry: KeyEntry, revision: number): number {
  const index = lastAtOrBelow(entry, revision);
  if (index < 0) return 0;
  const dropped = isTombstoneAt(entry, index) ? index + 1 : index;
  if (dropped > 0) entry.revisions.splice(0, dropped * 2);
  return dropped;
}
