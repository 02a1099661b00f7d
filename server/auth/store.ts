/**
 * Users, roles and key-range permissions: etcd's auth store, pure. No I/O, no clock, no crypto:
 * passwords arrive already hashed (server/auth/password.ts) and every mutation returns the
 * records it changed, which the state machine persists in the same batch as the applied index
 * (server/auth/records.ts). Every member applies the same mutations in the same order, so they
 * all hold the same store.
 *
 * Semantics are etcd 3.4's (server/auth/store.go): the root user needs the root role before auth
 * can be enabled; the root role is implicit (granting it needs no role record) and permits
 * everything; while auth is enabled the root user, its root role and the root role itself cannot
 * be removed. Where 3.4 accepts nonsense that 3.5 refuses (an empty or inverted permission range,
 * an unknown permission type, a missing permission), we refuse it as 3.5 does.
 */
import { GavelError } from '../errors.js';

export const ROOT_USER = 'root';
export const ROOT_ROLE = 'root';

/** authpb.Permission.Type: the numbers are wire facts. */
export const PermissionType = { Read: 0, Write: 1, ReadWrite: 2 } as const;
export type PermissionType = (typeof PermissionType)[keyof typeof PermissionType];

export type Access = 'read' | 'write';

export interface Permission {
  readonly type: PermissionType;
  readonly key: Uint8Array;
  /** Empty: the single key. [0x00]: every key from `key` on. Otherwise [key, rangeEnd). */
  readonly rangeEnd: Uint8Array;
}

export interface User {
  readonly name: string;
  /** The password hash (password.ts format); '' for a user without a password. */
  readonly passwordHash: string;
  /** etcd's --no-password: the user can only be a certificate's common name, never log in. */
  readonly noPassword: boolean;
  /** Sorted, no duplicates. */
  readonly roles: readonly string[];
}

export interface Role {
  readonly name: string;
  /** Sorted by key, at most one per (key, rangeEnd). */
  readonly permissions: readonly Permission[];
}

/** A record that changed, for persistence. */
export type AuthChange =
  | { readonly type: 'enabled'; readonly enabled: boolean }
  | { readonly type: 'revision'; readonly revision: number }
  | { readonly type: 'putUser'; readonly user: User }
  | { readonly type: 'deleteUser'; readonly name: string }
  | { readonly type: 'putRole'; readonly role: Role }
  | { readonly type: 'deleteRole'; readonly name: string };

export interface AuthSnapshot {
  readonly enabled: boolean;
  readonly revision: number;
  readonly users: readonly User[];
  readonly roles: readonly Role[];
}

export class AuthStore {
  private enabledFlag: boolean;
  private revisionNumber: number;
  private readonly users = new Map<string, User>();
  private readonly roles = new Map<string, Role>();

  constructor(snapshot: AuthSnapshot = { enabled: false, revision: 0, users: [], roles: [] }) {
    this.enabledFlag = snapshot.enabled;
    this.revisionNumber = snapshot.revision;
    for (const user of snapshot.users) this.users.set(user.name, user);
    for (const role of snapshot.roles) this.roles.set(role.name, role);
  }

  get enabled(): boolean {
    return this.enabledFlag;
  }

  /** Rises with every change (AuthStatus.authRevision). */
  get revision(): number {
    return this.revisionNumber;
  }

  snapshot(): AuthSnapshot {
    return { enabled: this.enabledFlag, revision: this.revisionNumber, users: [...this.users.values()], roles: [...this.roles.values()] };
  }

  user(name: string): User | undefined {
    return this.users.get(name);
  }

  role(name: string): Role | undefined {
    return this.roles.get(name);
  }

  userNames(): string[] {
    return [...this.users.keys()].sort(compareStrings);
  }

  roleNames(): string[] {
    return [...this.roles.keys()].sort(compareStrings);
  }

  hasRole(userName: string, roleName: string): boolean {
    return this.users.get(userName)?.roles.includes(roleName) ?? false;
  }

  // ---- mutations: each returns the changed records (empty when nothing changed) ----

  enable(): AuthChange[] {
    if (this.enabledFlag) return [];
    const root = this.users.get(ROOT_USER);
    if (root === undefined) throw new GavelError('RootUserNotExist');
    if (!root.roles.includes(ROOT_ROLE)) throw new GavelError('RootRoleNotExist');
    this.enabledFlag = true;
    return [{ type: 'enabled', enabled: true }, this.bump()];
  }

