/**
 * What a restored data dir holds besides the backup's state (pure): the NEW cluster's membership
 * and identity, and the Raft log's starting point.
 *
 * As etcd's restore: the membership is the new --initial-cluster, not the one in the backup;
 * member ids come from each member's peer URLs and --initial-cluster-token, the cluster id from the
 * member ids, exactly as a new cluster's bootstrap derives them (cluster/bootstrap.ts), so every
 * member restored from the same file with the same flags agrees on all of them.
 *
 * Unlike etcd (which restarts the Raft index at the number of members), the log starts right
 * after the backup's applied index, at term 1: applied indexes stay monotonic across the restore
 * (the coordinator's places record the index they joined at). Every member restores the same file,
 * so every member's log starts at the same index and term, as a bootstrapped cluster's do at 1.
 */
import { UsageError, type Config } from '../config.js';
import { NONE, type HardState, type SnapshotMetadata } from '../raft/index.js';
import type { SnapshotRecord } from '../apply/snapshot-format.js';
import { confStateOf, identityOps, initialMembers, type Identity } from '../cluster/bootstrap.js';
import { clusterIdFor, Membership, type MemberRecord } from '../cluster/membership.js';
import { metaOps, type BatchOp } from '../storage/layout.js';

export interface RestorePlan {
  readonly identity: Identity;
  readonly members: readonly MemberRecord[];
  /** The Raft snapshot marker the new log starts after, and the hard state that commits it. */
  readonly metadata: SnapshotMetadata;
  readonly hardState: HardState;
  /** The level writes that make the data dir this member's: membership, identity, applied index. */
  readonly memberOps: readonly BatchOp[];
}

export function planRestore(config: Config, backupAppliedIndex: number): RestorePlan {
  let members: MemberRecord[];
  try {
    members = initialMembers(config);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const ids = members.map((member) => member.id);
  if (new Set(ids).size !== ids.length) throw new UsageError('--initial-cluster lists the same peer URLs twice');
  const me = members.find((member) => member.name === config.name)!;
  const identity = { memberId: me.id, clusterId: clusterIdFor(ids) };
  const membership = Membership.fromRecords(members);
  const index = Math.max(1, backupAppliedIndex);
  return {
    identity,
    members,
    metadata: { index, term: 1, confState: confStateOf(membership) },
    hardState: { term: 1, vote: NONE, commit: index },
    memberOps: [...membership.ops(), ...identityOps(identity), metaOps.appliedIndex(index)],
  };
}

/**
 * Which of the backup's records the new data dir takes: the state spaces, except alarms (they
 * name the old cluster's members; a new member raises NOSPACE again itself if still over quota),
 * and none of the old membership or applied index (planRestore writes the new ones).
 */
export function restoredRecord(record: SnapshotRecord): boolean {
  return record.space !== 'meta' && record.space !== 'alarm';
}
