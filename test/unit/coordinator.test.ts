// Goal: the coordinator's pure core grants FIFO and deterministically (mutex, reader-writer, semaphore), frees a lease's places in one step, holds a lock in lock-delay only after an expiry, and its records restore exactly the same state.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../server/clock.js';
import { isGavelError } from '../../server/errors.js';
import { Coordinator, MAX_WAITERS_PER_LOCK, lockKey, type AcquireInput, type CoordinatorOutcome, type LockMode } from '../../server/coordinator/coordinator.js';
import { decodeRecords } from '../../server/coordinator/records.js';
import type { BatchOp } from '../../server/storage/layout.js';

const key = (name: string): string => lockKey(Buffer.from(name));

/** A coordinator driven like the applier drives it: rising indexes, a lease table, and its level records kept in a map. */
class Harness {
  readonly clock = new ManualClock(1_000);
  coordinator = new Coordinator(this.clock);
  index = 0;
  readonly leases = new Set<bigint>();
  readonly records = new Map<string, [Uint8Array, Uint8Array]>();

  constructor(leases = 40) {
    for (let i = 1; i <= leases; i++) this.leases.add(BigInt(i));
  }

  acquire(name: string, lease: number, options: Partial<AcquireInput> = {}): CoordinatorOutcome {
    const input: AcquireInput = { key: key(name), lease: BigInt(lease), owner: '', mode: 'exclusive', limit: 0, lockDelayMs: 0, reattach: false, tryOnly: false, ...options };
    const step = this.coordinator.acquire(++this.index, input, (id) => this.leases.has(id));
    this.write(step.ops);
    return step.outcome;
  }

  release(name: string, lease: number, options: { owner?: string; token?: number; waitingOnly?: boolean } = {}): boolean {
    const step = this.coordinator.release(++this.index, { key: key(name), lease: BigInt(lease), owner: options.owner ?? '', token: options.token ?? 0, waitingOnly: options.waitingOnly ?? false });
    this.write(step.ops);
    return step.outcome.type === 'released' && step.outcome.released;
  }

  endLease(lease: number, expired: boolean): ReadonlySet<string> {
    this.leases.delete(BigInt(lease));
    const step = this.coordinator.removeLease(++this.index, BigInt(lease), expired);
    this.write(step.ops);
    return step.changed;
  }

  endDelay(name: string, delayId: number): boolean {
    const step = this.coordinator.endDelay(++this.index, key(name), delayId);
    this.write(step.ops);
    return step.outcome.type === 'delayEnded' && step.outcome.ended;
  }

  holders(name: string): number[] {
    return this.coordinator.describe(key(name)).holders.map((h) => Number(h.lease));
  }

  waiters(name: string): number[] {
    return this.coordinator.describe(key(name)).waiters.map((w) => Number(w.lease));
  }

  token(name: string, lease: number): number {
    const view = this.coordinator.place(key(name), BigInt(lease), '');
    if (view?.state !== 'holder') throw new Error(`${lease} does not hold ${name}`);
    return view.token;
  }

  position(name: string, lease: number): number {
    const view = this.coordinator.place(key(name), BigInt(lease), '');
    if (view?.state !== 'waiter') throw new Error(`${lease} does not wait for ${name}`);
    return view.position;
  }

  /** A coordinator rebuilt from the records written so far. */
  restored(): Coordinator {
    return Coordinator.restore(decodeRecords(this.records.values()), this.clock);
  }

