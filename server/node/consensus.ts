/**
 * The seam between the API layer and consensus. The API layer proposes mutations and waits for
 * their applied result, and asks for a read barrier before linearizable reads; it never sees
 * how entries are ordered, persisted or replicated. The one-member node and the Raft-driven
 * node implement the same interface.
 */
import type { ApplyResult } from '../apply/state-machine.js';
import type { Mutation } from '../apply/request.js';

export interface NodeStatus {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly leader: bigint; // 0n when there is none
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly isLearner: boolean;
}

export interface MemberInfo {
  readonly id: bigint;
  readonly name: string;
  readonly peerUrls: readonly string[];
  readonly clientUrls: readonly string[];
  readonly isLearner: boolean;
}

export interface Consensus {
  /**
   * Proposes a mutation and resolves with its applied result. Rejects with GavelError
   * TooManyRequests (too much pending), RequestTooLarge, NoLeader, Timeout, LeaderChanged or
   * Stopped; a rejection before commit means the mutation was not applied.
   */
  propose(mutation: Mutation, signal?: AbortSignal): Promise<ApplyResult>;
  /** Resolves once this member's state reflects every write committed before the call. */
  readBarrier(signal?: AbortSignal): Promise<void>;
  status(): NodeStatus;
  members(): readonly MemberInfo[];
  isLeader(): boolean;
  /** Keep-alive: renewed by the leader (forwarded there from a follower); resolves with the TTL. */
  renewLease(id: bigint, signal?: AbortSignal): Promise<number>;
  /** Remaining TTL as the leader sees it; ttl -1 for an unknown lease. */
  leaseTimeToLive(id: bigint, keys: boolean, signal?: AbortSignal): Promise<{ ttl: number; grantedTtl: number; keys: Uint8Array[] }>;
  addMember(peerUrls: readonly string[], isLearner: boolean): Promise<bigint>;
  removeMember(id: bigint): Promise<void>;
  promoteMember(id: bigint): Promise<void>;
  /** MoveLeader; only the leader can hand over. */
  transferLeadership(to: bigint): Promise<void>;
  /** Graceful stop (a leader hands over first). */
  close(): Promise<void>;
}
