// Goal: the lessor keeps etcd's replicated lease state deterministic and expires leases only on the leader, in deadline order, each handed out once per retry interval.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../server/clock.js';
import { isGavelError } from '../../server/errors.js';
import { LeaseQueue } from '../../server/lease/lease-queue.js';
import {
  Lessor,
  MAX_LEASE_ID,
  MAX_LEASE_TTL_SECONDS,
  minLeaseTtlSeconds,
  randomLeaseId,
  type LessorOptions,
} from '../../server/lease/lessor.js';

const text = (value: string): Uint8Array => new TextEncoder().encode(value);
const decode = (keys: Uint8Array[]): string[] => keys.map((key) => new TextDecoder().decode(key));

function setup(overrides: Partial<LessorOptions> = {}): { clock: ManualClock; lessor: Lessor } {
  const clock = new ManualClock(1_000);
  return { clock, lessor: new Lessor({ clock, minTtlSeconds: 2, ...overrides }) };
}

function errorCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (isGavelError(error)) return error.code;
    throw error;
  }
  return undefined;
}

describe('replicated state', () => {
  it('raises a TTL below the minimum to it, as etcd', () => {
    const { lessor } = setup({ minTtlSeconds: 5 });
    expect(lessor.grant(1n, 1)).toEqual({ id: 1n, ttlSeconds: 5 });
    expect(lessor.grant(2n, 0)).toEqual({ id: 2n, ttlSeconds: 5 });
    expect(lessor.grant(3n, 60)).toEqual({ id: 3n, ttlSeconds: 60 });
  });

  it('derives etcd\'s minimum TTL from the election timeout', () => {
    // etcd defaults: 100 ms heartbeat, 1000 ms election → 15 ticks = 1.5 s → 2 s.
    expect(minLeaseTtlSeconds(1000, 100)).toBe(2);
    expect(minLeaseTtlSeconds(5000, 500)).toBe(8);
  });

  it('refuses duplicate ids, too large TTLs, the id 0 and ids outside int64', () => {
    const { lessor } = setup();
    lessor.grant(7n, 10);
    expect(errorCode(() => lessor.grant(7n, 10))).toBe('LeaseExists');
    expect(errorCode(() => lessor.grant(8n, MAX_LEASE_TTL_SECONDS + 1))).toBe('LeaseTtlTooLarge');
    expect(lessor.grant(9n, MAX_LEASE_TTL_SECONDS).ttlSeconds).toBe(MAX_LEASE_TTL_SECONDS);
    expect(errorCode(() => lessor.grant(0n, 10))).toBe('LeaseNotFound');
    expect(errorCode(() => lessor.grant(-5n, 10))).toBe('InvalidArgument');
    expect(errorCode(() => lessor.grant(MAX_LEASE_ID + 1n, 10))).toBe('InvalidArgument');
    expect(lessor.exists(8n)).toBe(false);
  });

  it('revoke returns the attached keys sorted and forgets the lease', () => {
    const { lessor } = setup();
    lessor.grant(1n, 10);
    lessor.attach(1n, text('b'));
    lessor.attach(1n, text('a'));
    lessor.attach(1n, text('c'));
    lessor.detach(1n, text('c'));
    lessor.attach(1n, text('a')); // attaching twice keeps one copy
    expect(lessor.exists(1n)).toBe(true);
    expect(decode(lessor.timeToLive(1n)?.keys ?? [])).toEqual(['a', 'b']);
    expect(decode(lessor.revoke(1n))).toEqual(['a', 'b']);
    expect(lessor.exists(1n)).toBe(false);
    expect(lessor.timeToLive(1n)).toBeUndefined();
    expect(errorCode(() => lessor.revoke(1n))).toBe('LeaseNotFound');
    expect(errorCode(() => lessor.attach(1n, text('a')))).toBe('LeaseNotFound');
    expect(() => lessor.detach(1n, text('a'))).not.toThrow();
  });

  it('a lease whose last key is detached has no keys, and takes keys again', () => {
    const { lessor } = setup();
    lessor.grant(1n, 10);
    expect(lessor.timeToLive(1n)?.keys).toEqual([]);
    lessor.attach(1n, text('a'));
    lessor.detach(1n, text('a'));
    lessor.detach(1n, text('a')); // detaching what is not attached is a no-op
    expect(lessor.timeToLive(1n)?.keys).toEqual([]);
    lessor.attach(1n, text('b'));
    expect(decode(lessor.revoke(1n))).toEqual(['b']);
  });

  it('lists leases in id order', () => {
    const { lessor } = setup();
    for (const id of [30n, 10n, 20n]) lessor.grant(id, 10);
    expect(lessor.leases()).toEqual([10n, 20n, 30n]);
  });

  it('snapshot and restore keep ids, TTLs and checkpoints; keys are re-attached by the caller', () => {
    const { clock, lessor } = setup();
    lessor.grant(2n, 30);
    lessor.grant(1n, 10);
    lessor.checkpoint(2n, 12);
    lessor.checkpoint(99n, 5); // a lease revoked in between: ignored, as etcd
    lessor.attach(1n, text('k'));
    const snapshot = lessor.snapshot();
    expect(snapshot).toEqual([
      { id: 1n, ttlSeconds: 10, remainingTtlSeconds: 0 },
      { id: 2n, ttlSeconds: 30, remainingTtlSeconds: 12 },
    ]);
    const restored = Lessor.restore(snapshot, { clock, minTtlSeconds: 2 });
    expect(restored.snapshot()).toEqual(snapshot);
    expect(restored.isPrimary).toBe(false);
    expect(restored.timeToLive(1n)?.keys).toEqual([]);
  });
});

