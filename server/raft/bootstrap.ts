/**
 * Starting a brand-new cluster. Every initial member gets the same synthetic snapshot at
 * BOOTSTRAP_INDEX (term 1) whose ConfState lists the initial members, and a hardState
 * {term 1, commit 1}. The snapshot's data is empty: the state machine starts empty.
 *
 * Why a snapshot and not conf-change entries: a member added later starts with an empty log;
 * since the leader's log begins after index 1, the leader sends it a snapshot carrying the
 * whole membership, so nobody has to replay the initial configuration.
 *
 * Restarting a member: rebuild a MemoryStorage from disk in this order:
 *   storage.applySnapshot(lastSnapshot)  // skip if none was ever saved beyond bootstrap
 *   storage.setHardState(hardState)
 *   storage.append(entriesAfterSnapshot)
 * then `new RawNode({ ..., storage, applied })` where `applied` is the state machine's applied
 * index (>= the snapshot index). If applied > snapshot index, the ConfState must include the
 * conf changes up to `applied`: pass it to storage.setConfState(). Committed entries above
 * `applied` come out again in committedEntries.
 */
import { MemoryStorage } from './storage.js';
import type { ConfState } from './types.js';
import { NONE } from './types.js';
import { assert } from './util.js';

export const BOOTSTRAP_INDEX = 1;
export const BOOTSTRAP_TERM = 1;

export function bootstrapStorage(confState: ConfState): MemoryStorage {
  assert(confState.voters.length > 0, 'bootstrap needs at least one voter');
  const all = [...confState.voters, ...confState.learners];
  assert(new Set(all).size === all.length, 'bootstrap members must be distinct');
  assert(all.every((id) => id !== NONE), 'bootstrap member id 0');
  const storage = new MemoryStorage();
  storage.applySnapshot({
    metadata: { index: BOOTSTRAP_INDEX, term: BOOTSTRAP_TERM, confState: { voters: [...confState.voters], learners: [...confState.learners] } },
    data: new Uint8Array(0),
  });
  storage.setHardState({ term: BOOTSTRAP_TERM, vote: NONE, commit: BOOTSTRAP_INDEX });
  return storage;
}
