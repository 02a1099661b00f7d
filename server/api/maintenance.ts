/** etcdserverpb.Maintenance and etcdserverpb.Cluster (what a member can answer about itself). */
import type * as grpc from '@grpc/grpc-js';
import { GavelError } from '../errors.js';
import type { MemberInfo } from '../node/consensus.js';
import { toNumber } from './convert.js';
import { header, unary, type ApiContext } from './context.js';

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
        errors: [],
        isLearner: status.isLearner,
      };
    }),

    Alarm: unary(async (r: { action: number }) => {
      // gavel raises no alarms yet (no space quota); GET answers the empty list clients expect.
      if (r.action !== 0) throw new GavelError('Unimplemented', 'alarms cannot be activated or deactivated: gavel raises none');
      return { header: header(ctx), alarms: [] };
    }),

    HashKV: unary(async (r: { revision: string }) => {
      const store = ctx.machine.store;
      const revision = toNumber(r.revision) > 0 ? toNumber(r.revision) : store.currentRevision;
      return { header: header(ctx), hash: store.hash(revision), compact_revision: String(store.compactedRevision), hash_revision: String(revision) };
    }),

    Hash: unary(async () => ({ header: header(ctx), hash: ctx.machine.store.hash(ctx.machine.store.currentRevision) })),

    Defragment: unary(async () => ({ header: header(ctx) })),
  };
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
  return {
    MemberList: unary(async () => ({ header: header(ctx), members: ctx.node.members().map(memberToWire) })),
  };
}
