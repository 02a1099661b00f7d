/**
 * The leader's lease duties, after etcd's lessor runLoop: expire leases whose deadline passed (by
 * proposing their revoke, so keys vanish only when it commits) and record due checkpoints. Each
 * round is bounded: it looks at a fixed number of leases at most, picked from the lessor's heaps,
 * so a round costs the same with ten idle leases or a million. Lease time is the lessor's
 * injected clock; the member's timers only say when a round runs.
 */
import type { Mutation } from '../apply/request.js';
import type { Clock } from '../clock.js';
import { assert } from '../errors.js';
import type { Logger } from '../log.js';
import type { Lessor } from './lessor.js';

/** How often the leader looks for expired leases. */
export const LEASE_EXPIRY_ROUND_MS = 250;
/** How often the leader records due checkpoints. */
export const LEASE_CHECKPOINT_ROUND_MS = 500;
/** etcd revokes at most this many expired leases per second, so an expiry storm cannot swamp the log. */
export const LEASE_REVOKES_PER_SECOND = 1000;
/** etcd's leaseCheckpointRate: leases checkpointed per second at most, however many are due. */
export const LEASE_CHECKPOINTS_PER_SECOND = 1000;

export interface LeaseDutiesOptions {
  /** The current lessor: installing a snapshot replaces it. */
  readonly lessor: () => Lessor;
  readonly isLeader: () => boolean;
  readonly propose: (mutation: Mutation) => Promise<unknown>;
  readonly logger: Logger;
  /** Called with the number of leases handed out for their revoke in a round (metrics). */
  readonly onExpired?: (count: number) => void;
  readonly expiryRoundMs?: number;
  readonly checkpointRoundMs?: number;
  readonly revokesPerSecond?: number;
  readonly checkpointsPerSecond?: number;
}

export class LeaseDuties {
  /** Revokes proposed per expiry round at most. */
  readonly revokesPerRound: number;
  /** Leases checkpointed per round at most: one log entry (etcd's batch bound is 1000). */
  readonly checkpointsPerRound: number;

  private readonly checkpointRoundMs: number;

  constructor(private readonly options: LeaseDutiesOptions) {
    this.checkpointRoundMs = options.checkpointRoundMs ?? LEASE_CHECKPOINT_ROUND_MS;
    this.revokesPerRound = perRound(options.revokesPerSecond ?? LEASE_REVOKES_PER_SECOND, options.expiryRoundMs ?? LEASE_EXPIRY_ROUND_MS);
    this.checkpointsPerRound = perRound(options.checkpointsPerSecond ?? LEASE_CHECKPOINTS_PER_SECOND, this.checkpointRoundMs);
  }

  /** Only the leader expires leases, and only by proposing the revoke. Returns the leases handed out. */
  expireRound(): bigint[] {
    if (!this.options.isLeader()) return [];
    const expired = this.options.lessor().expiredLeases(this.revokesPerRound);
    if (expired.length === 0) return expired;
    this.options.logger.info('leases expired', { count: expired.length });
    this.options.onExpired?.(expired.length);
    for (const id of expired) {
      // lease_expire, not lease_revoke: an expiry (unlike a revoke) starts the coordinator's lock-delays.
      this.options.propose({ lease_expire: { ID: id.toString() } }).catch((error: unknown) => {
        this.options.logger.warn('failed to revoke expired lease', { lease: id.toString(16), error });
      });
    }
    return expired;
  }

  /**
   * Records the remaining TTL of the leases whose checkpoint is due, in one entry: a new leader
   * continues their countdown instead of restarting it. Returns how many were recorded.
   */
  checkpointRound(): number {
    if (!this.options.isLeader()) return 0;
    // A checkpoint due before the next round is made now: none is late (the bound counts on it).
    const due = this.options.lessor().dueCheckpoints(this.checkpointsPerRound, this.checkpointRoundMs);
    if (due.length === 0) return 0;
    const checkpoints = due.map((c) => ({ ID: c.id.toString(), remaining_TTL: String(c.remainingTtlSeconds) }));
    this.options.propose({ lease_checkpoint: { checkpoints } }).catch((error: unknown) => this.options.logger.debug('lease checkpoint failed', { error }));
    return due.length;
  }
}

/** A deferred round waits for one more I/O turn if something held it up longer than this. */
export const INPUT_TURN_LAG_MS = 20;
/** A member busy for this many turns in a row decides anyway. */
const INPUT_TURN_HOPS_MAX = 8;

/**
 * Runs `round` right after the event loop has polled for I/O, so that keep-alives which reached
 * the member while it was busy are read (and stamped) before the round expires anything. A timer
 * callback runs BEFORE the poll phase of its loop iteration: after a stall, an expiry round run
 * straight from its timer would judge leases whose keep-alives wait unread in the socket. A
 * setImmediate callback runs right after the poll phase; if other callbacks held it up by more
 * than INPUT_TURN_LAG_MS (input may have arrived meanwhile), it hops to the next turn, at most
 * INPUT_TURN_HOPS_MAX times.
 */
export function afterInputTurn(clock: Clock, round: () => void, defer: (callback: () => void) => void = setImmediate): void {
  const hop = (hops: number, scheduledMs: number): void => {
    defer(() => {
      const now = clock.now();
      if (now - scheduledMs > INPUT_TURN_LAG_MS && hops < INPUT_TURN_HOPS_MAX) hop(hops + 1, now);
      else round();
    });
  };
  hop(1, clock.now());
}

function perRound(perSecond: number, roundMs: number): number {
  assert(Number.isFinite(perSecond) && perSecond > 0 && Number.isFinite(roundMs) && roundMs > 0, `lease duty rate ${perSecond}/s every ${roundMs} ms`);
  return Math.max(1, Math.ceil((perSecond * roundMs) / 1000));
}
