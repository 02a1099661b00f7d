// Goal: lease checkpoints bound an abandoned lease's life under repeated leader changes, and a keep-alive after a checkpoint is never cut short by a failover.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../server/clock.js';
import { Lessor } from '../../server/lease/lessor.js';

const TTL_SECONDS = 10;
const ELECTION_MS = 1000;
const CHECKPOINT_MS = 5000;

/** One replicated lessor; "failover" = demote, then promote again as a new leader would. */
function failoverSchedule(options: { checkpoints: boolean; termMs: number; horizonMs: number }): number | undefined {
  const clock = new ManualClock(0);
  const lessor = new Lessor({ clock, minTtlSeconds: 1 });
  lessor.promote(ELECTION_MS);
  lessor.grant(1n, TTL_SECONDS);
  const applyCheckpoints = (): void => {
    for (const c of lessor.checkpoints()) lessor.checkpoint(c.id, c.remainingTtlSeconds);
  };
  let sinceCheckpoint = 0;
  for (let now = 0; now <= options.horizonMs; now += 100) {
    clock.advance(100);
    sinceCheckpoint += 100;
    if (lessor.expiredLeases(10).includes(1n)) return clock.now();
    if (options.checkpoints && sinceCheckpoint >= CHECKPOINT_MS) {
      applyCheckpoints();
      sinceCheckpoint = 0;
    }
    if (clock.now() % options.termMs === 0) {
      lessor.demote();
      lessor.promote(ELECTION_MS);
      // The new leader checkpoints as soon as it leads; the entry commits a little later.
      if (options.checkpoints) {
        clock.advance(50);
        applyCheckpoints();
      }
      sinceCheckpoint = 0;
    }
  }
  return undefined;
}

describe('lease checkpoints', () => {
  it('without them, failovers every 2 s keep an abandoned lease alive forever (the bug they fix)', () => {
    expect(failoverSchedule({ checkpoints: false, termMs: 2000, horizonMs: 120_000 })).toBeUndefined();
  });

  it('with them, an abandoned lease expires within TTL + election timeout + checkpoint interval', () => {
    const bound = TTL_SECONDS * 1000 + ELECTION_MS + CHECKPOINT_MS;
    for (const termMs of [1000, 1500, 2000, 3000, 7000, 20_000]) {
      const expiredAt = failoverSchedule({ checkpoints: true, termMs, horizonMs: 120_000 });
      expect(expiredAt, `term ${termMs} ms`).toBeDefined();
      expect(expiredAt!, `term ${termMs} ms`).toBeLessThanOrEqual(bound);
      // Never early: not before the TTL itself.
      expect(expiredAt!, `term ${termMs} ms`).toBeGreaterThanOrEqual(TTL_SECONDS * 1000);
    }
  });

  it('a keep-alive after a checkpoint reports the stale checkpoint once, so the leader clears it', () => {
    const clock = new ManualClock(0);
    const lessor = new Lessor({ clock, minTtlSeconds: 1 });
    lessor.promote(0);
    lessor.grant(7n, TTL_SECONDS);
    clock.advance(8000);
    for (const c of lessor.checkpoints()) lessor.checkpoint(c.id, c.remainingTtlSeconds);
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
    const lessor = new Lessor({ clock, minTtlSeconds: 1 });
    lessor.promote(0);
    lessor.grant(9n, TTL_SECONDS);
    clock.advance(7000);
    const inFlight = lessor.checkpoints(); // proposed, not applied yet
    lessor.renew(9n);
    expect(lessor.takeStaleCheckpoint(9n)).toBe(true);
    // Log order: the stale checkpoint applies, then the clear proposed after it.
    for (const c of inFlight) lessor.checkpoint(c.id, c.remainingTtlSeconds);
    lessor.checkpoint(9n, 0);
    expect(lessor.snapshot()[0]!.remainingTtlSeconds).toBe(0);
  });
});