describe('leader-local expiry', () => {
  it('a follower keeps no deadlines and reports the granted TTL', () => {
    const { clock, lessor } = setup();
    lessor.grant(1n, 10);
    clock.advance(60_000);
    expect(lessor.expiredLeases(10)).toEqual([]);
    expect(lessor.nextExpiryMs()).toBeUndefined();
    expect(lessor.timeToLive(1n)).toEqual({ ttlSeconds: 10, grantedTtlSeconds: 10, keys: [] });
    expect(errorCode(() => lessor.renew(1n))).toBe('NotLeader');
  });

  it('promote gives every lease a full TTL from now (plus extra), demote stops expiry', () => {
    const { clock, lessor } = setup();
    lessor.grant(1n, 10);
    clock.advance(9_000); // time spent as follower does not count
    lessor.promote(500);
    expect(lessor.nextExpiryMs()).toBe(clock.now() + 10_500);
    clock.advance(10_499);
    expect(lessor.expiredLeases(10)).toEqual([]);
    clock.advance(1);
    lessor.demote();
    expect(lessor.expiredLeases(10)).toEqual([]);
    expect(lessor.nextExpiryMs()).toBeUndefined();
    lessor.promote();
    expect(lessor.expiredLeases(10)).toEqual([]);
    expect(lessor.nextExpiryMs()).toBe(clock.now() + 10_000);
  });

  it('promote uses a checkpointed remaining TTL', () => {
    const { clock, lessor } = setup();
    lessor.grant(1n, 100);
    lessor.checkpoint(1n, 7);
    lessor.promote();
    expect(lessor.nextExpiryMs()).toBe(clock.now() + 7_000);
  });

  it('remaining TTL on the leader is truncated to whole seconds', () => {
    const { clock, lessor } = setup();
    lessor.promote();
    lessor.grant(1n, 10);
    clock.advance(2_500);
    expect(lessor.timeToLive(1n)?.ttlSeconds).toBe(7);
    clock.advance(7_400);
    expect(lessor.timeToLive(1n)?.ttlSeconds).toBe(0);
  });

  it('renew pushes the deadline to now + TTL and returns the TTL', () => {
    const { clock, lessor } = setup();
    lessor.promote();
    lessor.grant(1n, 10);
    clock.advance(9_000);
    expect(lessor.renew(1n)).toBe(10);
    clock.advance(9_000);
    expect(lessor.expiredLeases(10)).toEqual([]);
    clock.advance(1_000);
    expect(lessor.expiredLeases(10)).toEqual([1n]);
    expect(errorCode(() => lessor.renew(1n))).toBe('LeaseNotFound'); // expired: only its revoke is left
    expect(errorCode(() => lessor.renew(42n))).toBe('LeaseNotFound');
  });

  it('hands out expired leases in deadline order, up to the limit', () => {
    const { clock, lessor } = setup();
    lessor.promote();
    lessor.grant(3n, 26);
    lessor.grant(1n, 10);
    lessor.grant(2n, 20);
    lessor.grant(4n, 20); // same deadline as 2: ordered by id
    clock.advance(25_000);
    expect(lessor.expiredLeases(2)).toEqual([1n, 2n]);
    expect(lessor.expiredLeases(10)).toEqual([4n]);
    clock.advance(1_000); // 3 is due; the others are inside their retry interval
    expect(lessor.expiredLeases(10)).toEqual([3n]);
  });

  it('does not hand out the same lease again before the retry interval', () => {
    const { clock, lessor } = setup({ expiredRetryMs: 3_000 });
    lessor.promote();
    lessor.grant(1n, 10);
    clock.advance(10_000);
    expect(lessor.expiredLeases(10)).toEqual([1n]);
    expect(lessor.expiredLeases(10)).toEqual([]);
    expect(lessor.nextExpiryMs()).toBe(clock.now() + 3_000);
    clock.advance(2_999);
    expect(lessor.expiredLeases(10)).toEqual([]);
    clock.advance(1); // the revoke got lost: hand it out again
    expect(lessor.expiredLeases(10)).toEqual([1n]);
    lessor.revoke(1n); // the revoke committed
    clock.advance(10_000);
    expect(lessor.expiredLeases(10)).toEqual([]);
    expect(lessor.nextExpiryMs()).toBeUndefined();
  });

  it('a keep-alive renews a lease whose deadline passed as long as it is not handed out for its revoke yet', () => {
    const { clock, lessor } = setup();
    lessor.promote();
    lessor.grant(1n, 10);
    clock.advance(10_100); // the deadline passed, but the leader has not looked yet (busy, or between rounds)
    expect(lessor.renew(1n)).toBe(10);
    clock.advance(9_999);
    expect(lessor.expiredLeases(10)).toEqual([]);
    clock.advance(1);
    expect(lessor.expiredLeases(10)).toEqual([1n]);
  });

  it('stamp() on arrival holds the lease while the answer waits; renew() answers from the arrival', () => {
    const { clock, lessor } = setup();
    lessor.promote();
    lessor.grant(1n, 3);
    clock.advance(2_000);
    const arrivedMs = lessor.stamp(1n); // the keep-alive arrived; its answer waits for the applied index
    clock.advance(2_500); // past the grant's deadline: the expiry rounds find nothing
    expect(lessor.expiredLeases(10)).toEqual([]);
    expect(lessor.renew(1n, arrivedMs)).toBe(3);
    expect(lessor.nextExpiryMs()).toBe(arrivedMs + 3_000);
    // An older keep-alive answered later never shortens a newer one's deadline.
    const later = lessor.stamp(1n);
    expect(lessor.renew(1n, arrivedMs)).toBe(3);
    expect(lessor.nextExpiryMs()).toBe(later + 3_000);
    // A lease not known yet (its grant still being applied) is stamped by renew() after the wait.
    const early = lessor.stamp(2n);
    clock.advance(100);
    lessor.grant(2n, 3);
    expect(lessor.renew(2n, early)).toBe(3);
  });

  it('once handed out for its revoke, a lease is gone for keep-alives: stamp() changes nothing, renew() is not-found', () => {
    const { clock, lessor } = setup();
    lessor.promote();
    lessor.grant(1n, 3);
    clock.advance(3_000);
    expect(lessor.expiredLeases(10)).toEqual([1n]);
    const arrivedMs = lessor.stamp(1n);
    expect(errorCode(() => lessor.renew(1n, arrivedMs))).toBe('LeaseNotFound');
    expect(lessor.nextExpiryMs()).toBe(clock.now() + 3_000); // still only the revoke's retry
    // A new leader (the revoke got lost) gives it a fresh deadline, and keep-alives renew it again.
    lessor.demote();
    lessor.promote();
    expect(lessor.renew(1n)).toBe(3);
  });

  it('a lease granted while leader counts down from the grant', () => {
    const { clock, lessor } = setup();
    lessor.promote();
    clock.advance(5_000);
    lessor.grant(1n, 3);
    expect(lessor.nextExpiryMs()).toBe(clock.now() + 3_000);
  });
});

