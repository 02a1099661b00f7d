/**
 * Time for the state machine's leader-local parts (lease expiry, watch progress). Injected so
 * that tests and the simulator drive it by hand; nothing else in server/ reads a wall clock.
 */
import { performance } from 'node:perf_hooks';
import { assert } from './errors.js';

export interface Clock {
  /** Monotonic milliseconds from an arbitrary origin; never goes backwards. */
  now(): number;
}

/** The process's monotonic clock (performance.now): immune to wall-clock jumps. */
export const systemClock: Clock = {
  now: () => performance.now(),
};

/** A clock that moves only when told to, for tests and the simulator. */
export class ManualClock implements Clock {
  private currentMs: number;

  constructor(startMs = 0) {
    assert(Number.isFinite(startMs), 'ManualClock start must be finite');
    this.currentMs = startMs;
  }

  now(): number {
    return this.currentMs;
  }

  advance(ms: number): void {
    // Monotonic: a negative step would make expiries and intervals run backwards.
    assert(Number.isFinite(ms) && ms >= 0, `ManualClock.advance(${ms}): step must be finite and >= 0`);
    this.currentMs += ms;
  }
}
