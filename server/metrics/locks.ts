/**
 * gavel's own coordination metrics (gavel_*): lock holders and waiters, acquire wait, hand-off
 * latency, fencing rejections, session expiries and election leader changes.
 *
 * What the server can see: locks and elections taken through its Lock, Election (and
 * Coordinator) services, and fenced Txns of the client library's shape. Locks taken with the
 * client library's KV recipe are plain keys to the server; their holders and waits are not
 * counted here (the fencing rejections are).
 *
 * Cardinality is bounded: a `name` label carries the lock name only for the names configured
 * with --metrics-lock-names; every other lock is counted under name="other".
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { WireTxnRequest } from '../api/wire.js';

/** Waits from a few ms to minutes. */
const WAIT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** Remembered release times, for the hand-off latency of the next grant (bounded). */
const RELEASES_REMEMBERED = 4_096;

export type LockService = 'v3lock' | 'coordinator';

/** What the coordinator's replicated queue can tell at scrape time (server/coordinator/stats.ts). */
export interface CoordinatorFigures {
  holders(): number;
  waiters(): number;
  queueLength(name: string): number;
}

export interface HeldLock {
  readonly service: LockService;
  readonly name: string;
  /** Still held? (A lease expiry releases a lock without any call the service sees.) */
  readonly stillHeld: () => boolean;
}

export class LockMetrics {
  readonly fencingRejections: Counter;
  readonly sessionExpiries: Counter;
  readonly electionLeaderChanges: Counter<'name'>;
  private readonly waiters: Gauge<'service' | 'name'>;
  private readonly acquireWait: Histogram<'service' | 'name'>;
  private readonly handOff: Histogram<'service' | 'name'>;
  private readonly held = new Map<string, HeldLock>();
  private coordinator: CoordinatorFigures | undefined;
  private readonly releasedAt = new Map<string, number>();

  constructor(
    registry: Registry,
    private readonly names: ReadonlySet<string>,
  ) {
    const registers = [registry];
    const held = this.held;
    const label = (name: string): string => this.label(name);
    const coordinator = (): CoordinatorFigures | undefined => this.coordinator;
    /** Per configured name, and the rest as "other". */
    const split = (gauge: Gauge<'service' | 'name'> | Gauge<'name'>, total: number, of: (name: string) => number, service?: LockService): void => {
      let named = 0;
      for (const name of names) {
        const value = of(name);
        named += value;
        (gauge as Gauge<string>).set(service === undefined ? { name } : { service, name }, value);
      }
      (gauge as Gauge<string>).set(service === undefined ? { name: 'other' } : { service, name: 'other' }, total - named);
    };
    new Gauge({
      name: 'gavel_lock_holders',
      help: 'Locks held through the Lock and Coordinator services.',
      labelNames: ['service', 'name'],
      registers,
      collect() {
        this.reset();
        for (const [key, lock] of held) {
          if (!lock.stillHeld()) held.delete(key);
          else this.inc({ service: lock.service, name: label(lock.name) });
        }
        const queue = coordinator();
        // The coordinator's holders are replicated state: counted from it, not from calls.
        if (queue !== undefined) this.set({ service: 'coordinator', name: 'other' }, queue.holders());
      },
    });
    this.waiters = new Gauge({
      name: 'gavel_lock_waiters',
      help: 'Callers waiting for a lock in the Lock and Coordinator services.',
      labelNames: ['service', 'name'],
      registers,
      collect() {
        const queue = coordinator();
        if (queue !== undefined) split(this, queue.waiters(), (name) => queue.queueLength(name), 'coordinator');
      },
    });
    new Gauge({
      name: 'gavel_coordinator_queue_length',
      help: 'Waiters queued in the gavel.v1.Coordinator service, by lock (configured names) and the rest as "other".',
      labelNames: ['name'],
      registers,
      collect() {
        this.reset();
        const queue = coordinator();
        if (queue !== undefined) split(this, queue.waiters(), (name) => queue.queueLength(name));
      },
    });
    this.acquireWait = new Histogram({ name: 'gavel_lock_acquire_wait_seconds', help: 'Time from asking for a lock to holding it.', labelNames: ['service', 'name'], buckets: WAIT_BUCKETS, registers });
    this.handOff = new Histogram({ name: 'gavel_lock_handoff_seconds', help: "Time from a holder's release to the next waiter's grant.", labelNames: ['service', 'name'], buckets: WAIT_BUCKETS, registers });
    this.fencingRejections = new Counter({ name: 'gavel_fencing_token_rejections_total', help: 'Writes refused because the fencing token no longer belonged to a holder.', registers });
    this.sessionExpiries = new Counter({ name: 'gavel_session_expiries_total', help: 'Sessions (leases) that expired rather than being revoked or closed.', registers });
    this.electionLeaderChanges = new Counter({ name: 'gavel_election_leader_changes_total', help: 'New leaders elected through the Election service.', labelNames: ['name'], registers });
  }

  /** Reads the coordinator's holders and queues at each scrape. */
  attachCoordinator(figures: CoordinatorFigures): void {
    this.coordinator = figures;
  }

  /** The value of the `name` label: the lock name when configured, else "other". */
  label(name: string): string {
    return this.names.has(name) ? name : 'other';
  }

  /** A caller starts waiting; the returned functions end the wait as a grant or a failure. */
  waiting(service: LockService, name: string): { granted(key: string, stillHeld: () => boolean): void; failed(): void } {
    const labels = { service, name: this.label(name) };
    const started = performance.now();
    this.waiters.inc(labels);
    let open = true;
    const end = (): void => {
      if (open) this.waiters.dec(labels);
      open = false;
    };
    return {
      granted: (key, stillHeld) => {
        end();
        const now = performance.now();
        this.acquireWait.observe(labels, (now - started) / 1000);
        // A hand-off: this caller was already waiting when the previous holder let go.
        const released = this.releasedAt.get(`${service}\0${name}`);
        if (released !== undefined && released >= started) this.handOff.observe(labels, (now - released) / 1000);
        this.held.set(`${service}\0${key}`, { service, name, stillHeld });
      },
      failed: end,
    };
  }

  /** A holder released `key` of lock `name` explicitly. */
  released(service: LockService, name: string, key: string): void {
    this.held.delete(`${service}\0${key}`);
    const id = `${service}\0${name}`;
    this.releasedAt.delete(id);
    this.releasedAt.set(id, performance.now());
    if (this.releasedAt.size > RELEASES_REMEMBERED) {
      const oldest = this.releasedAt.keys().next().value;
      if (oldest !== undefined) this.releasedAt.delete(oldest);
    }
  }
}

/**
 * The client library's fencedTxn: one create_revision "==" compare guarding a single nested
 * txn, nothing on failure. When such a Txn does not succeed, a stale holder was refused.
 */
export function isFencedTxn(r: WireTxnRequest): boolean {
  const guard = r.compare?.[0];
  return r.compare?.length === 1 && guard?.target === 1 && guard.result === 0 && r.success?.length === 1 && r.success[0]?.request_txn != null && (r.failure?.length ?? 0) === 0;
}
