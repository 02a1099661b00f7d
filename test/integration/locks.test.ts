/**
 * Mutexes on one real member: mutual exclusion under contention with fencing, FIFO hand-over,
 * per-object exclusion, try-lock, session loss while waiting, stale holders refused, and a
 * holder process killed with SIGKILL.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Client, DeadlineExceededError, LockLostError, SessionExpiredError, compare, op, type Mutex, type Session } from '../../client/index.js';
import { repoRoot, trackChildProcess, waitUntil } from '../helpers/gavel.js';
import { memberWithClient } from '../helpers/client.js';

const fixture = memberWithClient();

/** Number of keys queued under a lock name: how tests know a waiter has joined. */
async function queued(name: string): Promise<number> {
  return Number((await fixture.client.kv.get(`${name}/`, { prefix: true, countOnly: true })).count);
}

describe('mutex', () => {
  it('16 contenders x 50 rounds: no lost update, fencing tokens rise in grant order', async () => {
    const contenders = 16;
    const rounds = 50;
    const clients = [new Client({ endpoints: [fixture.member.endpoint] }), new Client({ endpoints: [fixture.member.endpoint] })];
    const sessions = await Promise.all(Array.from({ length: contenders }, (_, i) => clients[i % 2]!.session({ ttlSeconds: 10 })));
    await fixture.client.kv.put('counter', '0');
    const grants: { counter: number; token: bigint }[] = [];
    let inside = 0;
    await Promise.all(
      sessions.map(async (session) => {
        const mutex = clients[0]!.mutex('contended', { session });
        for (let round = 0; round < rounds; round++) {
          await mutex.lock();
          inside++;
          expect(inside).toBe(1);
          // Read-modify-write of the counter, written only while the lock is still ours.
          const current = Number((await clients[1]!.kv.getOne('counter'))?.value.toString());
          grants.push({ counter: current, token: mutex.fencingToken });
          await mutex.fencedTxn({ compare: [], success: [op.put('counter', String(current + 1))] });
          inside--;
          await mutex.unlock();
        }
      }),
    );
    expect(Number((await fixture.client.kv.getOne('counter'))?.value.toString())).toBe(contenders * rounds);
    grants.sort((a, b) => a.counter - b.counter);
    expect(grants.map((g) => g.counter)).toEqual(Array.from({ length: contenders * rounds }, (_, i) => i));
    for (let i = 1; i < grants.length; i++) expect(grants[i]!.token).toBeGreaterThan(grants[i - 1]!.token);
    await Promise.all(sessions.map((s) => s.close()));
    for (const c of clients) c.close();
  }, 120_000);

  it('grants waiters in the order they queued (FIFO)', async () => {
    const sessions = await Promise.all(Array.from({ length: 5 }, () => fixture.client.session()));
    const holder = await fixture.client.mutex('fifo', { session: sessions[0]! }).lock();
    const order: number[] = [];
    const waiters: Promise<void>[] = [];
    for (let i = 1; i < sessions.length; i++) {
      const mutex = fixture.client.mutex('fifo', { session: sessions[i]! });
      waiters.push(
        mutex.lock().then(async () => {
          order.push(i);
          await mutex.unlock();
        }),
      );
      await waitUntil(`waiter ${i} queued`, async () => ((await queued('fifo')) === i + 1 ? true : undefined), 5_000, 10);
    }
    await holder.unlock();
    await Promise.all(waiters);
    expect(order).toEqual([1, 2, 3, 4]);
    await Promise.all(sessions.map((s) => s.close()));
  });

  it('two Mutex objects on one session exclude each other', async () => {
    const session = await fixture.client.session();
    const first = await fixture.client.mutex('same-session', { session }).lock();
    const second = fixture.client.mutex('same-session', { session });
    expect(await second.tryLock()).toBe(false);
    await expect(second.lock({ timeoutMs: 300 })).rejects.toBeInstanceOf(DeadlineExceededError);
    expect(await queued('same-session')).toBe(1); // the timed-out waiter left the queue
    await first.unlock();
    expect(await second.tryLock()).toBe(true);
    await second.unlock();
    await session.close();
  });

  it('a waiter fails at once when its own session is lost, and leaves no key behind', async () => {
    const [a, b] = await Promise.all([fixture.client.session(), fixture.client.session()]);
    const holder = await fixture.client.mutex('lost-waiter', { session: a! }).lock();
    const waiting = fixture.client.mutex('lost-waiter', { session: b! }).lock();
    await waitUntil('waiter queued', async () => ((await queued('lost-waiter')) === 2 ? true : undefined), 5_000, 10);
    await fixture.client.lease.revoke(b!.leaseId);
    // Whichever the waiter notices first: its key's deletion or its session's expiry.
    const error = await waiting.then(() => undefined, (e: unknown) => e);
    expect(error instanceof LockLostError || error instanceof SessionExpiredError).toBe(true);
    expect(await queued('lost-waiter')).toBe(1);
    await holder.unlock();
    await a!.close();
  });

  it("refuses a stale holder's fenced write after its lease expired and the lock moved on", async () => {
    const [a, b] = await Promise.all([fixture.client.session({ ttlSeconds: 1 }), fixture.client.session()]);
    const stale = await fixture.client.mutex('fenced', { session: a! }).lock();
    const staleToken = stale.fencingToken;
    const next = fixture.client.mutex('fenced', { session: b! }).lock();
    // The holder is cut off: its lease goes away (as when its process stalls past the TTL).
    await fixture.client.lease.revoke(a!.leaseId);
    const successor: Mutex = await next;
    expect(successor.fencingToken).toBeGreaterThan(staleToken);
    await fixture.client.kv.put('fenced/resource', 'successor');
    await expect(stale.fencedTxn({ compare: [], success: [op.put('fenced/resource', 'stale')] })).rejects.toBeInstanceOf(LockLostError);
    expect((await fixture.client.kv.getOne('fenced/resource'))?.value.toString()).toBe('successor');
    // The successor's own fenced txn runs, and reports its inner compare.
    const result = await successor.fencedTxn({ compare: [compare.value('fenced/resource', '==', 'successor')], success: [op.put('fenced/resource', 'done')] });
    expect(result.succeeded).toBe(true);
    await successor.unlock();
    await b!.close();
  });

  it('works with await using: the lock is released when the scope ends', async () => {
    const session: Session = await fixture.client.session();
    {
      await using held = await fixture.client.mutex('scoped', { session }).lock();
      expect(held.held).toBe(true);
      expect(await queued('scoped')).toBe(1);
    }
    expect(await queued('scoped')).toBe(0);
    await session.close();
  });

  it('passes the lock on within the TTL after the holder process is killed with SIGKILL', async () => {
    const ttlSeconds = 2;
    const holder = spawn(process.execPath, [join(repoRoot(), 'dist', 'test', 'helpers', 'lock-holder.js'), fixture.member.endpoint, 'killed', String(ttlSeconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
    trackChildProcess(holder);
    let out = '';
    holder.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await waitUntil('holder has the lock', () => (out.includes('"locked":true') ? true : undefined), 15_000);
    const session = await fixture.client.session();
    const mutex = fixture.client.mutex('killed', { session });
    const waiting = mutex.lock();
    await waitUntil('waiter queued', async () => ((await queued('killed')) === 2 ? true : undefined), 5_000, 10);
    const killedAt = performance.now();
    holder.kill('SIGKILL');
    await waiting;
    const handOverMs = performance.now() - killedAt;
    // The lease runs out at most one TTL after the last keep-alive; the server's expiry check adds a little.
    expect(handOverMs).toBeLessThan(ttlSeconds * 1000 + 2_000);
    expect(mutex.fencingToken).toBeGreaterThan(BigInt(JSON.parse(out.trim().split('\n')[0]!).token as string));
    await mutex.unlock();
    await session.close();
  });
});
