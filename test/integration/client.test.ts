/**
 * The TypeScript client against a real member: KV, leases, typed errors, watch resumption,
 * sessions, and failover across endpoints.
 */
import { describe, expect, it } from 'vitest';
import { Client, SessionExpiredError, CompactedError, DeadlineExceededError, InvalidArgumentError, LeaseNotFoundError, AbortedError, compare, op, type WatchBatch } from '../../client/index.js';
import { waitUntil } from '../helpers/gavel.js';
import { memberWithClient } from '../helpers/client.js';

const fixture = memberWithClient();

describe('KV', () => {
  it('puts, gets with revisions as bigint, deletes, and runs txns with typed compares', async () => {
    const put = await fixture.client.kv.put('client/a', '1');
    expect(typeof put.header.revision).toBe('bigint');
    const got = await fixture.client.kv.getOne('client/a');
    expect(got?.value.toString()).toBe('1');
    expect(got?.createRevision).toBe(put.header.revision);

    const txn = await fixture.client.kv.txn({
      compare: [compare.value('client/a', '==', '1')],
      success: [op.put('client/a', '2'), op.get('client/a')],
      failure: [op.get('client/a')],
    });
    expect(txn.succeeded).toBe(true);
    const after = txn.results[1];
    expect(after?.type === 'range' && after.kvs[0]?.value.toString()).toBe('2');

    await fixture.client.kv.put('client/b', 'x');
    const prefix = await fixture.client.kv.get('client/', { prefix: true, sort: { target: 'key', order: 'descend' } });
    expect(prefix.kvs.map((kv) => kv.key.toString())).toEqual(['client/b', 'client/a']);
    const deleted = await fixture.client.kv.delete('client/', { prefix: true, prevKv: true });
    expect(deleted.deleted).toBe(2n);
  });

  it('turns server errors into typed errors', async () => {
    await expect(fixture.client.kv.put('', 'v')).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(fixture.client.kv.put('k', 'v', { lease: 12345n })).rejects.toBeInstanceOf(LeaseNotFoundError);
    const { header } = await fixture.client.kv.put('client/compact', '1');
    await fixture.client.kv.put('client/compact', '2');
    await fixture.client.kv.compact(header.revision + 1n);
    await expect(fixture.client.kv.get('client/compact', { revision: header.revision })).rejects.toBeInstanceOf(CompactedError);
  });

  it('honours AbortSignal and timeouts', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(fixture.client.kv.get('x', { signal: controller.signal })).rejects.toBeInstanceOf(AbortedError);
    // No member listens here: the call retries until its deadline, then says so.
    const dead = new Client({ endpoints: ['127.0.0.1:1'], backoffBaseMs: 10 });
    await expect(dead.kv.get('x', { timeoutMs: 300 })).rejects.toBeInstanceOf(DeadlineExceededError);
    dead.close();
  });
});

describe('leases', () => {
  it('grants, reports and revokes with bigint ids', async () => {
    const lease = await fixture.client.lease.grant(30);
    expect(typeof lease.id).toBe('bigint');
    await fixture.client.kv.put('client/leased', 'v', { lease: lease.id });
    const ttl = await fixture.client.lease.timeToLive(lease.id, { keys: true });
    expect(ttl.grantedTtlSeconds).toBe(30);
    expect(ttl.keys.map((k) => k.toString())).toEqual(['client/leased']);
    await fixture.client.lease.revoke(lease.id);
    expect(await fixture.client.kv.getOne('client/leased')).toBeUndefined();
    expect((await fixture.client.lease.timeToLive(lease.id)).ttlSeconds).toBe(-1);
  });
});

describe('watch', () => {
  it('delivers events as an async iterable, from a start revision', async () => {
    const first = await fixture.client.kv.put('client/w', '1');
    await fixture.client.kv.put('client/w', '2');
    const watcher = fixture.client.watch('client/w', { startRevision: first.header.revision });
    const seen: string[] = [];
    for await (const batch of watcher) {
      for (const e of batch.events) seen.push(`${e.type}:${e.kv.value.toString()}`);
      if (seen.length === 2) break;
    }
    expect(seen).toEqual(['put:1', 'put:2']);
  });

  it('resumes after the member restarts, with no event lost or repeated', async () => {
    const watcher = fixture.client.watch('client/resume/', { prefix: true });
    await watcher.ready();
    const values: string[] = [];
    const consumer = (async () => {
      for await (const batch of watcher as AsyncIterable<WatchBatch>) {
        for (const e of batch.events) values.push(e.kv.value.toString());
        if (values.length >= 6) return;
      }
    })();
    for (let i = 0; i < 3; i++) await fixture.client.kv.put(`client/resume/${i}`, String(i));
    await fixture.member.restart();
    for (let i = 3; i < 6; i++) await fixture.client.kv.put(`client/resume/${i}`, String(i), { timeoutMs: 15_000 });
    await consumer;
    expect(values).toEqual(['0', '1', '2', '3', '4', '5']);
  });
});

describe('session', () => {
  it('keeps its lease alive past the TTL, and close() revokes it', async () => {
    const session = await fixture.client.session({ ttlSeconds: 1 });
    await new Promise((r) => setTimeout(r, 2_500));
    expect(session.state).toBe('alive');
    expect((await fixture.client.lease.timeToLive(session.leaseId)).ttlSeconds).toBeGreaterThan(0);
    await session.close();
    expect(session.signal.aborted).toBe(true);
    expect((await fixture.client.lease.timeToLive(session.leaseId)).ttlSeconds).toBe(-1);
  });

  it('expires, and aborts its signal, when the lease is revoked behind its back', async () => {
    const session = await fixture.client.session({ ttlSeconds: 1 });
    const expired = new Promise((resolve) => session.once('expired', resolve));
    await fixture.client.lease.revoke(session.leaseId);
    await expired;
    expect(session.state).toBe('expired');
    expect(session.signal.aborted).toBe(true);
  });
});

describe('session health', () => {
  it('reports jeopardy while keep-alives go unanswered, then recovered', async () => {
    const session = await fixture.client.session({ ttlSeconds: 6 });
    const events: string[] = [];
    session.on('jeopardy', () => events.push('jeopardy'));
    session.on('recovered', () => events.push('recovered'));
    session.on('expired', () => events.push('expired'));
    // A stalled member (SIGSTOP) answers nothing: keep-alives become overdue, not yet the lease.
    await fixture.member.kill('SIGSTOP');
    try {
      await waitUntil('jeopardy', () => (events.includes('jeopardy') ? true : undefined), 10_000, 20);
      expect(session.state).toBe('jeopardy');
    } finally {
      await fixture.member.kill('SIGCONT');
    }
    await waitUntil('recovered', () => (events.includes('recovered') ? true : undefined), 10_000, 20);
    expect(events).toEqual(['jeopardy', 'recovered']);
    expect(session.signal.aborted).toBe(false);
    await session.close();
  });

  it('expires on the fixture.client once a whole TTL passes without a confirmed keep-alive', async () => {
    const session = await fixture.client.session({ ttlSeconds: 2 });
    const expired = new Promise((resolve) => session.once('expired', resolve));
    await fixture.member.kill('SIGSTOP');
    try {
      await expired;
      expect(session.state).toBe('expired');
      expect(session.signal.reason).toBeInstanceOf(SessionExpiredError);
    } finally {
      await fixture.member.kill('SIGCONT');
    }
  });
});
