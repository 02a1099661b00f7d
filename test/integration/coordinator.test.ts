/**
 * The coordinator queue (gavel.v1.Coordinator) on one real member: FIFO grants with WAIT
 * positions counting down, mutual exclusion with rising fencing tokens under contention,
 * reader-writer locks without writer starvation, semaphores, CheckSequencer, deadlines and
 * aborts, and a holder killed with SIGKILL whose successor waits out TTL + lock-delay.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AbortedError, Client, DeadlineExceededError, LockLostError, SessionExpiredError, UnimplementedError, op, type CoordinatorLock, type Session, type WaitUpdate } from '../../client/index.js';
import { repoRoot, startMember, stopAllMembers, trackChildProcess, waitUntil, type Member } from '../helpers/gavel.js';

let member: Member;
let client: Client;

beforeAll(async () => {
  member = await startMember();
  client = new Client({ endpoints: [member.endpoint] });
});

afterAll(async () => {
  client.close();
  await stopAllMembers();
});

async function waiters(name: string): Promise<number> {
  return (await client.coordinator.describe(name)).waiters.length;
}

async function sessions(count: number, ttlSeconds = 10): Promise<Session[]> {
  return Promise.all(Array.from({ length: count }, () => client.session({ ttlSeconds })));
}

/** Consecutive duplicates dropped: the distinct positions a waiter went through. */
function positionsSeen(updates: readonly WaitUpdate[]): number[] {
  return updates.map((u) => u.position).filter((p, i, all) => i === 0 || p !== all[i - 1]);
}

