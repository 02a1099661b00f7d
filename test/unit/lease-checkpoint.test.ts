// Goal: lease checkpoints bound an abandoned lease's life across leader changes at a cost that does not grow with the number of leases, and a keep-alive after a checkpoint is never cut short by a failover.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../server/clock.js';
import { Lessor } from '../../server/lease/lessor.js';

const TTL_SECONDS = 10;
const ELECTION_MS = 1000;
const CHECKPOINT_MS = 5000;
/** The leader's checkpoint rounds (server/lease/leader-duties.ts): a due checkpoint waits for the next one. */
const ROUND_MS = 500;
const STEP_MS = 10;
/** The lease's grant (its last keep-alive) falls between two rounds, as a client's would. */
const GRANT_AT_MS = 130;

/**
 * One replicated lessor; a "leader change" = demote, then promote again as a new leader would
 * (instantly: the election's own time only eats into the grace). The lease's last keep-alive is
 * its grant. Returns how long after it the leader hands the lease out for its revoke, or undefined.
 */
function abandonedLeaseLife(options: { checkpoints: boolean; changesAtMs: readonly number[]; horizonMs: number }): number | undefined {
  const clock = new ManualClock(0);
  const lessor = new Lessor({ clock, minTtlSeconds: 1, ...(options.checkpoints ? { checkpointIntervalMs: CHECKPOINT_MS } : {}) });
  lessor.promote(ELECTION_MS);
  const changes = new Set(options.changesAtMs.map((at) => GRANT_AT_MS + at));
  while (clock.now() < GRANT_AT_MS + options.horizonMs) {
    clock.advance(STEP_MS);
    if (clock.now() === GRANT_AT_MS) lessor.grant(1n, TTL_SECONDS);
    if (lessor.expiredLeases(10).includes(1n)) return clock.now() - GRANT_AT_MS;
    // The checkpoint entry applies on every member (here: the one lessor) as soon as it commits.
    if (clock.now() % ROUND_MS === 0) for (const c of lessor.dueCheckpoints(100, ROUND_MS)) lessor.checkpoint(c.id, c.remainingTtlSeconds);
    if (changes.has(clock.now())) {
      lessor.demote();
      lessor.promote(ELECTION_MS);
    }
  }
  return undefined;
}

function every(intervalMs: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => (i + 1) * intervalMs);
}

describe('lease checkpoints', () => {
  it('without them, a leader change every 6 s keeps an abandoned lease alive forever (the bug they fix)', () => {
    expect(abandonedLeaseLife({ checkpoints: false, changesAtMs: every(6000, 100), horizonMs: 600_000 })).toBeUndefined();
  });

  it('with them, across one leader change at any moment, an abandoned lease is revoked within TTL + election timeout + checkpoint interval', () => {
    const bound = TTL_SECONDS * 1000 + ELECTION_MS + CHECKPOINT_MS;
    for (let changeAt = 50; changeAt <= 20_000; changeAt += 50) {
      const expiredAt = abandonedLeaseLife({ checkpoints: true, changesAtMs: [changeAt], horizonMs: 120_000 });
      expect(expiredAt, `change at ${changeAt} ms`).toBeDefined();
      expect(expiredAt!, `change at ${changeAt} ms`).toBeLessThanOrEqual(bound);
      // Never early: not before the TTL itself.
      expect(expiredAt!, `change at ${changeAt} ms`).toBeGreaterThanOrEqual(TTL_SECONDS * 1000);
    }
  });

  it('each further leader change adds at most the checkpoint interval, and no more than the time between changes', () => {
    for (const spacingMs of [1000, 2000, 3000, 4500, 6000, 7000, 9000]) {
      for (const count of [1, 2, 5, 20]) {
        const changesAtMs = every(spacingMs, count);
        const expiredAt = abandonedLeaseLife({ checkpoints: true, changesAtMs, horizonMs: 600_000 });
        const before = changesAtMs.filter((at) => expiredAt === undefined || at < expiredAt).length;
        const bound = TTL_SECONDS * 1000 + ELECTION_MS + before * Math.min(spacingMs, CHECKPOINT_MS);
        expect(expiredAt, `${count} changes ${spacingMs} ms apart`).toBeDefined();
        expect(expiredAt!, `${count} changes ${spacingMs} ms apart`).toBeLessThanOrEqual(bound);
        expect(expiredAt!, `${count} changes ${spacingMs} ms apart`).toBeGreaterThanOrEqual(TTL_SECONDS * 1000);
      }
    }
    // Changes further apart than an interval end it even if they never stop.
    expect(abandonedLeaseLife({ checkpoints: true, changesAtMs: every(6000, 100), horizonMs: 600_000 })).toBeLessThanOrEqual(60_000);
  });

  it('a keep-alive after a checkpoint reports the stale checkpoint once, so the leader clears it', () => {
    const clock = new ManualClock(0);
    const lessor = new Lessor({ clock, minTtlSeconds: 1, checkpointIntervalMs: CHECKPOINT_MS });
    lessor.promote(0);
    lessor.grant(7n, TTL_SECONDS);
    clock.advance(8000);
    for (const c of lessor.dueCheckpoints(10)) lessor.checkpoint(c.id, c.remainingTtlSeconds);
    expect(lessor.snapshot()[0]!.remainingTtlSeconds).toBe(2);
    lessor.renew(7n);
    expect(lessor.takeStaleCheckpoint(7n)).toBe(true);
    expect(lessor.takeStaleCheckpoint(7n)).toBe(false);
    // After the clear, a new leader gives the renewed lease its full TTL (plus its grace).
    lessor.demote();
    lessor.promote(ELECTION_MS);
    clock.advance(TTL_SECONDS * 1000);
    expect(lessor.expiredLeases(10)).toEqual([]);
    clock.advance(ELECTION_MS);
    expect(lessor.expiredLeases(10)).toEqual([7n]);
  });

  it('a renew between a checkpoint\'s proposal and its apply still clears it (the clear applies after)', () => {
    const clock = new ManualClock(0);
    const lessor = new Lessor({ clock, minTtlSeconds: 1, checkpointIntervalMs: CHECKPOINT_MS });
    lessor.promote(0);
    lessor.grant(9n, TTL_SECONDS);
    clock.advance(7000);
    const inFlight = lessor.dueCheckpoints(10); // proposed, not applied yet
    expect(inFlight).toEqual([{ id: 9n, remainingTtlSeconds: 3 }]);
    lessor.renew(9n);
    expect(lessor.takeStaleCheckpoint(9n)).toBe(true);
    // Log order: the stale checkpoint applies, then the clear proposed after it.
    for (const c of inFlight) lessor.checkpoint(c.id, c.remainingTtlSeconds);
    lessor.checkpoint(9n, 0);
    expect(lessor.snapshot()[0]!.remainingTtlSeconds).toBe(0);
  });
});