  private write(ops: readonly BatchOp[]): void {
    for (const op of ops) {
      expect(op.space).toBe('coord');
      const id = Buffer.from(op.key).toString('hex');
      if (op.type === 'put') this.records.set(id, [op.key, op.value]);
      else this.records.delete(id);
    }
  }
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

/** Everything observable, for comparing two coordinators. */
function picture(coordinator: Coordinator, names: readonly string[]): unknown {
  return { lastToken: coordinator.lastToken, locks: names.map((n) => coordinator.describe(key(n))) };
}

describe('mutex (EXCLUSIVE)', () => {
  it('grants in request order and counts positions down as holders release', () => {
    const h = new Harness();
    expect(h.acquire('m', 1)).toEqual({ type: 'granted', token: 1 });
    expect(h.acquire('m', 2)).toEqual({ type: 'waiting', position: 1 });
    expect(h.acquire('m', 3)).toEqual({ type: 'waiting', position: 2 });
    expect(h.acquire('m', 4)).toEqual({ type: 'waiting', position: 3 });
    const order: number[] = [];
    const positions: number[][] = [];
    for (let round = 0; round < 4; round++) {
      const holder = h.holders('m')[0]!;
      order.push(holder);
      positions.push(h.waiters('m').map((lease) => h.position('m', lease)));
      h.release('m', holder);
    }
    expect(order).toEqual([1, 2, 3, 4]);
    expect(positions).toEqual([[1, 2, 3], [1, 2], [1], []]);
    expect(h.coordinator.lockCount).toBe(0); // an empty lock is forgotten
  });

  it('fencing tokens are the grant indexes, strictly increasing, and CheckSequencer follows the holder', () => {
    const h = new Harness();
    h.acquire('m', 1);
    h.acquire('m', 2);
    const first = h.token('m', 1);
    expect(h.coordinator.checkSequencer(key('m'), first)).toBe(true);
    h.release('m', 1);
    const second = h.token('m', 2);
    expect(second).toBe(h.index); // granted by the release entry: its index
    expect(second).toBeGreaterThan(first);
    expect(h.coordinator.checkSequencer(key('m'), first)).toBe(false);
    expect(h.coordinator.checkSequencer(key('m'), second)).toBe(true);
    h.release('m', 2);
    expect(h.coordinator.checkSequencer(key('m'), second)).toBe(false);
  });

  it('re-attaches to the same place by (name, lease, owner); owners tell places of one lease apart', () => {
    const h = new Harness();
    h.acquire('m', 1);
    h.acquire('m', 2);
    expect(h.acquire('m', 2)).toEqual({ type: 'waiting', position: 1 });
    expect(h.acquire('m', 1)).toEqual({ type: 'granted', token: 1 });
    expect(h.acquire('m', 2, { owner: 'b' })).toEqual({ type: 'waiting', position: 2 });
    expect(h.waiters('m')).toEqual([2, 2]);
    expect(errorCode(() => h.acquire('m', 3, { reattach: true }))).toBe('LockPlaceNotFound');
  });

  it('TryAcquire grants only a free lock with nobody waiting, and never queues', () => {
    const h = new Harness();
    expect(h.acquire('m', 1, { tryOnly: true })).toEqual({ type: 'granted', token: 1 });
    expect(h.acquire('m', 2, { tryOnly: true })).toEqual({ type: 'busy' });
    expect(h.waiters('m')).toEqual([]);
    expect(h.acquire('m', 1, { tryOnly: true })).toEqual({ type: 'granted', token: 1 }); // already the holder
  });

  it('a release with a stale token or of a held place with waitingOnly frees nothing', () => {
    const h = new Harness();
    h.acquire('m', 1);
    const token = h.token('m', 1);
    expect(h.release('m', 1, { token: token + 1 })).toBe(false);
    expect(h.release('m', 1, { waitingOnly: true })).toBe(false);
    expect(h.release('m', 1, { token })).toBe(true);
    expect(h.release('m', 1)).toBe(false);
  });

  it('refuses unknown leases, a mismatched limit and a full queue, changing nothing', () => {
    const h = new Harness(2);
    expect(errorCode(() => h.acquire('m', 99))).toBe('LeaseNotFound');
    h.acquire('s', 1, { mode: 'shared', limit: 3 });
    expect(errorCode(() => h.acquire('s', 2, { mode: 'shared', limit: 4 }))).toBe('LockLimitMismatch');
    // One holder, then a full queue of waiters.
    for (let i = 0; i <= MAX_WAITERS_PER_LOCK; i++) h.acquire('full', 1, { owner: String(i) });
    expect(errorCode(() => h.acquire('full', 2))).toBe('LockQueueFull');
    expect(h.waiters('full')).toHaveLength(MAX_WAITERS_PER_LOCK);
  });
});

describe('reader-writer lock (SHARED readers, EXCLUSIVE writers)', () => {
  it('readers overlap, a writer holds alone', () => {
    const h = new Harness();
    h.acquire('rw', 1, { mode: 'shared' });
    h.acquire('rw', 2, { mode: 'shared' });
    expect(h.holders('rw')).toEqual([1, 2]);
    expect(h.acquire('rw', 3, { mode: 'exclusive' })).toEqual({ type: 'waiting', position: 1 });
    h.release('rw', 1);
    expect(h.holders('rw')).toEqual([2]);
    h.release('rw', 2);
    expect(h.holders('rw')).toEqual([3]);
  });

  it('a stream of readers cannot starve a waiting writer (FIFO)', () => {
    const h = new Harness();
    h.acquire('rw', 1, { mode: 'shared' });
    h.acquire('rw', 2, { mode: 'exclusive' });
    // Readers keep arriving and leaving; each queues behind the writer instead of joining reader 1.
    let lease = 3;
    for (let i = 0; i < 10; i++) expect(h.acquire('rw', lease++, { mode: 'shared' }).type).toBe('waiting');
    h.release('rw', 1);
    expect(h.holders('rw')).toEqual([2]);
    h.release('rw', 2);
    // The writer's release grants all ten readers at once, in one entry, with distinct tokens.
    expect(h.holders('rw')).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const tokens = h.coordinator.describe(key('rw')).holders.map((x) => x.token);
    expect(new Set(tokens).size).toBe(10);
    expect(tokens).toEqual([...tokens].sort((a, b) => a - b));
    expect(tokens[0]).toBe(h.index);
  });
});

describe('semaphore (SHARED with limit N)', () => {
  it('never has more than N holders and grants FIFO, under random acquires, releases and lease ends', () => {
    const limit = 3;
    const h = new Harness(30);
    let seed = 42;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let lastToken = 0;
    for (let step = 0; step < 2_000; step++) {
      const lease = 1 + random(30);
      const action = random(10);
      if (!h.leases.has(BigInt(lease))) h.leases.add(BigInt(lease));
      else if (action < 5) h.acquire('sem', lease, { mode: action === 0 ? 'exclusive' : 'shared', limit });
      else if (action < 9) h.release('sem', lease);
      else h.endLease(lease, random(2) === 0);
      const lock = h.coordinator.describe(key('sem'));
      expect(lock.holders.length).toBeLessThanOrEqual(limit);
      if (lock.holders.some((x) => x.mode === 'exclusive')) expect(lock.holders).toHaveLength(1);
      // FIFO: the head waiter is not grantable (else it would have been granted).
      const head = lock.waiters[0];
      if (head !== undefined) expect(head.mode === 'exclusive' ? lock.holders.length > 0 : lock.holders.length === limit || lock.holders.some((x) => x.mode === 'exclusive')).toBe(true);
      for (const holder of lock.holders) if (holder.token > lastToken) lastToken = holder.token;
      expect(h.coordinator.lastToken).toBe(Math.max(lastToken, h.coordinator.lastToken));
    }
    expect(picture(h.restored(), ['sem'])).toEqual(picture(h.coordinator, ['sem']));
  });

  it('an EXCLUSIVE request on a semaphore takes all permits', () => {
    const h = new Harness();
    h.acquire('sem', 1, { mode: 'shared', limit: 2 });
    expect(h.acquire('sem', 2, { mode: 'exclusive', limit: 2 }).type).toBe('waiting');
    expect(h.acquire('sem', 3, { mode: 'shared', limit: 2 }).type).toBe('waiting');
    h.release('sem', 1);
    expect(h.holders('sem')).toEqual([2]);
  });
});

describe('leases and lock-delay', () => {
  it("a lease's end frees all its places in one step; a waiter's place just goes", () => {
    const h = new Harness();
    h.acquire('a', 1);
    h.acquire('b', 1);
    h.acquire('a', 2);
    h.acquire('b', 2);
    h.acquire('c', 3);
    h.acquire('c', 1);
    const changed = h.endLease(1, true);
    expect([...changed].sort()).toEqual([key('a'), key('b'), key('c')]);
    expect(h.holders('a')).toEqual([2]);
    expect(h.holders('b')).toEqual([2]);
    expect(h.waiters('c')).toEqual([]);
    expect(h.coordinator.describe(key('c')).delayed).toBe(false); // 1 only waited for c
  });

  it('an expired holder with a lock-delay blocks grants until the end-delay entry; a revoke does not', () => {
    const h = new Harness();
    h.coordinator.promote();
    h.acquire('d', 1, { lockDelayMs: 5_000 });
    h.acquire('d', 2);
    h.endLease(1, true);
    const delayId = h.index;
    expect(h.holders('d')).toEqual([]);
    expect(h.coordinator.describe(key('d')).delayed).toBe(true);
    expect(h.coordinator.place(key('d'), 2n, '')).toMatchObject({ state: 'waiter', position: 1, delayed: true });
    expect(h.coordinator.dueDelays(10)).toEqual([]);
    h.clock.advance(4_999);
    expect(h.coordinator.dueDelays(10)).toEqual([]);
    h.clock.advance(1);
    expect(h.coordinator.dueDelays(10)).toEqual([{ key: key('d'), delayId }]);
    expect(h.coordinator.dueDelays(10)).toEqual([]); // handed out once per retry interval
    expect(h.endDelay('d', delayId - 1)).toBe(false); // a stale end
    expect(h.holders('d')).toEqual([]);
    expect(h.endDelay('d', delayId)).toBe(true);
    expect(h.holders('d')).toEqual([2]);
    // The same with an explicit revoke: the next waiter is granted at once.
    h.acquire('d', 3, { lockDelayMs: 5_000 });
    h.endLease(2, false);
    expect(h.holders('d')).toEqual([3]);
    expect(h.coordinator.describe(key('d')).delayed).toBe(false);
  });

  it('no lock-delay without one asked for, and a delay survives restore; a new leader runs it in full', () => {
    const h = new Harness();
    h.acquire('z', 1);
    h.acquire('z', 2);
    h.endLease(1, true);
    expect(h.holders('z')).toEqual([2]);
    h.acquire('d', 3, { lockDelayMs: 1_000 });
    h.endLease(3, true);
    const restored = h.restored();
    expect(restored.describe(key('d')).delayed).toBe(true);
    expect(restored.dueDelays(10)).toEqual([]); // not the leader
    restored.promote();
    h.clock.advance(999);
    expect(restored.dueDelays(10)).toEqual([]);
    h.clock.advance(1);
    expect(restored.dueDelays(10)).toHaveLength(1);
  });

  it('is deterministic: a coordinator restored mid-way reaches the same state and tokens', () => {
    const h = new Harness();
    const modes: LockMode[] = ['exclusive', 'shared'];
    for (let i = 1; i <= 12; i++) h.acquire(i % 2 === 0 ? 'x' : 'y', i, { mode: modes[i % 3 === 0 ? 0 : 1]! });
    const twin = new Harness();
    twin.coordinator = h.restored();
    twin.index = h.index;
    for (const lease of h.leases) twin.leases.add(lease);
    const script = (x: Harness): void => {
      x.endLease(3, true);
      x.release('x', 2);
      x.acquire('x', 20);
      x.endLease(4, false);
      x.release('y', 1);
    };
    script(h);
    script(twin);
    expect(picture(twin.coordinator, ['x', 'y'])).toEqual(picture(h.coordinator, ['x', 'y']));
    expect(picture(h.restored(), ['x', 'y'])).toEqual(picture(h.coordinator, ['x', 'y']));
  });
});
