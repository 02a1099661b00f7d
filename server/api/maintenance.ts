/** etcdserverpb.Maintenance and etcdserverpb.Cluster (what a member can answer about itself). */
import type * as grpc from '@grpc/grpc-js';
import { GavelError } from '../errors.js';
import type { MemberInfo } from '../node/consensus.js';
import { toBigInt, toNumber } from './convert.js';
import { normalizeUrl } from '../cluster/membership.js';
import { callSignal, clusterHeader, header, unary, type ApiContext } from './context.js';
import { requireAdmin } from './caller.js';
import { expectResult } from './kv.js';
import { alarmText, type AlarmMember } from '../alarm/alarms.js';
import { AlarmAction, applyAlarm } from '../alarm/apply.js';
import type { WireAlarmRequest } from './wire.js';
import { snapshotHandler } from './snapshot.js';

/** The etcd API version gavel implements; clients compare it to enable features. */
export const API_VERSION = '3.5.0';

export function maintenanceService(ctx: ApiContext): grpc.UntypedServiceImplementation {
  return {
    Status: unary(async () => {
      const status = ctx.node.status();
      const onDisk = await ctx.diskSizeBytes();
      return {
        header: header(ctx),
        version: API_VERSION,
        dbSize: String(onDisk),
        // The live history held by the MVCC store: what a compaction can shrink.
        dbSizeInUse: String(Math.min(onDisk, ctx.machine.store.sizeBytes)),
        leader: status.leader.toString(),
        raftIndex: String(status.commitIndex),
        raftTerm: String(status.term),
        raftAppliedIndex: String(status.appliedIndex),
        // etcd reports a missing leader and every raised alarm here; `endpoint status` prints them in the ERRORS column.
        errors: [...(status.leader === 0n ? ['etcdserver: no leader'] : []), ...ctx.machine.alarms.list().map(alarmText)],
        isLearner: status.isLearner,
      };
    }),

    // etcd puts every Alarm request through Raft: GET reads after a read barrier instead (the
    // same linearizable answer, no log entry); ACTIVATE and DEACTIVATE are proposed. etcd 3.4's
    // Alarm answer has no header at all (neither its applier nor its gRPC layer fills one).
    Alarm: unary(async (r: WireAlarmRequest, call) => {
      const signal = callSignal(call);
      if ((r.action ?? AlarmAction.GET) === AlarmAction.GET) {
        await ctx.node.readBarrier(signal);
        // A GET changes nothing: applied to this member's list directly, by the code that applies entries.
        const { result } = applyAlarm(ctx.machine.alarms, { action: AlarmAction.GET, memberID: '0', alarm: r.alarm ?? 0 });
        return { alarms: result.alarms.map(alarmToWire) };
      }
      const result = expectResult(await ctx.node.propose({ alarm: { action: r.action, memberID: r.memberID, alarm: r.alarm } }, signal), 'alarm');
      if (r.action === AlarmAction.DEACTIVATE && result.alarms.length > 0) ctx.logger.info('alarm disarmed', { alarms: result.alarms.map(alarmText) });
      return { alarms: result.alarms.map(alarmToWire) };
    }),

    // Under auth, hashes, snapshots, defragmentation and moving the leader are root's (etcd's authMaintenanceServer);
    // Status and Alarm are anyone's, as in etcd 3.4.
    HashKV: unary(async (r: { revision: string }, call) => {
      await requireAdmin(ctx, call, callSignal(call));
      const store = ctx.machine.store;
      const revision = toNumber(r.revision) > 0 ? toNumber(r.revision) : store.currentRevision;
      // etcd's compact revision is -1 until the first compaction, and HashKV reports it as is.
      const compacted = store.compactedRevision > 0 ? store.compactedRevision : -1;
      return { header: header(ctx), hash: await ctx.hashKv(revision), compact_revision: String(compacted), hash_revision: String(revision) };
    }),

    Hash: unary(async (_r: object, call) => {
      await requireAdmin(ctx, call, callSignal(call));
      return { header: header(ctx), hash: await ctx.hashKv(0) };
    }),

    Defragment: unary(async (_r: object, call) => {
      await requireAdmin(ctx, call, callSignal(call));
      await ctx.defragment();
      // etcd 3.4 answers an empty DefragmentResponse: no header.
      return {};
    }),

    // A backup, streamed as etcd streams its database (server/api/snapshot.ts); root only under auth.
    Snapshot: snapshotHandler(ctx),

    MoveLeader: unary(async (r: { targetID: string }, call) => {
      await requireAdmin(ctx, call, callSignal(call));
      const target = toBigInt(r.targetID);
      const member = ctx.node.members().find((m) => m.id === target);
      if (member === undefined || member.isLearner) throw new GavelError('BadLeaderTransferee');
      await ctx.node.transferLeadership(target);
      // etcd 3.4 answers an empty MoveLeaderResponse: no header.
      return {};
    }),
  };
}