  disable(): AuthChange[] {
    if (!this.enabledFlag) return [];
    this.enabledFlag = false;
    return [{ type: 'enabled', enabled: false }, this.bump()];
  }

  userAdd(name: string, passwordHash: string, noPassword: boolean): AuthChange[] {
    if (name === '') throw new GavelError('UserEmpty');
    if (this.users.has(name)) throw new GavelError('UserExists');
    return this.putUser({ name, passwordHash: noPassword ? '' : passwordHash, noPassword, roles: [] });
  }

  userDelete(name: string): AuthChange[] {
    if (this.enabledFlag && name === ROOT_USER) throw new GavelError('InvalidAuthMgmt');
    if (!this.users.delete(name)) throw new GavelError('UserNotFound');
    return [{ type: 'deleteUser', name }, this.bump()];
  }

  userChangePassword(name: string, passwordHash: string): AuthChange[] {
    const user = this.requireUser(name);
    return this.putUser({ ...user, passwordHash: user.noPassword ? '' : passwordHash });
  }

  userGrantRole(userName: string, roleName: string): AuthChange[] {
    const user = this.requireUser(userName);
    // The root role needs no record (etcd 3.4).
    if (roleName !== ROOT_ROLE && !this.roles.has(roleName)) throw new GavelError('RoleNotFound');
    if (user.roles.includes(roleName)) return [];
    return this.putUser({ ...user, roles: [...user.roles, roleName].sort(compareStrings) });
  }

  userRevokeRole(userName: string, roleName: string): AuthChange[] {
    if (this.enabledFlag && userName === ROOT_USER && roleName === ROOT_ROLE) throw new GavelError('InvalidAuthMgmt');
    const user = this.requireUser(userName);
    if (!user.roles.includes(roleName)) throw new GavelError('RoleNotGranted');
    return this.putUser({ ...user, roles: user.roles.filter((r) => r !== roleName) });
  }

  roleAdd(name: string): AuthChange[] {
    if (name === '') throw new GavelError('RoleEmpty');
    if (this.roles.has(name)) throw new GavelError('RoleExists');
    return this.putRole({ name, permissions: [] });
  }

  /** Deleting a role also takes it away from every user that has it. */
  roleDelete(name: string): AuthChange[] {
    if (this.enabledFlag && name === ROOT_ROLE) throw new GavelError('InvalidAuthMgmt');
    if (!this.roles.delete(name)) throw new GavelError('RoleNotFound');
    const changes: AuthChange[] = [{ type: 'deleteRole', name }];
    for (const user of [...this.users.values()]) {
      if (!user.roles.includes(name)) continue;
      const updated = { ...user, roles: user.roles.filter((r) => r !== name) };
      this.users.set(user.name, updated);
      changes.push({ type: 'putUser', user: updated });
    }
    changes.push(this.bump());
    return changes;
  }

  /** Granting on a (key, rangeEnd) the role already has replaces that grant's type. */
  roleGrantPermission(roleName: string, permission: Permission | undefined): AuthChange[] {
    if (permission === undefined) throw new GavelError('PermissionNotGiven');
    if (!isValidPermission(permission)) throw new GavelError('InvalidAuthMgmt');
    const role = this.requireRole(roleName);
    const others = role.permissions.filter((p) => !sameRange(p, permission));
    const permissions = [...others, { type: permission.type, key: permission.key.slice(), rangeEnd: permission.rangeEnd.slice() }].sort((a, b) => compareBytes(a.key, b.key));
    return this.putRole({ name: role.name, permissions });
  }

  roleRevokePermission(roleName: string, key: Uint8Array, rangeEnd: Uint8Array): AuthChange[] {
    const role = this.requireRole(roleName);
    const permissions = role.permissions.filter((p) => !sameRange(p, { key, rangeEnd }));
    if (permissions.length === role.permissions.length) throw new GavelError('PermissionNotGranted');
    return this.putRole({ name: role.name, permissions });
  }

  // ---- checks: each throws etcd's error, or returns when permitted (always when auth is off) ----

  /** Auth management, member changes, hashes, defragmentation: root only. */
  checkAdmin(userName: string): void {
    if (!this.enabledFlag) return;
    if (userName === '') throw new GavelError('UserEmpty');
    const user = this.users.get(userName);
    if (user === undefined) throw new GavelError('UserNotFound');
    if (!user.roles.includes(ROOT_ROLE)) throw new GavelError('PermissionDenied');
  }

