// Goal: the v3lock and v3election services answer as etcd 3.4's do (keys, LeaderKey, errors), etcdctl's lock and elect work, and gavel's additions (a waiter with an expired lease fails at once; try_lock and wait_ms) hold.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { Client } from '../../client/index.js';
import { loadGrpc } from '../../server/proto.js';
import { spawnEtcdctl, startMember, stopAllMembers, targetFromEnv, waitUntil, etcdctl, type Member } from '../helpers/gavel.js';

const gavelOnly = targetFromEnv() === 'gavel' ? it : it.skip;

let member: Member;
let client: Client;
let lock: grpc.Client;
let election: grpc.Client;

beforeAll(async () => {
  member = await startMember();
  client = new Client({ endpoints: [member.endpoint] });
  const tree = loadGrpc() as unknown as Record<string, Record<string, grpc.ServiceClientConstructor>>;
  lock = new tree['v3lockpb']!['Lock']!(member.endpoint, grpc.credentials.createInsecure());
  election = new tree['v3electionpb']!['Election']!(member.endpoint, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client.close();
  lock.close();
  election.close();
  await stopAllMembers();
});

type Reply = { ok: true; value: Record<string, unknown> } | { ok: false; code: number; details: string };

function call(service: grpc.Client, method: string, request: object, timeoutMs = 10_000): Promise<Reply> {
  return new Promise((resolve) => {
    const fn = (service as unknown as Record<string, (r: object, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v: unknown) => void) => void>)[method]!;
    fn.call(service, request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (error, value) =>
      resolve(error ? { ok: false, code: error.code, details: error.details } : { ok: true, value: value as Record<string, unknown> }),
    );
  });
}

function ok(reply: Reply): Record<string, unknown> {
  if (!reply.ok) throw new Error(`call failed: ${reply.code} ${reply.details}`);
  return reply.value;
}

describe('v3lockpb.Lock', () => {
  it('grants name/<lease hex>, queues a second lease until Unlock, and orders by create revision', async () => {
    const a = await client.lease.grant(30);
    const b = await client.lease.grant(30);
    const first = ok(await call(lock, 'Lock', { name: Buffer.from('svc'), lease: String(a.id) }));
    expect((first['key'] as Buffer).toString()).toBe(`svc/${a.id.toString(16)}`);
    let secondDone = false;
    const second = call(lock, 'Lock', { name: Buffer.from('svc'), lease: String(b.id) }).then((r) => {
      secondDone = true;
      return r;
    });
    await waitUntil('second queued', async () => ((await client.kv.get('svc/', { prefix: true, countOnly: true })).count === 2n ? true : undefined), 5_000, 10);
    await new Promise((r) => setTimeout(r, 200));
    expect(secondDone).toBe(false);
    ok(await call(lock, 'Unlock', { key: first['key'] }));
    const granted = ok(await second);
    expect((granted['key'] as Buffer).toString()).toBe(`svc/${b.id.toString(16)}`);
    ok(await call(lock, 'Unlock', { key: granted['key'] }));
  });

  it('refuses an unknown lease as etcd does (Unknown, "etcdserver: requested lease not found")', async () => {
    const reply = await call(lock, 'Lock', { name: Buffer.from('svc'), lease: '12345' });
    expect(reply).toMatchObject({ ok: false, code: grpc.status.UNKNOWN, details: 'etcdserver: requested lease not found' });
  });

  gavelOnly('fails a waiter at once when its lease expires while it waits (never grants it)', async () => {
    const holder = await client.lease.grant(30);
    const waiter = await client.lease.grant(30);
    const held = ok(await call(lock, 'Lock', { name: Buffer.from('expiring'), lease: String(holder.id) }));
    const waiting = call(lock, 'Lock', { name: Buffer.from('expiring'), lease: String(waiter.id) });
    await waitUntil('waiter queued', async () => ((await client.kv.get('expiring/', { prefix: true, countOnly: true })).count === 2n ? true : undefined), 5_000, 10);
    await client.lease.revoke(waiter.id);
    expect(await waiting).toMatchObject({ ok: false, code: grpc.status.UNKNOWN, details: 'etcdserver: requested lease not found' });
    ok(await call(lock, 'Unlock', { key: held['key'] }));
  });

  gavelOnly('try_lock and wait_ms answer "not acquired" definitively and leave no key behind', async () => {
    const holder = await client.lease.grant(30);
    const other = await client.lease.grant(30);
    const held = ok(await call(lock, 'Lock', { name: Buffer.from('try'), lease: String(holder.id) }));
    expect(await call(lock, 'Lock', { name: Buffer.from('try'), lease: String(other.id), try_lock: true })).toMatchObject({ ok: false, code: grpc.status.ABORTED, details: 'gavel: lock is held by another session' });
    expect(await call(lock, 'Lock', { name: Buffer.from('try'), lease: String(other.id), wait_ms: '200' })).toMatchObject({ ok: false, code: grpc.status.ABORTED });
    expect((await client.kv.get('try/', { prefix: true, countOnly: true })).count).toBe(1n);
    ok(await call(lock, 'Unlock', { key: held['key'] }));
    const free = ok(await call(lock, 'Lock', { name: Buffer.from('try'), lease: String(other.id), try_lock: true }));
    expect((free['key'] as Buffer).toString()).toBe(`try/${other.id.toString(16)}`);
  });
});