describe('lease ids', () => {
  it('are positive and fit in 63 bits, from crypto or an injected generator', () => {
    for (let i = 0; i < 100; i++) {
      const id = randomLeaseId();
      expect(id > 0n && id <= MAX_LEASE_ID).toBe(true);
    }
    expect(randomLeaseId(() => -1n)).toBe(MAX_LEASE_ID);
    expect(randomLeaseId(() => 12345)).toBe(12345n);
    const draws = [0n, 1n << 63n, 5n]; // both first draws are 0 in 63 bits: retried
    expect(randomLeaseId(() => draws.shift() ?? 9n)).toBe(5n);
    const fraction = randomLeaseId(() => 0.5);
    expect(fraction).toBe(BigInt(2 ** 52));
  });
});

describe('lease queue', () => {
  it('pops in deadline order under random upserts and removals', () => {
    // A tiny deterministic PRNG keeps the test reproducible.
    let state = 42;
    const next = (): number => {
      // mulberry32, as integers in [0, 2^32)
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return (t ^ (t >>> 14)) >>> 0;
    };
    const queue = new LeaseQueue();
    const model = new Map<bigint, number>();
    for (let step = 0; step < 2_000; step++) {
      const id = BigInt(next() % 50);
      if (next() % 4 === 0) {
        queue.remove(id);
        model.delete(id);
      } else {
        const deadline = next() % 1000;
        queue.upsert(id, deadline);
        model.set(id, deadline);
      }
      expect(queue.size).toBe(model.size);
    }
    const expected = [...model.entries()].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1));
    const popped: [bigint, number][] = [];
    for (let top = queue.peek(); top !== undefined; top = queue.peek()) {
      popped.push([top.id, top.deadlineMs]);
      queue.remove(top.id);
    }
    expect(popped).toEqual(expected);
  });
});
