// Goal: auth state is replicated state: applied from log entries (with the permission check as they apply), persisted in level, carried by snapshots and loaded back, and never holds a password or a token in clear.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../server/clock.js';
import { Storage, metaOps } from '../../server/storage/layout.js';
import { loadMachineState } from '../../server/apply/load.js';
import { StateMachine, type ApplyResult } from '../../server/apply/state-machine.js';
import { encodeRequest, type Mutation } from '../../server/apply/request.js';
import { installSnapshotFile, saveSnapshot } from '../../server/apply/snapshot.js';
import { passwordDigest } from '../../server/apply/auth.js';
import { hashPassword, verifyPassword } from '../../server/auth/password.js';
import { formatToken, newTokenPrefix, parseToken, prefixDigest } from '../../server/auth/tokens.js';
import { PermissionType } from '../../server/auth/store.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function openStorage(): Promise<Storage> {
  const dir = mkdtempSync(join(tmpdir(), 'gavel-auth-apply-'));
  dirs.push(dir);
  return Storage.open(dir);
}

const options = { minLeaseTtlSeconds: 1, clock: new ManualClock(), authTokenTtlSeconds: 300 };

/** A machine on its own storage; `apply` applies one mutation as the next entry and writes its batch. */
async function machineOn(storage: Storage): Promise<{ machine: StateMachine; apply: (mutation: Mutation) => Promise<ApplyResult> }> {
  const machine = new StateMachine(await loadMachineState(storage, options));
  let id = 0n;
  return {
    machine,
    apply: async (mutation) => {
      const index = machine.appliedIndex + 1;
      const applied = machine.apply(index, encodeRequest(++id, mutation));
      if (applied === undefined) throw new Error('nothing applied');
      await storage.write([...applied.ops, metaOps.appliedIndex(index)], true);
      return applied.result;
    },
  };
}

const root = { username: 'root' };

describe('auth in the state machine', () => {
  it('applies, checks, persists, snapshots and reloads the auth state', async () => {
    const storage = await openStorage();
    const { machine, apply } = await machineOn(storage);
    const rootHash = await hashPassword('rootpw');
    const userHash = await hashPassword('userpw');
    const anonymous = { username: '' };
    expect((await apply({ auth_user_add: { name: 'root', password: '', hashedPassword: rootHash, options: null }, header: anonymous })).type).toBe('auth');
    await apply({ auth_user_grant_role: { user: 'root', role: 'root' }, header: anonymous });
    await apply({ auth_enable: {}, header: anonymous });
    // Enabled: an anonymous request and a non-root one are refused as they apply.
    const refused = await apply({ auth_role_add: { name: 'r' }, header: anonymous });
    expect(refused.type === 'error' && refused.error.code).toBe('UserEmpty');
    await apply({ auth_role_add: { name: 'r' }, header: root });
    await apply({ auth_role_grant_permission: { name: 'r', perm: { permType: PermissionType.Read, key: Buffer.from('/a/'), range_end: Buffer.from('/a0') } }, header: root });
    await apply({ auth_user_add: { name: 'u', password: '', hashedPassword: userHash, options: null }, header: root });
    await apply({ auth_user_grant_role: { user: 'u', role: 'r' }, header: root });
    const denied = await apply({ put: { key: Buffer.from('/a/x'), value: Buffer.from('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false }, header: { username: 'u' } });
    expect(denied.type === 'error' && denied.error.code).toBe('PermissionDenied');
    // A member's own proposal (no header) is not checked.
    expect((await apply({ put: { key: Buffer.from('/b/x'), value: Buffer.from('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } })).type).toBe('put');

    // Authenticate: the table learns the digest only.
    const prefix = newTokenPrefix();
    const login = await apply({ authenticate: { name: 'u', token_digest: prefixDigest(prefix), password_digest: passwordDigest(userHash) } });
    expect(login.type).toBe('auth');
    const token = parseToken(formatToken(prefix, login.type === 'auth' ? login.index : 0));
    expect(token && machine.auth.tokens.lookup(token.digest, token.index)).toBe('u');
    // A login checked against an older password hash fails.
    const stale = await apply({ authenticate: { name: 'u', token_digest: prefixDigest(newTokenPrefix()), password_digest: passwordDigest('old') } });
    expect(stale.type === 'error' && stale.error.code).toBe('AuthFailed');

    // Reloaded from level: the same store, no tokens.
    const reloaded = new StateMachine(await loadMachineState(storage, options));
    expect(reloaded.auth.store.snapshot()).toEqual(machine.auth.store.snapshot());
    expect(reloaded.auth.tokens.size).toBe(0);

    // A snapshot carries it to another member, replacing whatever auth state was there.
    const other = await openStorage();
    const { apply: applyOther } = await machineOn(other);
    await applyOther({ auth_user_add: { name: 'stale', password: '', hashedPassword: userHash, options: null } });
    const file = join(mkdtempSync(join(tmpdir(), 'gavel-snapshot-')), 'state.gvsnap');
    dirs.push(join(file, '..'));
    await saveSnapshot(storage, file);
    await installSnapshotFile(other, file);
    const installed = await loadMachineState(other, options);
    expect(installed.auth.store.snapshot()).toEqual(machine.auth.store.snapshot());
    expect(installed.auth.store.user('stale')).toBeUndefined();
    expect(installed.auth.store.enabled).toBe(true);
    expect(await verifyPassword('userpw', installed.auth.store.user('u')?.passwordHash ?? '')).toBe(true);

    // Nothing on disk holds a password or the token's prefix in clear.
    for (const space of ['auth', 'log', 'meta'] as const) {
      for await (const [, value] of storage.space(space).iterator()) {
        const text = Buffer.from(value).toString('latin1');
        for (const secret of ['rootpw', 'userpw', prefix]) expect(text).not.toContain(secret);
      }
    }
    await storage.close();
    await other.close();
  });

  it('auth disable and a password change forget tokens; a deleted user loses them too', async () => {
    const storage = await openStorage();
    const { machine, apply } = await machineOn(storage);
    const hash = await hashPassword('pw');
    await apply({ auth_user_add: { name: 'root', password: '', hashedPassword: hash, options: null } });
    await apply({ auth_user_grant_role: { user: 'root', role: 'root' } });
    await apply({ auth_user_add: { name: 'u', password: '', hashedPassword: hash, options: null } });
    await apply({ auth_enable: {} });
    const login = async (name: string): Promise<{ digest: string; index: number }> => {
      const prefix = newTokenPrefix();
      const result = await apply({ authenticate: { name, token_digest: prefixDigest(prefix), password_digest: passwordDigest(hash) } });
      if (result.type !== 'auth') throw new Error(`login failed: ${JSON.stringify(result)}`);
      return { digest: prefixDigest(prefix), index: result.index };
    };
    const u = await login('u');
    const rootToken = await login('root');
    await apply({ auth_user_change_password: { name: 'u', password: '', hashedPassword: await hashPassword('new') }, header: root });
    expect(machine.auth.tokens.lookup(u.digest, u.index)).toBeUndefined();
    expect(machine.auth.tokens.lookup(rootToken.digest, rootToken.index)).toBe('root');
    await apply({ auth_disable: {}, header: root });
    expect(machine.auth.tokens.size).toBe(0);
    const notEnabled = await apply({ authenticate: { name: 'root', token_digest: 'x', password_digest: passwordDigest(hash) } });
    expect(notEnabled.type === 'error' && notEnabled.error.code).toBe('AuthNotEnabled');
    await storage.close();
  });
});