describe('coordinator mutex', () => {
  it('grants in request order and counts each waiter position down to 1', async () => {
    const all = await sessions(6);
    const holder = await client.coordinatorMutex('c-fifo', { session: all[0]! }).lock();
    const order: number[] = [];
    const updates: WaitUpdate[][] = [];
    const waits: Promise<void>[] = [];
    for (let i = 1; i < all.length; i++) {
      const seen: WaitUpdate[] = [];
      updates.push(seen);
      const mutex = client.coordinatorMutex('c-fifo', { session: all[i]! });
      waits.push(mutex.lock({ onWait: (u) => seen.push(u) }).then(async () => {
        order.push(i);
        await mutex.unlock();
      }));
      await waitUntil(`waiter ${i} queued`, async () => ((await waiters('c-fifo')) === i ? true : undefined), 5_000, 10);
    }
    const description = await client.coordinator.describe('c-fifo');
    expect(description.holders.map((h) => h.lease)).toEqual([all[0]!.leaseId]);
    expect(description.waiters.map((w) => w.lease)).toEqual(all.slice(1).map((s) => s.leaseId));
    await holder.unlock();
    await Promise.all(waits);
    expect(order).toEqual([1, 2, 3, 4, 5]);
    // Waiter i started at position i and was told every step down: i, i-1, ..., 1.
    updates.forEach((seen, i) => expect(positionsSeen(seen)).toEqual(Array.from({ length: i + 1 }, (_, k) => i + 1 - k)));
    await Promise.all(all.map((s) => s.close()));
  });

  it('16 contenders x 50 rounds: no lost update, tokens strictly increasing in grant order', async () => {
    const contenders = 16;
    const rounds = 50;
    const clients = [new Client({ endpoints: [member.endpoint] }), new Client({ endpoints: [member.endpoint] })];
    const all = await Promise.all(Array.from({ length: contenders }, (_, i) => clients[i % 2]!.session({ ttlSeconds: 10 })));
    await client.kv.put('c-counter', '0');
    const grants: { counter: number; token: bigint }[] = [];
    let inside = 0;
    await Promise.all(
      all.map(async (session, i) => {
        const mutex = clients[i % 2]!.coordinatorMutex('c-contended', { session });
        for (let round = 0; round < rounds; round++) {
          await mutex.lock();
          inside++;
          expect(inside).toBe(1);
          const current = Number((await clients[1]!.kv.getOne('c-counter'))?.value.toString());
          grants.push({ counter: current, token: mutex.fencingToken });
          await clients[0]!.kv.put('c-counter', String(current + 1));
          inside--;
          await mutex.unlock();
        }
      }),
    );
    expect(Number((await client.kv.getOne('c-counter'))?.value.toString())).toBe(contenders * rounds);
    grants.sort((a, b) => a.counter - b.counter);
    expect(grants.map((g) => g.counter)).toEqual(Array.from({ length: contenders * rounds }, (_, i) => i));
    for (let i = 1; i < grants.length; i++) expect(grants[i]!.token).toBeGreaterThan(grants[i - 1]!.token);
    await Promise.all(all.map((s) => s.close()));
    for (const c of clients) c.close();
  }, 120_000);

  it('CheckSequencer: true for the holder, false after release and for a successor token', async () => {
    const [a, b] = await sessions(2);
    const first = await client.coordinatorMutex('c-seq', { session: a! }).lock();
    const token = first.fencingToken;
    expect(await first.checkSequencer()).toBe(true);
    expect(await client.coordinator.checkSequencer('c-seq', token)).toBe(true);
    const next = client.coordinatorMutex('c-seq', { session: b! }).lock();
    await waitUntil('waiter queued', async () => ((await waiters('c-seq')) === 1 ? true : undefined), 5_000, 10);
    await first.unlock();
    const second = await next;
    expect(second.fencingToken).toBeGreaterThan(token);
    expect(await client.coordinator.checkSequencer('c-seq', token)).toBe(false);
    const secondToken = second.fencingToken;
    expect(await client.coordinator.checkSequencer('c-seq', secondToken)).toBe(true);
    await second.unlock();
    expect(await client.coordinator.checkSequencer('c-seq', secondToken)).toBe(false);
    expect(await second.checkSequencer()).toBe(false); // not held any more
    await Promise.all([a!.close(), b!.close()]);
  });

  it('tryLock, a timeout and an abort leave no place behind; await using releases', async () => {
    const [a, b] = await sessions(2);
    const held = await client.coordinatorMutex('c-try', { session: a! }).lock();
    const other = client.coordinatorMutex('c-try', { session: b! });
    expect(await other.tryLock()).toBe(false);
    await expect(other.lock({ timeoutMs: 300 })).rejects.toBeInstanceOf(DeadlineExceededError);
    expect(await waiters('c-try')).toBe(0);
    const controller = new AbortController();
    const waiting = other.lock({ signal: controller.signal });
    await waitUntil('waiter queued', async () => ((await waiters('c-try')) === 1 ? true : undefined), 5_000, 10);
    controller.abort();
    await expect(waiting).rejects.toBeInstanceOf(AbortedError);
    await waitUntil('abandoned place removed', async () => ((await waiters('c-try')) === 0 ? true : undefined), 5_000, 10);
    await held.unlock();
    {
      await using scoped = await other.lock();
      expect(scoped.held).toBe(true);
    }
    expect((await client.coordinator.describe('c-try')).holders).toEqual([]);
    await Promise.all([a!.close(), b!.close()]);
  });

  it('a waiter whose session is lost fails at once and leaves the queue', async () => {
    const [a, b] = await sessions(2);
    const held = await client.coordinatorMutex('c-lost', { session: a! }).lock();
    const waiting = client.coordinatorMutex('c-lost', { session: b! }).lock().then(() => undefined, (e: unknown) => e);
    await waitUntil('waiter queued', async () => ((await waiters('c-lost')) === 1 ? true : undefined), 5_000, 10);
    await client.lease.revoke(b!.leaseId);
    const error = await waiting;
    expect(error instanceof LockLostError || error instanceof SessionExpiredError).toBe(true);
    expect(await waiters('c-lost')).toBe(0);
    await held.unlock();
    await a!.close();
  });

  it('reports WAIT updates as an AsyncIterable ending in GRANTED', async () => {
    const [a, b] = await sessions(2);
    const held = await client.coordinatorMutex('c-iter', { session: a! }).lock();
    const lock = client.coordinatorMutex('c-iter', { session: b! });
    const seen: string[] = [];
    const iterating = (async () => {
      for await (const update of lock.updates()) seen.push(update.type === 'wait' ? `wait ${update.position}` : 'granted');
    })();
    await waitUntil('waiting', () => (seen.length > 0 ? true : undefined), 5_000, 10);
    await held.unlock();
    await iterating;
    expect(seen).toEqual(['wait 1', 'granted']);
    expect(lock.held).toBe(true);
    // Leaving the loop before the grant gives the wait up: the place goes.
    const other = client.coordinatorMutex('c-iter', { session: a! });
    for await (const update of other.updates()) {
      expect(update).toMatchObject({ type: 'wait', position: 1 });
      break;
    }
    expect(await waiters('c-iter')).toBe(0);
    expect(other.held).toBe(false);
    await lock.unlock();
    await Promise.all([a!.close(), b!.close()]);
  });

  it('mode "coordinator" on a member: the client Mutex runs on the coordinator; fencedTxn needs the KV recipe', async () => {
    const [a] = await sessions(1);
    const mutex = await client.mutex('c-forced', { session: a!, mode: 'coordinator' }).lock();
    expect(mutex.backend).toBe('coordinator');
    expect((await client.coordinator.describe('c-forced')).holders).toHaveLength(1);
    await expect(mutex.fencedTxn({ compare: [], success: [op.put('x', 'y')] })).rejects.toBeInstanceOf(UnimplementedError);
    expect(await mutex.checkSequencer()).toBe(true);
    await mutex.unlock();
    const auto = client.mutex('c-auto', { session: a! });
    await auto.lock();
    expect(auto.backend).toBe('kv'); // the member serves KV: 'auto' keeps the KV recipe
    expect(await auto.checkSequencer()).toBe(true);
    await auto.unlock();
    await a!.close();
  });
});

