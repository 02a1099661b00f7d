/**
 * Consensus without consensus, for `gavel --mode central`: one process is the whole "cluster".
 * The same state machine applies the same log payloads as on a Raft member, so the coordinator
 * queue, leases and lock-delays behave the same; only the ordering is local.
 *
 * The journal is a write-ahead log in level's 'log' space: proposals that arrive while a write
 * is in flight are grouped; each group is written with ONE fsync, then applied, then its state
 * changes are written together with the applied index and the deletion of those journal
 * entries (one batch: a crash keeps both or neither), and only then are callers answered.
 * A restart loads the state and re-applies whatever journal entries are left. Since nothing is
 * applied before it is durable, no caller (nor any Acquire stream) ever sees a grant a crash
 * could take back.
 */
import { randomBytes } from 'node:crypto';
import { GavelError, assert } from '../errors.js';
import type { Logger } from '../log.js';
import type { ApplyResult, StateMachine } from '../apply/state-machine.js';
import { encodeRequest, type Mutation } from '../apply/request.js';
import type { Consensus, MemberInfo, NodeStatus } from '../node/consensus.js';
import { deferred, type Deferred } from '../node/deferred.js';
import { metaOps, readU64, u64Key, type BatchOp, type Storage } from '../storage/layout.js';

/** Proposals per journal write. */
const MAX_GROUP = 1024;

export interface CentralNodeOptions {
  readonly memberId: bigint;
  readonly storage: Storage;
  readonly machine: StateMachine;
  readonly maxRequestBytes: number;
  readonly maxPendingProposals: number;
  readonly logger: Logger;
}

interface Proposal {
  readonly data: Uint8Array;
  readonly done: Deferred<ApplyResult>;
}

export class CentralNode implements Consensus {
  private queue: Proposal[] = [];
  private writing = false;
  private stopped = false;
  private nextRequestId = randomBytes(8).readBigUInt64BE();

  private constructor(private readonly options: CentralNodeOptions) {}

  /** Opens the node: re-applies the journal entries a crash left behind. */
  static async open(options: CentralNodeOptions): Promise<CentralNode> {
    const node = new CentralNode(options);
    const leftover: [number, Uint8Array][] = [];
    for await (const [key, value] of options.storage.space('log').iterator()) leftover.push([Number(readU64(key)), value]);
    if (leftover.length > 0) {
      const ops: BatchOp[] = [];
      for (const [index, data] of leftover) {
        assert(index <= options.machine.appliedIndex + 1, `journal gap: entry ${index} after applied ${options.machine.appliedIndex}`);
        for (const op of options.machine.apply(index, data)?.ops ?? []) ops.push(op);
        ops.push({ type: 'del', space: 'log', key: u64Key(index) });
      }
      ops.push(metaOps.appliedIndex(options.machine.appliedIndex));
      await options.storage.write(ops, true);
      options.machine.markDurable();
      options.logger.info('replayed the journal', { entries: leftover.length, appliedIndex: options.machine.appliedIndex });
    }
    return node;
  }

  async propose(mutation: Mutation, signal?: AbortSignal): Promise<ApplyResult> {
    if (this.stopped) throw new GavelError('Stopped');
    if (signal?.aborted) throw signal.reason;
    if (this.queue.length >= this.options.maxPendingProposals) throw new GavelError('TooManyRequests');
    const id = this.nextRequestId;
    this.nextRequestId = (this.nextRequestId + 1n) & 0xffff_ffff_ffff_ffffn;
    const data = encodeRequest(id, mutation);
    if (data.length > this.options.maxRequestBytes) throw new GavelError('RequestTooLarge');
    const done = deferred<ApplyResult>();
    this.queue.push({ data, done });
    if (!this.writing) this.drain();
    return done.promise;
  }

  private drain(): void {
    this.writing = true;
    // Let the proposals of this event-loop turn join the group (one fsync for all of them).
    setImmediate(() => {
      this.writeGroups().then(
        () => {
          this.writing = false;
          // Callers answered by the last group may have proposed again meanwhile.
          if (this.queue.length > 0 && !this.stopped) this.drain();
        },
        (error: unknown) => {
          // Memory and disk may disagree now: stopping is the only safe move.
          this.options.logger.error('journal write failed; stopping', { error: error instanceof Error ? error.stack : String(error) });
          process.exit(1);
        },
      );
    });
  }

  private async writeGroups(): Promise<void> {
    while (this.queue.length > 0 && !this.stopped) {
      const group = this.queue.splice(0, MAX_GROUP);
      const { storage, machine } = this.options;
      const first = machine.appliedIndex + 1;
      await storage.write(group.map((p, i) => ({ type: 'put', space: 'log', key: u64Key(first + i), value: p.data })), true);
      const ops: BatchOp[] = [];
      const results: ApplyResult[] = [];
      for (const [i, proposal] of group.entries()) {
        const applied = machine.apply(first + i, proposal.data);
        assert(applied !== undefined, `journal entry ${first + i} did not apply`);
        for (const op of applied.ops) ops.push(op);
        ops.push({ type: 'del', space: 'log', key: u64Key(first + i) });
        results.push(applied.result);
      }
      ops.push(metaOps.appliedIndex(machine.appliedIndex));
      await storage.write(ops, false);
      machine.markDurable();
      for (const [i, proposal] of group.entries()) proposal.done.resolve(results[i]!);
    }
  }

  /** Everything applied is durable and answered in order: local state is linearizable. */
  async readBarrier(): Promise<void> {
    if (this.stopped) throw new GavelError('Stopped');
  }

  status(): NodeStatus {
    const applied = this.options.machine.appliedIndex;
    return { memberId: this.options.memberId, clusterId: this.options.memberId, leader: this.options.memberId, term: 1, commitIndex: applied, appliedIndex: applied, isLearner: false };
  }

  members(): readonly MemberInfo[] {
    return [];
  }

  isLeader(): boolean {
    return !this.stopped;
  }

  pendingProposals(): number {
    return this.queue.length;
  }

  async renewLease(id: bigint): Promise<number> {
    if (this.stopped) throw new GavelError('Stopped');
    return this.options.machine.lessor.renew(id);
  }

  async leaseTimeToLive(id: bigint, keys: boolean): Promise<{ ttl: number; grantedTtl: number; keys: Uint8Array[] }> {
    const info = this.options.machine.lessor.timeToLive(id);
    if (info === undefined) return { ttl: -1, grantedTtl: 0, keys: [] };
    return { ttl: info.ttlSeconds, grantedTtl: info.grantedTtlSeconds, keys: keys ? info.keys : [] };
  }

  addMember(): Promise<bigint> {
    return Promise.reject(unimplemented());
  }

  removeMember(): Promise<void> {
    return Promise.reject(unimplemented());
  }

  promoteMember(): Promise<void> {
    return Promise.reject(unimplemented());
  }

  transferLeadership(): Promise<void> {
    return Promise.reject(unimplemented());
  }

  /** Stops taking proposals and waits for the group being written. */
  async close(): Promise<void> {
    this.stopped = true;
    while (this.writing) await new Promise((resolve) => setTimeout(resolve, 5));
    for (const proposal of this.queue) proposal.done.reject(new GavelError('Stopped'));
    this.queue = [];
  }
}

function unimplemented(): GavelError {
  return new GavelError('Unimplemented', 'gavel --mode central has no cluster: membership changes are not served');
}
