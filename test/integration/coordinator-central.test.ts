/**
 * `gavel --mode central` end to end: the KV API answers UNIMPLEMENTED, the client's default
 * ('auto') mutex therefore runs on the coordinator, and the process can be killed with SIGKILL
 * and restarted with holders and waiters in place: the holder still holds with its token, the
 * waiters re-attach to their places, and the queue moves on in order with rising tokens.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, UnimplementedError, type Mutex, type Session, type WaitUpdate } from '../../client/index.js';
import { repoRoot, startMember, stopAllMembers, trackChildProcess, waitUntil, type Member } from '../helpers/gavel.js';

let central: Member;
let client: Client;

beforeAll(async () => {
  central = await startMember({ args: ['--mode', 'central'] });
  client = new Client({ endpoints: [central.endpoint] });
});

afterAll(async () => {
  client.close();
  await stopAllMembers();
});

async function waiters(name: string): Promise<number> {
  return (await client.coordinator.describe(name)).waiters.length;
}

describe('gavel --mode central', () => {
  it('serves Lease and Coordinator only; the auto mutex picks the coordinator', async () => {
    await expect(client.kv.put('k', 'v')).rejects.toBeInstanceOf(UnimplementedError);
    const session = await client.session({ ttlSeconds: 5 });
    const mutex = client.mutex('central-auto', { session });
    expect(mutex.backend).toBeUndefined();
    await mutex.lock();
    expect(mutex.backend).toBe('coordinator');
    expect(await mutex.checkSequencer()).toBe(true);
    expect((await client.coordinator.describe('central-auto')).holders.map((h) => h.token)).toEqual([mutex.fencingToken]);
    await mutex.unlock();
    await session.close();
  });

  it('8 contenders x 25 rounds with the auto mutex: one holder at a time, tokens rising', async () => {
    const sessions = await Promise.all(Array.from({ length: 8 }, () => client.session({ ttlSeconds: 10 })));
    let inside = 0;
    let counter = 0;
    const tokens: bigint[] = [];
    await Promise.all(
      sessions.map(async (session) => {
        const mutex = client.mutex('central-contended', { session });
        for (let round = 0; round < 25; round++) {
          await mutex.lock();
          inside++;
          expect(inside).toBe(1);
          const read = counter;
          await new Promise((resolve) => setImmediate(resolve));
          counter = read + 1;
          tokens.push(mutex.fencingToken);
          inside--;
          await mutex.unlock();
        }
      }),
    );
    expect(counter).toBe(200);
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]!).toBeGreaterThan(tokens[i - 1]!);
    await Promise.all(sessions.map((s) => s.close()));
  }, 60_000);

  it('a SIGKILL and restart keep the holder and the queue; waiters re-attach and are granted in order', async () => {
    const sessions: Session[] = await Promise.all(Array.from({ length: 3 }, () => client.session({ ttlSeconds: 15 })));
    const holder = await client.mutex('central-restart', { session: sessions[0]! }).lock();
    const token = holder.fencingToken;
    const granted: { who: number; token: bigint }[] = [];
    const updates: WaitUpdate[][] = [[], []];
    const waiting: Promise<Mutex>[] = [1, 2].map((i) =>
      client
        .mutex('central-restart', { session: sessions[i]!, mode: 'coordinator' })
        .lock({ onWait: (u) => updates[i - 1]!.push(u) })
        .then((m) => {
          granted.push({ who: i, token: m.fencingToken });
          return m;
        }),
    );
    await waitUntil('two waiters', async () => ((await waiters('central-restart')) === 2 ? true : undefined), 5_000, 10);
    const before = await client.coordinator.describe('central-restart');

    await central.kill('SIGKILL');
    await central.restart();

    // The same holder with the same token, the same waiters in the same order, from the journal.
    const after = await waitUntil('served again', () => client.coordinator.describe('central-restart', { timeoutMs: 2_000 }), 20_000, 100);
    expect(after.holders).toEqual(before.holders);
    expect(after.waiters).toEqual(before.waiters);
    expect(after.holders[0]!.token).toBe(token);
    expect(await holder.checkSequencer()).toBe(true);
    // The holder's lease got its TTL again at restart and its session kept it alive.
    expect(sessions.every((s) => s.state !== 'expired')).toBe(true);
    await holder.unlock();
    const first = await waiting[0]!;
    expect(granted.map((g) => g.who)).toEqual([1]);
    expect(granted[0]!.token).toBeGreaterThan(token);
    await first.unlock();
    const second = await waiting[1]!;
    expect(granted.map((g) => g.who)).toEqual([1, 2]);
    expect(granted[1]!.token).toBeGreaterThan(granted[0]!.token);
    await second.unlock();
    // Through the restart each waiter kept its place: its positions never went up (a waiter whose
    // stream was down during a step just did not hear of it).
    for (const [i, seen] of updates.entries()) {
      const positions = seen.map((u) => u.position);
      expect(positions[0]).toBe(i + 1);
      for (let k = 1; k < positions.length; k++) expect(positions[k]!).toBeLessThanOrEqual(positions[k - 1]!);
    }
    await Promise.all(sessions.map((s) => s.close()));
  }, 90_000);

  it('a holder process killed with SIGKILL: the next waiter is granted after its TTL and lock-delay', async () => {
    const holder = spawn(process.execPath, [join(repoRoot(), 'dist', 'test', 'helpers', 'coordinator-holder.js'), central.endpoint, 'central-killed', '2', '500', 'auto'], { stdio: ['ignore', 'pipe', 'inherit'] });
    trackChildProcess(holder);
    let out = '';
    holder.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await waitUntil('holder has the lock', () => (out.includes('"locked":true') ? true : undefined), 15_000);
    const session = await client.session({ ttlSeconds: 10 });
    const mutex = client.mutex('central-killed', { session });
    const waiting = mutex.lock();
    await waitUntil('waiter queued', async () => ((await waiters('central-killed')) === 1 ? true : undefined), 5_000, 10);
    const killedAt = performance.now();
    holder.kill('SIGKILL');
    await waiting;
    const waitedMs = performance.now() - killedAt;
    expect(waitedMs).toBeGreaterThanOrEqual((2_000 * 2) / 3 + 500 - 100);
    expect(waitedMs).toBeLessThan(2_000 + 500 + 4_000);
    await mutex.unlock();
    await session.close();
  }, 60_000);
});