describe('v3electionpb.Election', () => {
  it('campaigns, reports the leader, proclaims, observes and resigns like etcd', async () => {
    const empty = await call(election, 'Leader', { name: Buffer.from('vote') });
    expect(empty).toMatchObject({ ok: false, code: grpc.status.UNKNOWN, details: 'election: no leader' });

    const lease = await client.lease.grant(30);
    const campaign = ok(await call(election, 'Campaign', { name: Buffer.from('vote'), lease: String(lease.id), value: Buffer.from('v1') }));
    const leader = campaign['leader'] as { name: Buffer; key: Buffer; rev: string; lease: string };
    expect(leader.name.toString()).toBe('vote');
    expect(leader.key.toString()).toBe(`vote/${lease.id.toString(16)}`);
    expect(leader.lease).toBe(String(lease.id));

    const observed: string[] = [];
    const stream = (election as unknown as { Observe: (r: object) => grpc.ClientReadableStream<{ kv: { value: Buffer } }> }).Observe({ name: Buffer.from('vote') });
    stream.on('data', (r) => observed.push(r.kv.value.toString()));
    stream.on('error', () => undefined);
    await waitUntil('observer saw v1', () => (observed.length === 1 ? true : undefined), 5_000, 10);

    ok(await call(election, 'Proclaim', { leader, value: Buffer.from('v2') }));
    const current = ok(await call(election, 'Leader', { name: Buffer.from('vote') }));
    expect((current['kv'] as { value: Buffer }).value.toString()).toBe('v2');
    await waitUntil('observer saw v2', () => (observed.length === 2 ? true : undefined), 5_000, 10);
    expect(observed).toEqual(['v1', 'v2']);
    stream.cancel();

    ok(await call(election, 'Resign', { leader }));
    expect(await call(election, 'Proclaim', { leader, value: Buffer.from('v3') })).toMatchObject({ ok: false, code: grpc.status.UNKNOWN, details: 'election: not leader' });
    expect(await call(election, 'Leader', { name: Buffer.from('vote') })).toMatchObject({ ok: false, details: 'election: no leader' });
  });

  it('answers Resign and Proclaim without a leader field as etcd does: Unknown, "leader" field must be provided', async () => {
    const missing = { ok: false, code: grpc.status.UNKNOWN, details: '"leader" field must be provided' };
    expect(await call(election, 'Resign', {})).toMatchObject(missing);
    expect(await call(election, 'Proclaim', { value: Buffer.from('v') })).toMatchObject(missing);
  });
});

describe('etcdctl lock and elect', () => {
  it('etcdctl lock excludes a gavel client Mutex on the same name, both ways', async () => {
    const session = await client.session();
    const mutex = await client.mutex('shared', { session }).lock();
    const locker = spawnEtcdctl(member.endpoint, ['lock', 'shared', '--', 'echo', 'critical section'], { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 500));
    expect(locker.stdout()).not.toContain('critical section');
    await mutex.unlock();
    const result = await locker.done;
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('critical section');

    // etcdctl holding the lock (printing its key and waiting) keeps our Mutex out.
    const holder = spawnEtcdctl(member.endpoint, ['lock', 'shared'], { timeoutMs: 20_000 });
    await holder.waitFor((out) => out.includes('shared/'));
    const other = client.mutex('shared', { session });
    expect(await other.tryLock()).toBe(false);
    await holder.stop();
    await other.lock({ timeoutMs: 10_000 });
    await other.unlock();
    await session.close();
  });

  it('etcdctl elect campaigns, and etcdctl elect -l sees the leader and the next one', async () => {
    const observer = spawnEtcdctl(member.endpoint, ['elect', '-l', 'ctl-election'], { timeoutMs: 20_000 });
    const first = spawnEtcdctl(member.endpoint, ['elect', 'ctl-election', 'alpha'], { timeoutMs: 20_000 });
    await first.waitFor((out) => out.includes('alpha'));
    await observer.waitFor((out) => out.includes('alpha'));
    const session = await client.session();
    const ours = client.election('ctl-election', { session });
    const campaign = ours.campaign('beta');
    await new Promise((r) => setTimeout(r, 300));
    expect((await ours.leader())?.value.toString()).toBe('alpha');
    await first.stop(); // etcdctl resigns on SIGTERM... or its lease expires
    await campaign;
    await observer.waitFor((out) => out.includes('beta'), 15_000);
    await observer.stop();
    const leaderNow = await etcdctl(member.endpoint, ['get', '--prefix', 'ctl-election/', '--print-value-only']);
    expect(leaderNow.stdout).toContain('beta');
    await session.close();
  });
});
