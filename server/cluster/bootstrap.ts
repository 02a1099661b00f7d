/**
 * Decides who this member is and prepares the core's log storage: a brand-new cluster from
 * --initial-cluster, or a restart from what is on disk. Joining an existing cluster
 * (--initial-cluster-state existing) starts with an empty log: the leader sends a snapshot.
 */
import { NONE, type ConfState } from '../raft/index.js';
import type { Config } from '../config.js';
import { UsageError } from '../config.js';
import type { Logger } from '../log.js';
import type { StateMachine } from '../apply/state-machine.js';
import { decodeBigInt, encodeNumber, metaKey, metaOps, type BatchOp, type Storage } from '../storage/layout.js';
import type { ShellStorage } from '../node/shell-storage.js';
import { createRaftLog } from '../storage/raft-wal.js';
import type { Wal, WalState } from '../storage/wal.js';
import { Membership, clusterIdFor, memberIdFor, normalizeUrl, parseInitialCluster, type MemberRecord } from './membership.js';

export interface Identity {
  readonly memberId: bigint;
  readonly clusterId: bigint;
}

const MEMBER_ID_KEY = metaKey('member-id');
const CLUSTER_ID_KEY = metaKey('cluster-id');

export async function loadIdentity(storage: Storage): Promise<Identity | undefined> {
  const memberId = decodeBigInt(await storage.get('meta', MEMBER_ID_KEY));
  const clusterId = decodeBigInt(await storage.get('meta', CLUSTER_ID_KEY));
  return memberId !== undefined && clusterId !== undefined ? { memberId, clusterId } : undefined;
}

export function identityOps(identity: Identity): BatchOp[] {
  return [
    { type: 'put', space: 'meta', key: MEMBER_ID_KEY, value: encodeNumber(identity.memberId) },
    { type: 'put', space: 'meta', key: CLUSTER_ID_KEY, value: encodeNumber(identity.clusterId) },
  ];
}

export function confStateOf(membership: Membership): ConfState {
  const members = membership.list();
  return { voters: members.filter((m) => !m.isLearner).map((m) => m.id), learners: members.filter((m) => m.isLearner).map((m) => m.id) };
}

/** --initial-cluster, or this member alone when it is not given. */
export function initialMembers(config: Config): MemberRecord[] {
  const advertised = config.initialAdvertisePeerUrls.map((u) => normalizeUrl(u.href));
  const spec = config.initialCluster || advertised.map((url) => `${config.name}=${url}`).join(',');
  const byName = parseInitialCluster(spec);
  const mine = byName.get(config.name);
  if (mine === undefined) throw new UsageError(`--initial-cluster has no entry for this member's --name "${config.name}"`);
  const sameUrls = [...mine].sort().join(',') === [...advertised].sort().join(',');
  if (!sameUrls) throw new UsageError(`--initial-cluster gives ${config.name}=${mine.join(',')} but --initial-advertise-peer-urls is ${advertised.join(',')}`);
  return [...byName].map(([name, peerUrls]) => ({ id: memberIdFor(peerUrls, config.initialClusterToken), name, peerUrls, clientUrls: [], isLearner: false }));
}

/**
 * A new cluster: every initial member writes the same bootstrap snapshot at index 1 — the Raft
 * log first, then the identity that marks the data dir as a member's (a crash in between leaves
 * no identity, and the next start bootstraps again from scratch).
 */
export async function bootstrapNewCluster(storage: Storage, config: Config, machine: StateMachine, raftStorage: ShellStorage, logger: Logger): Promise<{ identity: Identity; wal: Wal }> {
  const records = initialMembers(config);
  const ids = records.map((r) => r.id);
  if (new Set(ids).size !== ids.length) throw new UsageError('--initial-cluster lists the same peer URLs twice');
  const me = records.find((r) => r.name === config.name)!;
  const identity = { memberId: me.id, clusterId: clusterIdFor(ids) };
  const membership = Membership.fromRecords(records);
  const metadata = { index: 1, term: 1, confState: confStateOf(membership) };
  const hardState = { term: 1, vote: NONE, commit: 1 };
  const wal = await createRaftLog(config.dataDir, { metadata }, hardState);
  await storage.write([...identityOps(identity), ...membership.ops(), metaOps.appliedIndex(1)], true);
  machine.restore({ store: machine.store, lessor: machine.lessor, membership, coordinator: machine.coordinator, auth: machine.auth, alarms: machine.alarms, appliedIndex: 1 });
  raftStorage.applySnapshot({ metadata, data: new Uint8Array(0) });
  raftStorage.setHardState(hardState);
  logger.info('bootstrapped a new cluster', { members: records.map((r) => `${r.name}=${r.id.toString(16)}`), clusterId: identity.clusterId.toString(16) });
  return { identity, wal };
}

/** A restart: the core's storage from the write-ahead log's snapshot marker, hard state and entries. */
export function restoreRaftStorage(state: WalState, machine: StateMachine, raftStorage: ShellStorage): void {
  const snapshot = state.snapshot?.metadata;
  if (snapshot !== undefined && snapshot.index > 0) raftStorage.applySnapshot({ metadata: snapshot, data: new Uint8Array(0) });
  if (state.hardState) raftStorage.setHardState(state.hardState);
  raftStorage.append(state.entries);
  // Conf changes applied after the snapshot live in the membership registry, not the snapshot.
  if (machine.appliedIndex > (snapshot?.index ?? 0)) raftStorage.setConfState(confStateOf(machine.membership));
}