  /** A key (rangeEnd empty) or range, read or written by `userName`. */
  checkRange(userName: string, access: Access, key: Uint8Array, rangeEnd: Uint8Array = EMPTY): void {
    if (!this.enabledFlag) return;
    if (userName === '') throw new GavelError('UserEmpty');
    const user = this.users.get(userName);
    if (user === undefined) throw new GavelError('PermissionDenied');
    if (user.roles.includes(ROOT_ROLE)) return;
    const granted: Interval[] = [];
    for (const roleName of user.roles) {
      for (const permission of this.roles.get(roleName)?.permissions ?? []) {
        if (allows(permission.type, access)) granted.push(toInterval(permission.key, permission.rangeEnd));
      }
    }
    if (!covers(granted, toInterval(key, rangeEnd))) throw new GavelError('PermissionDenied');
  }

  // ---- helpers ----

  private requireUser(name: string): User {
    const user = this.users.get(name);
    if (user === undefined) throw new GavelError('UserNotFound');
    return user;
  }

  private requireRole(name: string): Role {
    const role = this.roles.get(name);
    if (role === undefined) throw new GavelError('RoleNotFound');
    return role;
  }

  private putUser(user: User): AuthChange[] {
    this.users.set(user.name, user);
    return [{ type: 'putUser', user }, this.bump()];
  }

  private putRole(role: Role): AuthChange[] {
    this.roles.set(role.name, role);
    return [{ type: 'putRole', role }, this.bump()];
  }

  private bump(): AuthChange {
    this.revisionNumber += 1;
    return { type: 'revision', revision: this.revisionNumber };
  }
}

const EMPTY = new Uint8Array(0);

/** [start, end); end undefined = no upper bound. */
interface Interval {
  readonly start: Uint8Array;
  readonly end: Uint8Array | undefined;
}

function allows(type: PermissionType, access: Access): boolean {
  return type === PermissionType.ReadWrite || (access === 'read' ? type === PermissionType.Read : type === PermissionType.Write);
}

/** etcd's conventions: an empty end is the key alone ([key, key+"\0")), "\0" is "to the end". */
export function toInterval(key: Uint8Array, rangeEnd: Uint8Array): Interval {
  if (rangeEnd.length === 0) return { start: key, end: pointEnd(key) };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { start: key, end: undefined };
  // An inverted or empty range selects no key; it needs the permission of its first key (conservative).
  if (compareBytes(rangeEnd, key) <= 0) return { start: key, end: pointEnd(key) };
  return { start: key, end: rangeEnd };
}

function pointEnd(key: Uint8Array): Uint8Array {
  const end = new Uint8Array(key.length + 1);
  end.set(key);
  return end;
}

/** Whether the union of `granted` contains all of `wanted`. */
export function covers(granted: readonly Interval[], wanted: Interval): boolean {
  const sorted = [...granted].sort((a, b) => compareBytes(a.start, b.start));
  let cursor = wanted.start;
  for (const interval of sorted) {
    if (compareBytes(interval.start, cursor) > 0) break; // a gap before `cursor` can no longer be filled
    if (interval.end === undefined) return true;
    if (compareBytes(interval.end, cursor) > 0) cursor = interval.end;
    if (wanted.end !== undefined && compareBytes(cursor, wanted.end) >= 0) return true;
  }
  return false;
}

function isValidPermission(permission: Permission): boolean {
  if (!Object.values(PermissionType).includes(permission.type)) return false;
  if (permission.key.length === 0) return false;
  const end = permission.rangeEnd;
  if (end.length === 0 || (end.length === 1 && end[0] === 0)) return true;
  return compareBytes(permission.key, end) < 0;
}

function sameRange(a: { key: Uint8Array; rangeEnd: Uint8Array }, b: { key: Uint8Array; rangeEnd: Uint8Array }): boolean {
  return compareBytes(a.key, b.key) === 0 && compareBytes(a.rangeEnd, b.rangeEnd) === 0;
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** Go's string order (byte-wise on UTF-8), which etcd's sorted names follow. */
function compareStrings(a: string, b: string): number {
  return compareBytes(Buffer.from(a), Buffer.from(b));
}
