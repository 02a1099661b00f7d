// Goal: auth state is replicated state: applied from log entries (with the permission check as they apply), persisted in level, carried by snapshots and loaded back, and never holds a password or a token in clear.
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../server/clock.js';
import { Storage } from '../../server/storage/layout.js';
import { loadMachineState } from '../../server/apply/load.js';
import { StateMachine } from '../../server/apply/state-machine.js';
import { copySnapshot, machineOn as machineUnder, openStorage as openTempStorage, removeTempDirs, type MachineUnderTest } from '../helpers/machine.js';
import { passwordDigest } from '../../server/apply/auth.js';
import { hashPassword, verifyPassword } from '../../server/auth/password.js';
import { formatToken, newTokenPrefix, parseToken, prefixDigest } from '../../server/auth/tokens.js';
import { PermissionType } from '../../server/auth/store.js';

afterAll(removeTempDirs);

const openStorage = (): Promise<Storage> => openTempStorage('gavel-auth-apply-');

const options = { minLeaseTtlSeconds: 1, clock: new ManualClock(), authTokenTtlSeconds: 300 };

const machineOn = (storage: Storage): Promise<MachineUnderTest> => machineUnder(storage, options);

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
    await copySnapshot(storage, other);
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