function alarmToWire(member: AlarmMember): object {
  return { memberID: member.memberId.toString(), alarm: member.alarm };
}

export function memberToWire(member: MemberInfo): object {
  return {
    ID: member.id.toString(),
    name: member.name,
    peerURLs: [...member.peerUrls],
    clientURLs: [...member.clientUrls],
    isLearner: member.isLearner,
  };
}

export function clusterService(ctx: ApiContext): grpc.UntypedServiceImplementation {
  const list = (): object[] => ctx.node.members().map(memberToWire);
  return {
    MemberList: unary(async (r: { linearizable?: boolean }, call) => {
      if (r.linearizable) await ctx.node.readBarrier(callSignal(call));
      return { header: clusterHeader(ctx), members: list() };
    }),

    // Membership changes are root's under auth (etcd's checkMembershipOperationPermission); MemberList is anyone's.
    MemberAdd: unary(async (r: { peerURLs: string[]; isLearner: boolean }, call) => {
      await requireAdmin(ctx, call, callSignal(call));
      const peerUrls = checkPeerUrls(r.peerURLs);
      const taken = new Set(ctx.node.members().flatMap((m) => m.peerUrls.map(normalizeUrl)));
      if (peerUrls.some((u) => taken.has(u))) throw new GavelError('PeerUrlExists');
      const id = await ctx.node.addMember(peerUrls, r.isLearner === true);
      const added = ctx.node.members().find((m) => m.id === id);
      return { header: clusterHeader(ctx), member: added ? memberToWire(added) : { ID: id.toString(), peerURLs: peerUrls, isLearner: r.isLearner }, members: list() };
    }),

    MemberRemove: unary(async (r: { ID: string }, call) => {
      await requireAdmin(ctx, call, callSignal(call));
      const id = toBigInt(r.ID);
      if (!ctx.node.members().some((m) => m.id === id)) throw new GavelError('MemberNotFound');
      await ctx.node.removeMember(id);
      return { header: clusterHeader(ctx), members: list() };
    }),

    MemberPromote: unary(async (r: { ID: string }, call) => {
      await requireAdmin(ctx, call, callSignal(call));
      const id = toBigInt(r.ID);
      const member = ctx.node.members().find((m) => m.id === id);
      if (member === undefined) throw new GavelError('MemberNotFound');
      if (!member.isLearner) throw new GavelError('MemberNotLearner');
      await ctx.node.promoteMember(id);
      return { header: clusterHeader(ctx), members: list() };
    }),

    MemberUpdate: unary(async (r: { ID: string; peerURLs: string[] }, call) => {
      await requireAdmin(ctx, call, callSignal(call));
      const id = toBigInt(r.ID);
      const peerUrls = checkPeerUrls(r.peerURLs);
      if (!ctx.node.members().some((m) => m.id === id)) throw new GavelError('MemberNotFound');
      const taken = new Set(ctx.node.members().filter((m) => m.id !== id).flatMap((m) => m.peerUrls.map(normalizeUrl)));
      if (peerUrls.some((u) => taken.has(u))) throw new GavelError('PeerUrlExists');
      const result = await ctx.node.propose({ member_peer_urls: { id: id.toString(), peer_urls: peerUrls } });
      if (result.type === 'error') throw result.error;
      return { header: clusterHeader(ctx), members: list() };
    }),
  };
}

function checkPeerUrls(urls: readonly string[] | undefined): string[] {
  if (urls === undefined || urls.length === 0) throw new GavelError('MemberBadUrls');
  try {
    return urls.map(normalizeUrl);
  } catch {
    throw new GavelError('MemberBadUrls');
  }
}
