/**
 * Locks and elections on a 3-member cluster whose Raft leader is killed with SIGKILL mid-run:
 * mutual exclusion and fencing hold, the queue survives the failover, and observers agree.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, isClientError, op, type LeaderChange, type Session } from '../../client/index.js';
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

describe('3-member cluster, leader killed mid-run', () => {
  it('mutex: exclusion and fencing hold through a leader failover', async () => {
    const contenders = 8;
    const rounds = 25;
    const clients = Array.from({ length: contenders }, (_, i) => clientFor(i));
    const sessions: Session[] = await Promise.all(clients.map((c) => c.session({ ttlSeconds: 10 })));
    await clients[0]!.kv.put('cluster-counter', '0');
    const acked: { read: number; token: bigint }[] = [];
    let indeterminate = 0;
    let inside = 0;
    let killed = false;
    const run = sessions.map(async (session, i) => {
      const client = clients[i]!;
      const mutex = client.mutex('cluster-lock', { session });
      for (let round = 0; round < rounds; round++) {
        await mutex.lock();
        inside++;
        expect(inside).toBe(1);
        const read = Number((await client.kv.getOne('cluster-counter', { timeoutMs: 30_000 }))?.value.toString());
        try {
          await mutex.fencedTxn({ compare: [], success: [op.put('cluster-counter', String(read + 1))] }, { timeoutMs: 30_000 });
          acked.push({ read, token: mutex.fencingToken });
        } catch (error) {
          // A write cut off by the failover may or may not have applied; anything else is a failure.
          if (!isClientError(error) || !['LeaderChanged', 'Unavailable', 'DeadlineExceeded', 'Timeout'].includes(error.code)) throw error;
          indeterminate++;
        }
        inside--;
        await mutex.unlock({ timeoutMs: 30_000 });
        if (!killed && acked.length >= (contenders * rounds) / 3) {
          killed = true;
          const leader = await cluster.leader();
          await cluster.kill(leader, 'SIGKILL');
          setTimeout(() => void cluster.restart(leader), 2_000);
        }
      }
    });
    await Promise.all(run);
    expect(killed).toBe(true);
    // No lost update: every acknowledged write started from a distinct value, in token order.
    acked.sort((a, b) => a.read - b.read);
    for (let i = 1; i < acked.length; i++) {
      expect(acked[i]!.read).toBeGreaterThan(acked[i - 1]!.read);
      expect(acked[i]!.token).toBeGreaterThan(acked[i - 1]!.token);
    }
    const final = Number((await clients[0]!.kv.getOne('cluster-counter'))?.value.toString());
    expect(final).toBeGreaterThanOrEqual(acked.length);
    expect(final).toBeLessThanOrEqual(acked.length + indeterminate);
    await Promise.all(sessions.map((s) => s.close().catch(() => undefined)));
    for (const c of clients) c.close();
  }, 120_000);

  it('election: leadership hands over in order and observers agree, through a leader failover', async () => {
    await cluster.waitForLeader();
    const stop = new AbortController();
    const observers = [0, 1, 2].map((i) => {
      const changes: string[] = [];
      const done = (async () => {
        for await (const change of clientFor(i).election('cluster-election').observe({ signal: stop.signal }) as AsyncIterable<LeaderChange>) {
          changes.push(change.leader?.value.toString() ?? '-');
        }
      })();
      return { changes, done };
    });
    const clients = [0, 1, 2].map(clientFor);
    const sessions = await Promise.all(clients.map((c) => c.session({ ttlSeconds: 10 })));
    const elections = sessions.map((session, i) => clients[i]!.election('cluster-election', { session }));
    const order: string[] = [];
    const campaigns: Promise<void>[] = [];
    for (const [i, election] of elections.entries()) {
      campaigns.push(election.campaign(`c${i}`).then(() => void order.push(`c${i}`)));
      await waitUntil(`c${i} queued`, async () => ((await clients[0]!.kv.get('cluster-election/', { prefix: true, countOnly: true })).count === BigInt(i + 1) ? true : undefined), 10_000, 20);
    }
    await waitUntil('c0 leads', () => (order.length === 1 ? true : undefined), 10_000, 20);
    const leader = await cluster.leader();
    await cluster.kill(leader, 'SIGKILL');
    await elections[0]!.resign({ timeoutMs: 30_000 });
    await waitUntil('c1 leads', () => (order.length === 2 ? true : undefined), 30_000, 20);
    await cluster.restart(leader);
    await elections[1]!.resign({ timeoutMs: 30_000 });
    await Promise.all(campaigns);
    expect(order).toEqual(['c0', 'c1', 'c2']);
    const expected = ['-', 'c0', 'c1', 'c2'];
    await waitUntil('observers caught up', () => (observers.every((o) => o.changes.length === expected.length) ? true : undefined), 30_000, 20);
    stop.abort();
    await Promise.all(observers.map((o) => o.done));
    for (const o of observers) expect(o.changes).toEqual(expected);
    await Promise.all(sessions.map((s) => s.close().catch(() => undefined)));
    for (const c of clients) c.close();
  }, 120_000);

  it('a holder process killed with SIGKILL: the lock passes on within the TTL, in FIFO order, with the leader also killed', async () => {
    await cluster.waitForLeader();
    const ttlSeconds = 3;
    const endpoints = cluster.members.map((m) => m.endpoint).join(',');
    const holder = spawn(process.execPath, [join(repoRoot(), 'dist', 'test', 'helpers', 'lock-holder.js'), endpoints, 'cluster-killed', String(ttlSeconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
    trackChildProcess(holder);
    let out = '';
    holder.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await waitUntil('holder has the lock', () => (out.includes('"locked":true') ? true : undefined), 20_000);
    const clients = [0, 1].map(clientFor);
    const sessions = await Promise.all(clients.map((c) => c.session({ ttlSeconds: 10 })));
    const order: number[] = [];
    const waiters: Promise<void>[] = [];
    for (const [i, session] of sessions.entries()) {
      const mutex = clients[i]!.mutex('cluster-killed', { session });
      waiters.push(mutex.lock().then(async () => {
        order.push(i);
        await mutex.unlock({ timeoutMs: 30_000 });
      }));
      await waitUntil(`waiter ${i} queued`, async () => ((await clients[0]!.kv.get('cluster-killed/', { prefix: true, countOnly: true })).count === BigInt(i + 2) ? true : undefined), 10_000, 20);
    }
    const leader = await cluster.leader();
    holder.kill('SIGKILL');
    await cluster.kill(leader, 'SIGKILL');
    const killedAt = performance.now();
    await Promise.all(waiters);
    // TTL, plus a new leader's election and its lease grace (max(election timeout, 1 s)).
    expect(performance.now() - killedAt).toBeLessThan(ttlSeconds * 1000 + 3 * cluster.electionTimeoutMs + 3_000);
    expect(order).toEqual([0, 1]);
    await cluster.restart(leader);
    await Promise.all(sessions.map((s) => s.close().catch(() => undefined)));
    for (const c of clients) c.close();
  }, 120_000);
});
