/**
 * Read-only figures about the coordinator for metrics (gavel_coordinator_* can be built on them):
 * holders, waiters, queue length per lock, and CheckSequencer's "no" answers (fencing rejections).
 * Reads the current state each time, so a snapshot that replaced the coordinator is followed.
 */
import type { Coordinator } from './coordinator.js';
import { lockKey } from './coordinator.js';

export class CoordinatorStats {
  private rejections = 0;

  constructor(private readonly coordinator: () => Coordinator) {}

  /** Holders over all locks. */
  holders(): number {
    return this.coordinator().holderCount();
  }

  /** Waiters over all locks. */
  waiters(): number {
    return this.coordinator().waiterCount();
  }

  /** Waiters of one lock. */
  queueLength(name: Uint8Array | string): number {
    return this.coordinator().queueLength(lockKey(typeof name === 'string' ? Buffer.from(name) : name));
  }

  /** Locks with holders, waiters or a running lock-delay. */
  locks(): number {
    return this.coordinator().lockCount;
  }

  /** CheckSequencer answers "not a current holder" since this process started. */
  get sequencerRejections(): number {
    return this.rejections;
  }

  countSequencerRejection(): void {
    this.rejections++;
  }
}
