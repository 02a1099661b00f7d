/**
 * The coordinator queue on a 3-member cluster whose Raft leader is killed with SIGKILL: the
 * queue is replicated state, so after the failover the same holder holds with the same token,
 * the waiters keep their order (their streams re-attach through the survivors), and exclusion
 * and rising tokens hold for contenders spread over all members.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type CoordinatorMutex, type Session } from '../../client/index.js';
import { startCluster, stopAllClusters, type Cluster } from '../helpers/cluster.js';
import { clusterClient } from '../helpers/client.js';
import { repoRoot, trackChildProcess, waitUntil } from '../helpers/gavel.js';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ members: 3 });
});

afterAll(async () => {
  await stopAllClusters();
});

/** Each client starts at a different member and fails over to the others. */
function clientFor(i: number): Client {
  return clusterClient(cluster.members, i);
}

describe('3-member cluster, leader killed', () => {
  it('the queue survives: same holder and token, waiters granted in their order afterwards', async () => {
    const clients = [0, 1, 2, 3].map(clientFor);
    const sessions: Session[] = await Promise.all(clients.map((c) => c.session({ ttlSeconds: 10 })));
    const holder = await clients[0]!.coordinatorMutex('cq', { session: sessions[0]! }).lock();
    const token = holder.fencingToken;
    const granted: { who: number; token: bigint }[] = [];
    const waiting: Promise<CoordinatorMutex>[] = [];
    for (const i of [1, 2, 3]) {
      waiting.push(clients[i]!.coordinatorMutex('cq', { session: sessions[i]! }).lock().then((m) => (granted.push({ who: i, token: m.fencingToken }), m)));
      await waitUntil(`waiter ${i} queued`, async () => ((await clients[0]!.coordinator.describe('cq')).waiters.length === i ? true : undefined), 10_000, 20);
    }
    const before = await clients[0]!.coordinator.describe('cq');

    const leader = await cluster.leader();
    await cluster.kill(leader, 'SIGKILL');
    await cluster.waitForLeader();

    // Read through a survivor: the replicated queue is exactly as it was.
    const survivor = new Client({ endpoints: cluster.live().map((m) => m.endpoint) });
    const after = await waitUntil('describe after failover', () => survivor.coordinator.describe('cq', { timeoutMs: 5_000 }), 30_000, 100);
    expect(after.holders).toEqual(before.holders);
    expect(after.waiters).toEqual(before.waiters);
    expect(granted).toEqual([]);

    await holder.unlock({ timeoutMs: 30_000 });
    for (const [k, expected] of [1, 2, 3].entries()) {
      const next = await waiting[k]!;
      expect(granted.map((g) => g.who)).toEqual([1, 2, 3].slice(0, k + 1));
      expect(granted[k]!.token).toBeGreaterThan(k === 0 ? token : granted[k - 1]!.token);
      expect(next.session.leaseId).toBe(sessions[expected]!.leaseId);
      await next.unlock({ timeoutMs: 30_000 });
    }
    await cluster.restart(leader);
    await Promise.all(sessions.map((s) => s.close().catch(() => undefined)));
    for (const c of [...clients, survivor]) c.close();
  }, 120_000);

  it('6 contenders over all members, leader killed mid-run: one holder at a time, tokens rising', async () => {
    await cluster.waitForLeader();
    const contenders = 6;
    const rounds = 20;
    const clients = Array.from({ length: contenders }, (_, i) => clientFor(i));
    const sessions = await Promise.all(clients.map((c) => c.session({ ttlSeconds: 10 })));
    const tokens: bigint[] = [];
    let inside = 0;
    let killed = false;
    let victim: Awaited<ReturnType<Cluster['leader']>> | undefined;
    await Promise.all(
      sessions.map(async (session, i) => {
        const mutex = clients[i]!.coordinatorMutex('cq-contended', { session });
        for (let round = 0; round < rounds; round++) {
          await mutex.lock();
          inside++;
          expect(inside).toBe(1);
          tokens.push(mutex.fencingToken);
          await new Promise((resolve) => setTimeout(resolve, 2));
          inside--;
          await mutex.unlock({ timeoutMs: 30_000 });
          if (!killed && tokens.length >= (contenders * rounds) / 3) {
            killed = true;
            victim = await cluster.leader();
            await cluster.kill(victim, 'SIGKILL');
          }
        }
      }),
    );
    expect(killed).toBe(true);
    expect(tokens).toHaveLength(contenders * rounds);
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]!).toBeGreaterThan(tokens[i - 1]!);
    if (victim !== undefined) await cluster.restart(victim);
    await Promise.all(sessions.map((s) => s.close().catch(() => undefined)));
    for (const c of clients) c.close();
  }, 120_000);

  it('a lock-delay under way when the leader dies is served in full by the new leader, never cut short', async () => {
    await cluster.waitForLeader();
    const ttlSeconds = 2;
    const lockDelayMs = 3_000;
    const endpoints = cluster.members.map((m) => m.endpoint).join(',');
    const holder = spawn(process.execPath, [join(repoRoot(), 'dist', 'test', 'helpers', 'coordinator-holder.js'), endpoints, 'c-delay-failover', String(ttlSeconds), String(lockDelayMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
    trackChildProcess(holder);
    let out = '';
    holder.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await waitUntil('holder has the lock', () => (out.includes('"locked":true') ? true : undefined), 20_000);
    const client = clientFor(1);
    const session = await client.session({ ttlSeconds: 10 });
    const mutex = client.coordinatorMutex('c-delay-failover', { session });
    let delayedAt: number | undefined;
    const waiting = mutex.lock({ onWait: (u) => (delayedAt ??= u.delayed ? performance.now() : undefined) });
    await waitUntil('waiter queued', async () => ((await client.coordinator.describe('c-delay-failover')).waiters.length === 1 ? true : undefined), 10_000, 20);
    holder.kill('SIGKILL');
    // The holder's lease expires and the lock enters its delay; then the leader dies mid-delay.
    await waitUntil('lock delayed', () => delayedAt, 20_000, 10);
    const leader = await cluster.leader();
    await cluster.kill(leader, 'SIGKILL');
    await waiting;
    const grantedAt = performance.now();
    // A new leader runs the pending delay again in full: a failover can lengthen it, never shorten it.
    expect(grantedAt - delayedAt!).toBeGreaterThanOrEqual(lockDelayMs - 100);
    expect(mutex.fencingToken).toBeGreaterThan(BigInt(JSON.parse(out.trim().split('\n')[0]!).token as string));
    await mutex.unlock({ timeoutMs: 30_000 });
    await cluster.restart(leader);
    await session.close().catch(() => undefined);
    client.close();
  }, 120_000);
});

describe('a member that joins after the log was compacted', () => {
  it('receives the coordinator queue in its snapshot: same holder, token and waiters in order', async () => {
    const small = await startCluster({ members: 3, snapshotCount: 100 });
    const clients = [0, 1, 2].map((i) => clusterClient(small.members, i));
    try {
      const sessions = await Promise.all(clients.map((c) => c.session({ ttlSeconds: 30 })));
      const held = await clients[0]!.coordinatorMutex('c-snap', { session: sessions[0]! }).lock();
      const waiting = [1, 2].map((i) => clients[i]!.coordinatorMutex('c-snap', { session: sessions[i]! }));
      const grants: Promise<unknown>[] = [];
      for (const [n, mutex] of waiting.entries()) {
        grants.push(mutex.lock());
        await waitUntil(`waiter ${n} queued`, async () => ((await clients[0]!.coordinator.describe('c-snap')).waiters.length === n + 1 ? true : undefined), 10_000, 20);
      }
      // More entries than the log keeps behind a snapshot, so the new member can only get a snapshot.
      let written = 0;
      await Promise.all(
        Array.from({ length: 32 }, async (_, w) => {
          while (written < 5_300) {
            written++;
            await clients[w % 3]!.kv.put(`snap-fill/${w}`, String(written));
          }
        }),
      );
      const n4 = await small.addMember('n4');
      expect(n4.logs()).toContain('installing snapshot from the leader');
      const viaN4 = new Client({ endpoints: [n4.endpoint] });
      try {
        const before = await clients[0]!.coordinator.describe('c-snap');
        const seen = await viaN4.coordinator.describe('c-snap');
        expect(seen.holders.map((h) => h.token)).toEqual([held.fencingToken]);
        expect(seen.waiters.map((w) => [w.lease, w.position])).toEqual(before.waiters.map((w) => [w.lease, w.position]));
        await held.unlock();
        await grants[0];
        await waitUntil('n4 applied the hand-over', async () => ((await viaN4.coordinator.describe('c-snap')).holders[0]?.token === waiting[0]!.fencingToken ? true : undefined), 10_000, 20);
        await waiting[0]!.unlock();
        await grants[1];
        await waiting[1]!.unlock();
      } finally {
        viaN4.close();
      }
      await Promise.all(sessions.map((s) => s.close().catch(() => undefined)));
    } finally {
      for (const c of clients) c.close();
      await small.stop();
    }
  }, 150_000);
});