describe('reader-writer lock', () => {
  it('readers overlap, writers are exclusive, and a stream of readers does not starve a writer', async () => {
    const all = await sessions(8);
    const rw = (i: number) => client.rwlock('c-rw', { session: all[i]! });
    let readers = 0;
    let writers = 0;
    let maxReaders = 0;
    const check = (): void => {
      expect(writers === 0 || (writers === 1 && readers === 0)).toBe(true);
      maxReaders = Math.max(maxReaders, readers);
    };
    const hold = async (lock: CoordinatorLock, kind: 'r' | 'w', ms: number): Promise<void> => {
      await lock.acquire();
      if (kind === 'r') readers++;
      else writers++;
      check();
      await new Promise((resolve) => setTimeout(resolve, ms));
      if (kind === 'r') readers--;
      else writers--;
      await lock.release();
    };
    // Two readers hold together.
    const r1 = rw(0).readLock();
    const r2 = rw(1).readLock();
    await r1.acquire();
    await r2.acquire();
    expect((await client.coordinator.describe('c-rw')).holders).toHaveLength(2);
    // A writer queues behind them; a stream of readers keeps arriving after it.
    const writer = rw(2).writeLock();
    let writerGrantedAt = 0;
    const writing = writer.acquire().then(() => (writerGrantedAt = performance.now()));
    await waitUntil('writer queued', async () => ((await waiters('c-rw')) === 1 ? true : undefined), 5_000, 10);
    const lateReaders: { grantedAt: number; done: Promise<void> }[] = [];
    for (let i = 3; i < 8; i++) {
      const reader = rw(i).readLock();
      const entry = { grantedAt: 0, done: Promise.resolve() };
      entry.done = reader.acquire().then(async () => {
        entry.grantedAt = performance.now();
        await reader.release();
      });
      lateReaders.push(entry);
    }
    await waitUntil('late readers queued', async () => ((await waiters('c-rw')) === 6 ? true : undefined), 5_000, 10);
    // No late reader joined the two holders: they wait behind the writer.
    expect((await client.coordinator.describe('c-rw')).holders).toHaveLength(2);
    await r1.release();
    await r2.release();
    await writing;
    await writer.release();
    await Promise.all(lateReaders.map((r) => r.done));
    for (const r of lateReaders) expect(r.grantedAt).toBeGreaterThan(writerGrantedAt);
    // And a mixed load keeps the invariant.
    await Promise.all(Array.from({ length: 8 }, (_, i) => (async () => {
      for (let round = 0; round < 5; round++) await hold(i % 3 === 0 ? rw(i).writeLock() : rw(i).readLock(), i % 3 === 0 ? 'w' : 'r', 5);
    })()));
    expect(maxReaders).toBeGreaterThan(1);
    await Promise.all(all.map((s) => s.close()));
  }, 60_000);
});

