/**
 * The auth store on disk, in the `auth` level space: `enabled`, `revision`, `user/<name>` and
 * `role/<name>`. Users and roles are encoded as etcd's authpb.User and authpb.Role (the password
 * field holds the scrypt hash, never a password). Changes are written in the batch of the entry
 * that made them; a snapshot carries every record and a restart loads them back.
 */
import { messageCodec } from '../proto.js';
import type { BatchOp, Storage } from '../storage/layout.js';
import { AuthStore, PermissionType, type AuthChange, type Permission, type Role, type User } from './store.js';

interface WireUser {
  name: Uint8Array;
  password: Uint8Array;
  roles: string[];
  options?: { no_password: boolean } | null;
}

interface WireRole {
  name: Uint8Array;
  keyPermission: { permType: number; key: Uint8Array; range_end: Uint8Array }[];
}

const text = new TextEncoder();
const untext = new TextDecoder();

let codecs: { user: ReturnType<typeof messageCodec<WireUser>>; role: ReturnType<typeof messageCodec<WireRole>> } | undefined;

function authCodecs(): NonNullable<typeof codecs> {
  codecs ??= { user: messageCodec<WireUser>('authpb.User'), role: messageCodec<WireRole>('authpb.Role') };
  return codecs;
}

const KEY_ENABLED = 'enabled';
const KEY_REVISION = 'revision';
const USER_PREFIX = 'user/';
const ROLE_PREFIX = 'role/';

function put(key: string, value: Uint8Array): BatchOp {
  return { type: 'put', space: 'auth', key: text.encode(key), value };
}

function del(key: string): BatchOp {
  return { type: 'del', space: 'auth', key: text.encode(key) };
}

export function encodeUser(user: User): Uint8Array {
  return authCodecs().user.encode({ name: text.encode(user.name), password: text.encode(user.passwordHash), roles: [...user.roles], options: { no_password: user.noPassword } });
}

export function decodeUser(bytes: Uint8Array): User {
  const wire = authCodecs().user.decode(bytes);
  return { name: untext.decode(wire.name), passwordHash: untext.decode(wire.password), noPassword: wire.options?.no_password === true, roles: [...(wire.roles ?? [])] };
}

export function encodeRole(role: Role): Uint8Array {
  return authCodecs().role.encode({ name: text.encode(role.name), keyPermission: role.permissions.map((p) => ({ permType: p.type, key: p.key, range_end: p.rangeEnd })) });
}

export function decodeRole(bytes: Uint8Array): Role {
  const wire = authCodecs().role.decode(bytes);
  const permissions: Permission[] = (wire.keyPermission ?? []).map((p) => ({ type: p.permType as PermissionType, key: new Uint8Array(p.key), rangeEnd: new Uint8Array(p.range_end) }));
  return { name: untext.decode(wire.name), permissions };
}

/** The level operations that record `changes`. */
export function authOps(changes: readonly AuthChange[]): BatchOp[] {
  return changes.map((change) => {
    switch (change.type) {
      case 'enabled':
        return put(KEY_ENABLED, text.encode(change.enabled ? '1' : '0'));
      case 'revision':
        return put(KEY_REVISION, text.encode(String(change.revision)));
      case 'putUser':
        return put(USER_PREFIX + change.user.name, encodeUser(change.user));
      case 'deleteUser':
        return del(USER_PREFIX + change.name);
      case 'putRole':
        return put(ROLE_PREFIX + change.role.name, encodeRole(change.role));
      case 'deleteRole':
        return del(ROLE_PREFIX + change.name);
    }
  });
}

/** Every record of the store, for a snapshot. */
export function authRecords(store: AuthStore): BatchOp[] {
  const snapshot = store.snapshot();
  return authOps([
    { type: 'enabled', enabled: snapshot.enabled },
    { type: 'revision', revision: snapshot.revision },
    ...snapshot.users.map((user) => ({ type: 'putUser' as const, user })),
    ...snapshot.roles.map((role) => ({ type: 'putRole' as const, role })),
  ]);
}

export async function loadAuthStore(storage: Storage): Promise<AuthStore> {
  let enabled = false;
  let revision = 0;
  const users: User[] = [];
  const roles: Role[] = [];
  for await (const [keyBytes, value] of storage.space('auth').iterator()) {
    const key = untext.decode(keyBytes);
    if (key === KEY_ENABLED) enabled = untext.decode(value) === '1';
    else if (key === KEY_REVISION) revision = Number(untext.decode(value));
    else if (key.startsWith(USER_PREFIX)) users.push(decodeUser(value));
    else if (key.startsWith(ROLE_PREFIX)) roles.push(decodeRole(value));
  }
  return new AuthStore({ enabled, revision: Number.isSafeInteger(revision) ? revision : 0, users, roles });
}
