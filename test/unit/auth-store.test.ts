// Goal: the pure auth store (server/auth/store.ts) has etcd's semantics: its management rules and error codes, and permission checks that treat a key range as covered only by the union of the user's grants.
import { describe, expect, it } from 'vitest';
import { AuthStore, PermissionType, type Permission } from '../../server/auth/store.js';
import { authorizeRequest } from '../../server/apply/auth.js';
import { decodeRole, decodeUser, encodeRole, encodeUser } from '../../server/auth/records.js';
import { GavelError, type GavelErrorCode } from '../../server/errors.js';
import type { WireInternalRequest, WireRequestOp, WireTxnRequest } from '../../server/api/wire.js';

const b = (text: string): Uint8Array => new TextEncoder().encode(text);
const FROM_KEY = new Uint8Array([0]);
const NONE = new Uint8Array(0);

function code(fn: () => unknown): GavelErrorCode | 'ok' {
  try {
    fn();
    return 'ok';
  } catch (error) {
    if (error instanceof GavelError) return error.code;
    throw error;
  }
}

function perm(type: PermissionType, key: string, rangeEnd: Uint8Array | string = NONE): Permission {
  return { type, key: b(key), rangeEnd: typeof rangeEnd === 'string' ? b(rangeEnd) : rangeEnd };
}

/** A store with root (root role), auth enabled, and user `u` holding role `r` with `grants`. */
function storeWith(...grants: Permission[]): AuthStore {
  const store = new AuthStore();
  store.userAdd('root', 'hash', false);
  store.userGrantRole('root', 'root');
  store.userAdd('u', 'hash', false);
  store.roleAdd('r');
  for (const grant of grants) store.roleGrantPermission('r', grant);
  store.userGrantRole('u', 'r');
  store.enable();
  return store;
}

describe('enabling and the root user', () => {
  it('needs a root user that has the root role; the root role needs no record', () => {
    const store = new AuthStore();
    expect(code(() => store.enable())).toBe('RootUserNotExist');
    store.userAdd('root', 'hash', false);
    expect(code(() => store.enable())).toBe('RootRoleNotExist');
    store.userGrantRole('root', 'root');
    expect(store.role('root')).toBeUndefined();
    expect(store.enable().map((c) => c.type)).toEqual(['enabled', 'revision']);
    expect(store.enabled).toBe(true);
    // Enabling again changes nothing (etcd ignores it).
    expect(store.enable()).toEqual([]);
  });

  it('protects root, its root role and the root role while enabled, not before', () => {
    const store = storeWith();
    store.roleAdd('root');
    expect(code(() => store.userDelete('root'))).toBe('InvalidAuthMgmt');
    expect(code(() => store.userRevokeRole('root', 'root'))).toBe('InvalidAuthMgmt');
    expect(code(() => store.roleDelete('root'))).toBe('InvalidAuthMgmt');
    store.disable();
    expect(code(() => store.roleDelete('root'))).toBe('ok');
    expect(code(() => store.userDelete('root'))).toBe('ok');
  });
});

