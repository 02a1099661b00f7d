// Goal: a session kept alive on time never expires, however many idle leases the leader holds and however far its applied index lags, and the leader's lease work per round does not grow with the number of leases — proved on a fake clock, no sleeps.
import { describe, expect, it } from 'vitest';
import type { Mutation } from '../../server/apply/request.js';
import { ManualClock } from '../../server/clock.js';
import { isGavelError } from '../../server/errors.js';
import { renewOnLeader, type KeepAliveLeader } from '../../server/lease/keep-alive.js';
import { afterInputTurn, LEASE_CHECKPOINT_ROUND_MS, LEASE_EXPIRY_ROUND_MS, LeaseDuties } from '../../server/lease/leader-duties.js';
import { Lessor } from '../../server/lease/lessor.js';
import { silentLogger } from '../../server/log.js';

const STEP_MS = 10;
const CHECKPOINT_INTERVAL_MS = 5000;
/** What applying one entry costs the leader, and each lease in a checkpoint entry (main spent ~2.5 s CPU per 200,000). */
const ENTRY_COST_MS = 0.2;
const CHECKPOINT_COST_MS_PER_LEASE = 0.0125;
const SESSION = 1n;
const SESSION_TTL_SECONDS = 3;

/**
 * The leader of a one-member cluster on a fake clock, with the real lessor and duties. A proposal
 * commits at once and applies after everything before it: the applier works through the log one
 * entry after another, each taking its cost in clock time. Meanwhile timers fire and keep-alives
 * arrive, as they do while the real member awaits its disk writes.
 */
class BusyLeader {
  readonly clock = new ManualClock(0);
  readonly lessor = new Lessor({ clock: this.clock, minTtlSeconds: 1, checkpointIntervalMs: CHECKPOINT_INTERVAL_MS });
  readonly duties = new LeaseDuties({ lessor: () => this.lessor, isLeader: () => true, propose: (m) => this.propose(m), logger: silentLogger });
  /** Leases handed out for their revoke, and the size of every checkpoint round. */
  readonly expired: bigint[] = [];
  readonly checkpointRounds: number[] = [];
  private readonly log: { readonly finishMs: number; readonly apply: () => void; readonly done: () => void }[] = [];
  private applierFreeAtMs = 0;
  private committed = 0;
  private applied = 0;
  private readonly caughtUpWaiters: { readonly index: number; readonly resolve: () => void }[] = [];

  constructor() {
    this.lessor.promote(0);
  }

  /** The leader as renewOnLeader sees it. */
  readonly answering: KeepAliveLeader = { lessor: () => this.lessor, isLeader: () => true, caughtUp: () => this.caughtUp() };

  caughtUp(): Promise<void> {
    const index = this.committed;
    if (this.applied >= index) return Promise.resolve();
    return new Promise((resolve) => this.caughtUpWaiters.push({ index, resolve }));
  }

  /** Other clients' writes: entries that cost the applier `totalMs` in all. */
  load(totalMs: number, entries: number): void {
    for (let i = 0; i < entries; i++) this.append(totalMs / entries, () => undefined);
  }

  propose(mutation: Mutation): Promise<void> {
    const checkpoints = mutation.lease_checkpoint?.checkpoints ?? [];
    const expire = mutation.lease_expire;
    return this.append(ENTRY_COST_MS + checkpoints.length * CHECKPOINT_COST_MS_PER_LEASE, () => {
      for (const c of checkpoints) this.lessor.checkpoint(BigInt(c.ID), Number(c.remaining_TTL));
      if (expire !== undefined && expire !== null && this.lessor.exists(BigInt(expire.ID))) this.lessor.revoke(BigInt(expire.ID));
    });
  }

  /** Advances the clock by stepMs: entries finished meanwhile apply, then the rounds due run, as the member's timers would. */
  async step(): Promise<void> {
    this.clock.advance(STEP_MS);
    const now = this.clock.now();
    while (this.log.length > 0 && this.log[0]!.finishMs <= now) {
      const entry = this.log.shift()!;
      entry.apply();
      this.applied++;
      entry.done();
    }
    for (const waiter of this.caughtUpWaiters.splice(0)) {
      if (waiter.index <= this.applied) waiter.resolve();
      else this.caughtUpWaiters.push(waiter);
    }
    if (now % LEASE_EXPIRY_ROUND_MS === 0) this.expired.push(...this.duties.expireRound());
    if (now % LEASE_CHECKPOINT_ROUND_MS === 0) this.checkpointRounds.push(this.duties.checkpointRound());
    await new Promise<void>((resolve) => setImmediate(resolve)); // answers whose wait ended go out
  }

  private append(costMs: number, apply: () => void): Promise<void> {
    this.committed++;
    const finishMs = Math.max(this.applierFreeAtMs, this.clock.now()) + costMs;
    this.applierFreeAtMs = finishMs;
    return new Promise((done) => this.log.push({ finishMs, apply, done }));
  }
}

