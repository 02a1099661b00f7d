/**
 * What every fault-test workload shares: recorded operations, verdicts, and the Workload
 * contract. A workload drives the cluster from its clients until the run's signal aborts, then
 * finishes (a final read on the healed cluster, say) and returns its history; `check` turns a
 * history into verdicts without touching the cluster, so it can be unit-tested on synthetic
 * histories. Issue 8's four workloads plug in here: register.ts (a), lock.ts (b), election.ts
 * (c), set.ts (d).
 */
import type { Outcome } from '../checker/linearizability.js';
import type { FaultClient } from './client.js';

export type { Outcome };

/** One operation as a client saw it. Times are ms since the run started (RunClock). */
export interface RecordedOp<Detail = unknown> {
  /** Which client (worker) issued it, e.g. "register/3@n2". */
  readonly client: string;
  /** Short operation name for the report ("read", "write", "cas", "add"). */
  readonly kind: string;
  readonly invokeTime: number;
  /** Infinity when the outcome is indeterminate and the op never came back. */
  readonly completeTime: number;
  readonly outcome: Outcome;
  /** True when the op is acknowledged as having changed the state (for the no-write window). */
  readonly wrote: boolean;
  /** The status text of a failed or indeterminate op. */
  readonly error?: string;
  /** Workload-specific input and output. */
  readonly detail: Detail;
}

export interface WorkloadHistory<Detail = unknown> {
  readonly workload: string;
  readonly ops: readonly RecordedOp<Detail>[];
  /** When the workload started and stopped issuing operations (RunClock ms). */
  readonly startedAt: number;
  readonly stoppedAt: number;
}

/**
 * A checker's answer. `valid` is true (no violation), false (a violation: the run fails) or
 * null (the checker could not decide within its budget: reported, not a violation).
 */
export interface Verdict {
  readonly checker: string;
  readonly valid: boolean | null;
  /** One line for the report. */
  readonly summary: string;
  /** Explanations of violations (or of an unknown answer), for the report. */
  readonly details: readonly string[];
}

export interface Workload<H extends WorkloadHistory = WorkloadHistory> {
  readonly name: string;
  /** Clients (gRPC channels) this workload wants per member; the runner creates them. */
  readonly clientsPerMember: number;
  /** Runs until `signal` aborts (the cluster is healed by then), finishes, returns the history. */
  start(clients: readonly FaultClient[], signal: AbortSignal): Promise<H>;
  /** Pure: the verdicts of this workload's checkers on a history. */
  check(history: H): Verdict[];
}

/**
 * Milliseconds since the run started, from a monotonic clock, rounded to 10 µs for readable
 * histories (rounding keeps the order of readings, so it can only make ops overlap, never
 * invent a precedence).
 */
export class RunClock {
  private readonly origin = performance.now();

  now(): number {
    return Math.round((performance.now() - this.origin) * 100) / 100;
  }
}

/** Resolves after ms, or at once when the signal aborts. Never rejects. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Counts of a history's operations by outcome. */
export function countOutcomes(ops: readonly RecordedOp[]): Record<Outcome, number> {
  const counts: Record<Outcome, number> = { ok: 0, fail: 0, indeterminate: 0 };
  for (const op of ops) counts[op.outcome] += 1;
  return counts;
}