describe('users and roles', () => {
  it("answers etcd's errors for empty, duplicate and unknown names", () => {
    const store = new AuthStore();
    expect(code(() => store.userAdd('', 'h', false))).toBe('UserEmpty');
    expect(code(() => store.roleAdd(''))).toBe('RoleEmpty');
    store.userAdd('a', 'h', false);
    store.roleAdd('r');
    expect(code(() => store.userAdd('a', 'h', false))).toBe('UserExists');
    expect(code(() => store.roleAdd('r'))).toBe('RoleExists');
    expect(code(() => store.userDelete('nobody'))).toBe('UserNotFound');
    expect(code(() => store.roleDelete('nothing'))).toBe('RoleNotFound');
    expect(code(() => store.userGrantRole('nobody', 'r'))).toBe('UserNotFound');
    expect(code(() => store.userGrantRole('a', 'nothing'))).toBe('RoleNotFound');
    expect(code(() => store.userRevokeRole('a', 'r'))).toBe('RoleNotGranted');
    expect(code(() => store.userRevokeRole('a', 'nothing'))).toBe('RoleNotGranted');
    expect(code(() => store.userChangePassword('nobody', 'h'))).toBe('UserNotFound');
    expect(code(() => store.roleGrantPermission('nothing', perm(PermissionType.Read, 'k')))).toBe('RoleNotFound');
    expect(code(() => store.roleRevokePermission('r', b('k'), NONE))).toBe('PermissionNotGranted');
    expect(code(() => store.roleGrantPermission('r', undefined))).toBe('PermissionNotGiven');
  });

  it('keeps roles sorted, ignores a duplicate grant, and takes a deleted role away from its users', () => {
    const store = new AuthStore();
    store.userAdd('a', 'h', false);
    for (const role of ['zz', 'aa']) store.roleAdd(role);
    store.userGrantRole('a', 'zz');
    store.userGrantRole('a', 'aa');
    const revision = store.revision;
    expect(store.userGrantRole('a', 'aa')).toEqual([]);
    expect(store.revision).toBe(revision);
    expect(store.user('a')?.roles).toEqual(['aa', 'zz']);
    store.roleDelete('zz');
    expect(store.user('a')?.roles).toEqual(['aa']);
    expect(store.userNames()).toEqual(['a']);
    expect(store.roleNames()).toEqual(['aa']);
  });

  it('replaces the type of a grant on the same range and keeps grants sorted by key', () => {
    const store = new AuthStore();
    store.roleAdd('r');
    store.roleGrantPermission('r', perm(PermissionType.Read, 'b/', 'b0'));
    store.roleGrantPermission('r', perm(PermissionType.Write, 'a'));
    store.roleGrantPermission('r', perm(PermissionType.ReadWrite, 'b/', 'b0'));
    expect(store.role('r')?.permissions.map((p) => [new TextDecoder().decode(p.key), p.type])).toEqual([
      ['a', PermissionType.Write],
      ['b/', PermissionType.ReadWrite],
    ]);
    store.roleRevokePermission('r', b('b/'), b('b0'));
    expect(store.role('r')?.permissions).toHaveLength(1);
  });

  it('refuses grants etcd 3.5 refuses: empty key, inverted range, unknown type', () => {
    const store = new AuthStore();
    store.roleAdd('r');
    expect(code(() => store.roleGrantPermission('r', perm(PermissionType.Read, '')))).toBe('InvalidAuthMgmt');
    expect(code(() => store.roleGrantPermission('r', perm(PermissionType.Read, 'z', 'a')))).toBe('InvalidAuthMgmt');
    expect(code(() => store.roleGrantPermission('r', { type: 7 as PermissionType, key: b('q'), rangeEnd: NONE }))).toBe('InvalidAuthMgmt');
    expect(code(() => store.roleGrantPermission('r', perm(PermissionType.Read, '\0', FROM_KEY)))).toBe('ok');
  });

  it('a user without a password keeps none when its password is changed', () => {
    const store = new AuthStore();
    store.userAdd('cert-only', 'ignored', true);
    expect(store.user('cert-only')).toMatchObject({ passwordHash: '', noPassword: true });
    store.userChangePassword('cert-only', 'hash');
    expect(store.user('cert-only')?.passwordHash).toBe('');
  });

  it('round-trips users and roles through their authpb encoding', () => {
    const user = { name: 'ü', passwordHash: 'scrypt$15$8$1$c2FsdA==$a2V5', noPassword: false, roles: ['a', 'b'] };
    expect(decodeUser(encodeUser(user))).toEqual(user);
    const role = { name: 'r', permissions: [perm(PermissionType.ReadWrite, '/a/', '/a0'), perm(PermissionType.Read, 'x', FROM_KEY)] };
    expect(decodeRole(encodeRole(role))).toEqual(role);
  });
});

describe('checks', () => {
  it('checks nothing while auth is disabled', () => {
    const store = new AuthStore();
    expect(code(() => store.checkRange('', 'write', b('anything')))).toBe('ok');
    expect(code(() => store.checkAdmin(''))).toBe('ok');
  });

  it("admin: root only; etcd's errors for no user and an unknown user", () => {
    const store = storeWith();
    expect(code(() => store.checkAdmin('root'))).toBe('ok');
    expect(code(() => store.checkAdmin('u'))).toBe('PermissionDenied');
    expect(code(() => store.checkAdmin(''))).toBe('UserEmpty');
    expect(code(() => store.checkAdmin('ghost'))).toBe('UserNotFound');
  });

  it('READ on a prefix allows keys and sub-ranges inside it, nothing outside, and no writes', () => {
    const store = storeWith(perm(PermissionType.Read, '/a/', '/a0'));
    expect(code(() => store.checkRange('u', 'read', b('/a/x')))).toBe('ok');
    expect(code(() => store.checkRange('u', 'read', b('/a/'), b('/a0')))).toBe('ok');
    expect(code(() => store.checkRange('u', 'read', b('/a/b'), b('/a/c')))).toBe('ok');
    expect(code(() => store.checkRange('u', 'read', b('/b/x')))).toBe('PermissionDenied');
    expect(code(() => store.checkRange('u', 'read', b('/a'), b('/b')))).toBe('PermissionDenied');
    expect(code(() => store.checkRange('u', 'read', b('/a/'), FROM_KEY))).toBe('PermissionDenied');
    expect(code(() => store.checkRange('u', 'write', b('/a/x')))).toBe('PermissionDenied');
    expect(code(() => store.checkRange('', 'read', b('/a/x')))).toBe('UserEmpty');
    expect(code(() => store.checkRange('ghost', 'read', b('/a/x')))).toBe('PermissionDenied');
    expect(code(() => store.checkRange('root', 'write', b('/b/x'), FROM_KEY))).toBe('ok');
  });

  it('a range is allowed when adjacent or overlapping grants cover it together, from several roles', () => {
    const store = storeWith(perm(PermissionType.Read, 'a', 'c'), perm(PermissionType.ReadWrite, 'b', 'e'));
    store.roleAdd('r2');
    store.roleGrantPermission('r2', perm(PermissionType.Read, 'e', 'g'));
    store.userGrantRole('u', 'r2');
    expect(code(() => store.checkRange('u', 'read', b('a'), b('g')))).toBe('ok');
    expect(code(() => store.checkRange('u', 'read', b('a'), b('h')))).toBe('PermissionDenied');
    expect(code(() => store.checkRange('u', 'write', b('b'), b('e')))).toBe('ok');
    expect(code(() => store.checkRange('u', 'write', b('a'), b('e')))).toBe('PermissionDenied');
  });

  it('a single-key grant covers that key only; a from-key grant covers everything after it', () => {
    const store = storeWith(perm(PermissionType.Write, 'k'), perm(PermissionType.Read, 'm', FROM_KEY));
    expect(code(() => store.checkRange('u', 'write', b('k')))).toBe('ok');
    expect(code(() => store.checkRange('u', 'write', b('k'), b('k\0')))).toBe('ok');
    expect(code(() => store.checkRange('u', 'write', b('k0')))).toBe('PermissionDenied');
    expect(code(() => store.checkRange('u', 'write', b('k'), b('l')))).toBe('PermissionDenied');
    expect(code(() => store.checkRange('u', 'read', b('zzz')))).toBe('ok');
    expect(code(() => store.checkRange('u', 'read', b('m'), FROM_KEY))).toBe('ok');
    expect(code(() => store.checkRange('u', 'read', b('l'), FROM_KEY))).toBe('PermissionDenied');
  });

  it('revoking a role or a grant takes effect at once', () => {
    const store = storeWith(perm(PermissionType.Read, 'a'));
    expect(code(() => store.checkRange('u', 'read', b('a')))).toBe('ok');
    store.roleRevokePermission('r', b('a'), NONE);
    expect(code(() => store.checkRange('u', 'read', b('a')))).toBe('PermissionDenied');
  });
});