describe('semaphore', () => {
  it('never has more than N holders at once, and all get their turn', async () => {
    const limit = 3;
    const all = await sessions(10);
    let inside = 0;
    let most = 0;
    let turns = 0;
    await Promise.all(all.map(async (session) => {
      const permit = client.semaphore('c-sem', { session, limit });
      for (let round = 0; round < 5; round++) {
        await permit.acquire();
        inside++;
        most = Math.max(most, inside);
        expect(inside).toBeLessThanOrEqual(limit);
        expect((await client.coordinator.describe('c-sem')).holders.length).toBeLessThanOrEqual(limit);
        await new Promise((resolve) => setTimeout(resolve, 5));
        inside--;
        turns++;
        await permit.release();
      }
    }));
    expect(turns).toBe(50);
    expect(most).toBe(limit);
    await Promise.all(all.map((s) => s.close()));
  }, 60_000);
});

describe('a holder killed with SIGKILL', () => {
  it('the next waiter is granted after the lease TTL plus the lock-delay, not before', async () => {
    const ttlSeconds = 2;
    const lockDelayMs = 1_500;
    const holder = spawn(process.execPath, [join(repoRoot(), 'dist', 'test', 'helpers', 'coordinator-holder.js'), member.endpoint, 'c-killed', String(ttlSeconds), String(lockDelayMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
    trackChildProcess(holder);
    let out = '';
    holder.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await waitUntil('holder has the lock', () => (out.includes('"locked":true') ? true : undefined), 15_000);
    const [session] = await sessions(1);
    const mutex = client.coordinatorMutex('c-killed', { session: session! });
    let delayedAt: number | undefined;
    const waiting = mutex.lock({ onWait: (u) => (delayedAt ??= u.delayed ? performance.now() : undefined) });
    await waitUntil('waiter queued', async () => ((await waiters('c-killed')) === 1 ? true : undefined), 5_000, 10);
    const killedAt = performance.now();
    holder.kill('SIGKILL');
    await waiting;
    const grantedAt = performance.now();
    // The lease outlives the kill by at least 2/3 of its TTL (keep-alives go every TTL/3), then
    // the lock stays in its lock-delay; the waiter was told so (delayed) when the lease expired.
    expect(delayedAt).toBeDefined();
    expect(grantedAt - delayedAt!).toBeGreaterThanOrEqual(lockDelayMs - 100);
    expect(grantedAt - killedAt).toBeGreaterThanOrEqual((ttlSeconds * 1000 * 2) / 3 + lockDelayMs - 100);
    expect(grantedAt - killedAt).toBeLessThan(ttlSeconds * 1000 + lockDelayMs + 4_000);
    expect(mutex.fencingToken).toBeGreaterThan(BigInt(JSON.parse(out.trim().split('\n')[0]!).token as string));
    await mutex.unlock();
    await session!.close();
  }, 60_000);

  it('an explicit release hands over at once, with no lock-delay', async () => {
    const [a, b] = await sessions(2);
    const held = await client.coordinatorMutex('c-nodelay', { session: a!, lockDelayMs: 30_000 }).lock();
    const next = client.coordinatorMutex('c-nodelay', { session: b! }).lock();
    await waitUntil('waiter queued', async () => ((await waiters('c-nodelay')) === 1 ? true : undefined), 5_000, 10);
    const releasedAt = performance.now();
    await held.unlock();
    await next;
    expect(performance.now() - releasedAt).toBeLessThan(5_000);
    expect((await client.coordinator.describe('c-nodelay')).delayed).toBe(false);
    await (await next).unlock();
    await Promise.all([a!.close(), b!.close()]);
  });
});