describe('checkpoint cost', () => {
  it('only leases a failover could extend by more than an interval are scheduled, one interval after the log last knew their countdown', () => {
    const clock = new ManualClock(0);
    const lessor = new Lessor({ clock, minTtlSeconds: 1, checkpointIntervalMs: CHECKPOINT_MS });
    lessor.promote(0);
    lessor.grant(1n, 5); // no longer than the interval: a failover extends it by at most its TTL
    lessor.grant(2n, 3600);
    expect(lessor.scheduledCheckpoints).toBe(1);
    expect(lessor.nextCheckpointMs()).toBe(CHECKPOINT_MS);
    clock.advance(4000);
    lessor.renew(2n); // the log's view (full TTL, no checkpoint yet) is exact again
    expect(lessor.nextCheckpointMs()).toBe(4000 + CHECKPOINT_MS);
    clock.advance(CHECKPOINT_MS);
    expect(lessor.dueCheckpoints(10)).toEqual([{ id: 2n, remainingTtlSeconds: 3595 }]);
    expect(lessor.dueCheckpoints(10)).toEqual([]); // next one an interval later
    expect(lessor.nextCheckpointMs()).toBe(clock.now() + CHECKPOINT_MS);
    // Handed out for its revoke: no more checkpoints for it.
    clock.advance(3600_000);
    expect(lessor.expiredLeases(10)).toEqual([1n, 2n]);
    expect(lessor.scheduledCheckpoints).toBe(0);
    // Without an interval (a member that never fails over) nothing is scheduled at all.
    const off = new Lessor({ clock, minTtlSeconds: 1 });
    off.promote(0);
    off.grant(3n, 3600);
    expect(off.scheduledCheckpoints).toBe(0);
  });

  it('with 200,000 idle leases a round hands out at most its limit, and every lease still gets its checkpoint in turn', () => {
    const clock = new ManualClock(0);
    const lessor = new Lessor({ clock, minTtlSeconds: 1, checkpointIntervalMs: CHECKPOINT_MS });
    lessor.promote(0);
    const leases = 200_000;
    for (let id = 1; id <= leases; id++) lessor.grant(BigInt(id), id % 2 === 0 ? 3600 : 3); // half too short to need one
    expect(lessor.scheduledCheckpoints).toBe(leases / 2);
    const limit = 500;
    const seen = new Set<bigint>();
    let rounds = 0;
    clock.advance(CHECKPOINT_MS);
    while (seen.size < leases / 2 && rounds < 1000) {
      const due = lessor.dueCheckpoints(limit);
      expect(due.length).toBeLessThanOrEqual(limit);
      for (const c of due) seen.add(c.id);
      rounds++;
      clock.advance(ROUND_MS);
    }
    expect(seen.size).toBe(leases / 2);
    expect(rounds).toBe(leases / 2 / limit);
    expect([...seen].every((id) => id % 2n === 0n)).toBe(true);
  });
});