describe('the check of a request as it applies (server/apply/auth.ts)', () => {
  const put = (key: string, extra: object = {}): WireRequestOp => ({ request: 'request_put', request_put: { key: Buffer.from(key), value: Buffer.from('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false, ...extra } });
  const txn = (t: Partial<WireTxnRequest>): WireInternalRequest => ({ id: '1', request: 'txn', header: { username: 'u' }, txn: { compare: [], success: [], failure: [], ...t } });
  const noLeases = (): Uint8Array[] => [];
  const store = storeWith(perm(PermissionType.ReadWrite, 'w/', 'w0'), perm(PermissionType.Read, 'r/', 'r0'));
  const check = (request: WireInternalRequest, leaseKeys = noLeases): GavelErrorCode | 'ok' => code(() => authorizeRequest(store, request, leaseKeys));

  it('checks the ops of both branches and of nested txns, and the compared keys', () => {
    expect(check(txn({ success: [put('w/1')], failure: [put('w/2')] }))).toBe('ok');
    expect(check(txn({ success: [put('w/1')], failure: [put('r/2')] }))).toBe('PermissionDenied');
    const nested: WireRequestOp = { request: 'request_txn', request_txn: { compare: [], success: [put('r/x')], failure: [] } };
    expect(check(txn({ success: [nested] }))).toBe('PermissionDenied');
    const compare = { result: 0, target: 0, key: Buffer.from('x/1'), range_end: Buffer.alloc(0), version: '0' };
    expect(check(txn({ compare: [compare] }))).toBe('PermissionDenied');
  });

  it('a put with prev_kv needs READ too; attaching to a lease needs WRITE on its keys; a revoke too', () => {
    const header = { username: 'u' };
    expect(check({ id: '1', request: 'put', header, put: put('w/1', { prev_kv: true }).request_put! })).toBe('ok');
    const withLease = put('w/1', { lease: '7' }).request_put!;
    expect(check({ id: '1', request: 'put', header, put: withLease }, () => [b('w/2')])).toBe('ok');
    expect(check({ id: '1', request: 'put', header, put: withLease }, () => [b('r/2')])).toBe('PermissionDenied');
    expect(check({ id: '1', request: 'lease_revoke', header, lease_revoke: { ID: '7' } }, () => [b('r/2')])).toBe('PermissionDenied');
    expect(check({ id: '1', request: 'lease_revoke', header, lease_revoke: { ID: '7' } }, () => [b('w/2')])).toBe('ok');
  });

  it("leaves the members' own proposals (no header) alone, and needs root for auth changes", () => {
    expect(check({ id: '1', request: 'lease_revoke', lease_revoke: { ID: '7' } }, () => [b('secret')])).toBe('ok');
    expect(check({ id: '1', request: 'auth_role_add', header: { username: 'u' }, auth_role_add: { name: 'x' } })).toBe('PermissionDenied');
    expect(check({ id: '1', request: 'auth_role_add', header: { username: 'root' }, auth_role_add: { name: 'x' } })).toBe('ok');
    expect(check({ id: '1', request: 'put', header: { username: '' }, put: put('w/1').request_put! })).toBe('UserEmpty');
  });
});