interface SessionRun {
  readonly answers: number[];
  readonly slowestAnswerMs: number;
  readonly leader: BusyLeader;
}

/**
 * 200,000 idle leases, a 3 s session whose client sends a keep-alive every second, and bursts of
 * other clients' writes that keep the applied index 2.5 s behind every 7 s. `answer` is how the
 * leader answers one keep-alive; the answers are the TTLs the client got (0 = "lease gone").
 */
async function keepSessionAlive(answer: (leader: BusyLeader, id: bigint) => Promise<number>): Promise<SessionRun> {
  const leader = new BusyLeader();
  for (let id = 2; id <= 200_001; id++) leader.lessor.grant(BigInt(id), 3600);
  leader.lessor.grant(SESSION, SESSION_TTL_SECONDS);
  const answers: number[] = [];
  let slowestAnswerMs = 0;
  for (let tick = 1; tick <= 60_000 / STEP_MS; tick++) {
    await leader.step();
    const now = leader.clock.now();
    if (now % 7000 === 3000) leader.load(2500, 50);
    if (now % 1000 === 370) {
      const sentMs = now;
      void answer(leader, SESSION).then(
        (ttl) => {
          answers.push(ttl);
          slowestAnswerMs = Math.max(slowestAnswerMs, leader.clock.now() - sentMs);
        },
        (error: unknown) => {
          if (!isGavelError(error, 'LeaseNotFound')) throw error;
          answers.push(0);
        },
      );
    }
  }
  for (let tick = 0; tick < 1000 && answers.length < 60; tick++) await leader.step();
  return { answers, slowestAnswerMs, leader };
}

describe('a session under load', () => {
  it('kept alive on time, it never expires: keep-alives count from their arrival, not from their answer', async () => {
    const run = await keepSessionAlive(async (leader, id) => {
      const answer = await renewOnLeader(leader.answering, id);
      expect(answer).toBeDefined();
      return answer!.ttlSeconds;
    });
    // The load was real: some answers waited longer than the session's slack (TTL minus the client's interval)...
    expect(run.slowestAnswerMs).toBeGreaterThan((SESSION_TTL_SECONDS - 1) * 1000);
    // ...and yet every keep-alive renewed the lease, and the leader never expired it.
    expect(run.answers).toHaveLength(60);
    expect(run.answers.every((ttl) => ttl === SESSION_TTL_SECONDS)).toBe(true);
    expect(run.leader.expired).not.toContain(SESSION);
    expect(run.leader.lessor.exists(SESSION)).toBe(true);
  }, 60_000);

  it('answering at the renew instead (the keep-alive counted only once the applied index caught up) loses it under the same load', async () => {
    const run = await keepSessionAlive(async (leader, id) => {
      await leader.caughtUp();
      return leader.lessor.renew(id);
    });
    expect(run.leader.expired).toContain(SESSION);
    expect(run.answers).toContain(0);
  }, 60_000);

  it('checkpoint rounds stay within their bound with 200,000 leases, and the idle ones still get their checkpoints', async () => {
    const run = await keepSessionAlive(async (leader, id) => (await renewOnLeader(leader.answering, id))!.ttlSeconds);
    const rounds = run.leader.checkpointRounds;
    expect(rounds.length).toBeGreaterThanOrEqual(60_000 / LEASE_CHECKPOINT_ROUND_MS);
    expect(Math.max(...rounds)).toBeLessThanOrEqual(run.leader.duties.checkpointsPerRound);
    expect(run.leader.duties.checkpointsPerRound).toBe(500);
    // 1,000 a second from the first due time (5 s) on: 55,000 of the 200,000 in the first minute.
    expect(rounds.reduce((sum, n) => sum + n, 0)).toBeGreaterThanOrEqual(50_000);
  }, 60_000);
});

describe('afterInputTurn', () => {
  it('runs the round after one I/O turn, or more turns while something keeps delaying it (at most 8)', () => {
    const clock = new ManualClock(0);
    const turns: (() => void)[] = [];
    const defer = (callback: () => void): void => {
      turns.push(callback);
    };
    let rounds = 0;
    const turn = (delayMs: number): void => {
      clock.advance(delayMs);
      turns.shift()!();
    };
    afterInputTurn(clock, () => rounds++, defer);
    turn(1);
    expect(rounds).toBe(1);
    afterInputTurn(clock, () => rounds++, defer);
    turn(500); // a stall before the check phase: keep-alives may wait unread; poll once more
    expect(rounds).toBe(1);
    turn(2);
    expect(rounds).toBe(2);
    afterInputTurn(clock, () => rounds++, defer);
    for (let i = 0; i < 7; i++) turn(500);
    expect(rounds).toBe(2);
    turn(500); // busy for 8 turns in a row: decide anyway
    expect(rounds).toBe(3);
    expect(turns).toHaveLength(0);
  });
});
