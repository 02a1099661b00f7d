/** What every gRPC adapter needs: the node, the state it reads, limits, and a header builder. */
import * as grpc from '@grpc/grpc-js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Consensus } from '../node/consensus.js';
import type { StateMachine } from '../apply/state-machine.js';
import type { WatchHub } from '../watch/hub.js';
import type { LockMetrics } from '../metrics/locks.js';
import type { StreamTally } from './stream-output.js';
import type { WireHeader } from './wire.js';
import type { HeaderFields } from './response-encoding.js';
import type { Backup } from '../node/backup.js';
import { toServiceError } from './status.js';
import { GavelError } from '../errors.js';

export interface ApiContext {
  readonly config: Config;
  readonly node: Consensus;
  readonly machine: StateMachine;
  readonly watchHub: WatchHub;
  readonly logger: Logger;
  /** Bytes the member's database occupies on disk (Status.dbSize). */
  readonly diskSizeBytes: () => Promise<number>;
  /** Compacts the member's database on disk (Maintenance.Defragment). */
  readonly defragment: () => Promise<void>;
  /** Maintenance.HashKV's hash of the stored history up to revision (0 = current). */
  readonly hashKv: (revision: number) => Promise<number>;
  /** Resolves once the versions a compaction at revision dropped are deleted from disk (Compact with physical). */
  readonly compactionFinished: (revision: number) => Promise<void>;
  /**
   * A backup of this member's state for Maintenance.Snapshot (node/backup.ts), read from level in
   * chunks of about chunkBytes; absent where there is none to give (central mode).
   */
  readonly openBackup?: (chunkBytes: number, signal?: AbortSignal) => Promise<Backup>;
  /** gavel_* coordination metrics (locks, fencing, elections). */
  readonly lockMetrics: LockMetrics;
  /** Where long-lived streams report what they buffer (server/api/stream-output.ts). */
  readonly streams: StreamTally;
}

/**
 * The header etcd's Cluster service answers with: cluster, member and term, but no revision
 * (membership is not part of the key space, so etcd 3.4 leaves revision 0).
 */
export function clusterHeader(ctx: ApiContext): Omit<WireHeader, 'revision'> {
  const status = ctx.node.status();
  return { cluster_id: status.clusterId.toString(), member_id: status.memberId.toString(), raft_term: String(status.term) };
}

/** The member's part of every response header, for the hand-encoded responses (api/response-encoding.ts). */
export function headerFields(ctx: ApiContext): HeaderFields {
  const status = ctx.node.status();
  return { clusterId: status.clusterId, memberId: status.memberId, raftTerm: status.term };
}

export function header(ctx: ApiContext, revision?: number): WireHeader {
  const status = ctx.node.status();
  return {
    cluster_id: status.clusterId.toString(),
    member_id: status.memberId.toString(),
    revision: String(revision ?? ctx.machine.store.currentRevision),
    raft_term: String(status.term),
  };
}

/** Wraps an async function as a unary gRPC handler; every error goes through the status table. */
export function unary<Req, Res>(fn: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>, ctx?: ApiContext): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    if (ctx !== undefined && requiresLeader(call) && ctx.node.status().leader === 0n) {
      callback(toServiceError(new GavelError('NoLeader')) as grpc.ServiceError);
      return;
    }
    // grpc-js reports every unary call as 'cancelled' once its stream closes, answered or not:
    // the call's signal (callSignal) must not fire, and run abort listeners, after the answer.
    fn(call.request, call).then(
      (response) => {
        call.removeAllListeners('cancelled');
        callback(null, response);
      },
      (error: unknown) => {
        call.removeAllListeners('cancelled');
        callback(toServiceError(error) as grpc.ServiceError);
      },
    );
  };
}

/**
 * etcd's clients may ask for a leader to be present (metadata hasleader=true, clientv3's
 * WithRequireLeader): such a request fails at once with "etcdserver: no leader" instead of
 * waiting for an election.
 */
export function requiresLeader(call: { metadata: grpc.Metadata }): boolean {
  return call.metadata.get('hasleader')[0] === 'true';
}

/** Each call's signal, made once: the quota guard and the handler both ask for it on every Put. */
const callSignals = new WeakMap<object, AbortSignal>();

/** An AbortSignal that fires when the client cancels the call or its deadline passes. */
export function callSignal(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): AbortSignal {
  const made = callSignals.get(call);
  if (made !== undefined) return made;
  const controller = new AbortController();
  call.on('cancelled', () => controller.abort(new Error('cancelled by client')));
  callSignals.set(call, controller.signal);
  return controller.signal;
}
