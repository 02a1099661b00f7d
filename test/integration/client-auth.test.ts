/**
 * The client library against a member with auth enabled: it logs in with a user name and
 * password, sends the token on calls and streams, logs in again when the token expires, and a
 * user's permissions bound what its locks and elections can do.
 */
import { describe, expect, it } from 'vitest';
import { Client, InvalidArgumentError, PermissionDeniedError, op } from '../../client/index.js';
import { etcdctl } from '../helpers/gavel.js';
import { memberWithClient } from '../helpers/client.js';

const fixture = memberWithClient({ name: 'client-auth', args: ['--auth-token-ttl', '2'] });

async function ctl(args: string[]): Promise<void> {
  const result = await etcdctl(fixture.member.endpoint, args);
  if (result.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${result.stderr}`);
}

describe('client library with auth', () => {
  it('logs in, keeps working after its token expires, and is bound by its role', async () => {
    await ctl(['user', 'add', 'root:rootpw']);
    await ctl(['role', 'add', 'app']);
    await ctl(['role', 'grant-permission', 'app', 'readwrite', 'app/', '--prefix']);
    await ctl(['user', 'add', 'app:apppw']);
    await ctl(['user', 'grant-role', 'app', 'app']);
    await ctl(['auth', 'enable']);

    const app = new Client({ endpoints: [fixture.member.endpoint], auth: { username: 'app', password: 'apppw' } });
    try {
      await app.kv.put('app/config', 'v1');
      expect((await app.kv.getOne('app/config'))?.value.toString()).toBe('v1');
      await expect(app.kv.put('other/x', 'no')).rejects.toBeInstanceOf(PermissionDeniedError);

      // Streams carry the token too: a watch, a session's keep-alives, a lock's waits.
      const watcher = app.watch('app/', { prefix: true });
      await watcher.ready();
      const session = await app.session({ ttlSeconds: 5 });
      const mutex = await app.mutex('app/locks/job', { session }).lock();
      await mutex.fencedTxn({ compare: [], success: [op.put('app/job/owner', 'me')] });
      await mutex.unlock();

      // The token expires (TTL 2 s, unused); the next call logs in again by itself.
      await new Promise((resolve) => setTimeout(resolve, 3_500));
      await app.kv.put('app/config', 'v2');
      const seen: string[] = [];
      for await (const batch of watcher) {
        for (const e of batch.events) seen.push(`${e.kv.key.toString()}=${e.kv.value.toString()}`);
        if (seen.includes('app/config=v2')) break;
      }
      expect(seen).toContain('app/job/owner=me');
      expect(session.state).not.toBe('expired');
      await session.close();

      // A lock outside the role's range is refused; the coordinator's locks are guarded like keys.
      const other = await app.session();
      await expect(app.mutex('elsewhere', { session: other }).lock({ timeoutMs: 5_000 })).rejects.toBeInstanceOf(PermissionDeniedError);
      const queued = await app.coordinatorMutex('app/queue', { session: other }).lock({ timeoutMs: 5_000 });
      expect(queued.fencingToken).toBeGreaterThan(0n);
      await queued.unlock();
      await expect(app.coordinatorMutex('elsewhere', { session: other }).lock({ timeoutMs: 5_000 })).rejects.toBeInstanceOf(PermissionDeniedError);
      await other.close();
    } finally {
      app.close();
    }

    const wrong = new Client({ endpoints: [fixture.member.endpoint], auth: { username: 'app', password: 'nope' } });
    await expect(wrong.kv.get('app/config')).rejects.toBeInstanceOf(InvalidArgumentError);
    wrong.close();
  }, 60_000);
});
