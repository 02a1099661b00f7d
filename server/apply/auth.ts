/**
 * Auth in the state machine: the permission check of a client's request as it applies (etcd's
 * authApplierV3), and the auth mutations themselves. Both are deterministic given the store, so
 * every member reaches the same answer; only the token table (per member, in memory) is touched
 * beside the store.
 *
 * Checks follow etcd 3.4: Put needs WRITE on its key (and READ with prev_kv), DeleteRange WRITE
 * on its range (and READ with prev_kv), a Txn READ on every compared key and the permissions of
 * every operation in both branches, nested txns included (etcd 3.4.23 lets those through);
 * attaching a key to a lease and revoking a lease need WRITE on every key of that lease. Auth
 * management needs root. Compaction, lease grants and the members' own proposals are not checked.
 */
import { createHash } from 'node:crypto';
import { assertNever, GavelError } from '../errors.js';
import { bytes, toBigInt } from '../api/convert.js';
import type { WireDeleteRangeRequest, WireInternalRequest, WirePutRequest, WireRangeRequest, WireRequestOp, WireTxnRequest } from '../api/wire.js';
import type { BatchOp } from '../storage/layout.js';
import { authOps } from '../auth/records.js';
import { parseHash } from '../auth/password.js';
import type { AuthChange, AuthStore, Permission, PermissionType } from '../auth/store.js';
import type { TokenTable } from '../auth/tokens.js';

export interface AuthState {
  readonly store: AuthStore;
  /** Live simple tokens on this member (server/auth/tokens.ts); not replicated state. */
  readonly tokens: TokenTable;
}

/** The keys attached to a lease (none for an unknown lease). */
export type LeaseKeys = (id: bigint) => readonly Uint8Array[];

/** SHA-256 of a stored password hash: what an Authenticate entry names as "the password I checked". */
export function passwordDigest(passwordHash: string): string {
  return createHash('sha256').update(passwordHash).digest('hex');
}

/**
 * Throws etcd's error when the client's user may not make `request`. A request without a header
 * is a member's own; with auth disabled nothing is checked.
 */
export function authorizeRequest(store: AuthStore, request: WireInternalRequest, leaseKeys: LeaseKeys): void {
  const header = request.header;
  if (header === null || header === undefined || !store.enabled) return;
  const user = header.username ?? '';
  const kind = request.request;
  switch (kind) {
    case 'put':
      if (request.put) authorizePut(store, user, request.put, leaseKeys);
      return;
    case 'delete_range':
      if (request.delete_range) authorizeDelete(store, user, request.delete_range);
      return;
    case 'txn':
      if (request.txn) authorizeTxn(store, user, request.txn, leaseKeys);
      return;
    case 'lease_revoke':
      for (const key of leaseKeys(toBigInt(request.lease_revoke?.ID))) store.checkRange(user, 'write', key);
      return;
    case 'auth_enable':
    case 'auth_disable':
    case 'auth_user_add':
    case 'auth_user_delete':
    case 'auth_user_change_password':
    case 'auth_user_grant_role':
    case 'auth_user_revoke_role':
    case 'auth_role_add':
    case 'auth_role_delete':
    case 'auth_role_grant_permission':
    case 'auth_role_revoke_permission':
      store.checkAdmin(user);
      return;
    case 'authenticate':
    case 'compaction':
    case 'lease_grant':
    case 'lease_checkpoint':
    case 'lease_expire':
    case 'member_attributes':
    case 'member_peer_urls':
    case 'coordinator':
    // etcd 3.4 checks no permission for alarms (Maintenance.Alarm is anyone's).
    case 'alarm':
    case undefined:
      return;
    default:
      assertNever(kind);
  }
}

/** A Range, at the API edge (reads do not go through the log). */
export function authorizeRange(store: AuthStore, user: string, r: WireRangeRequest): void {
  store.checkRange(user, 'read', bytes(r.key), bytes(r.range_end));
}

export function authorizeTxn(store: AuthStore, user: string, txn: WireTxnRequest, leaseKeys: LeaseKeys): void {
  for (const compare of txn.compare ?? []) store.checkRange(user, 'read', bytes(compare.key), bytes(compare.range_end));
  for (const op of [...(txn.success ?? []), ...(txn.failure ?? [])]) authorizeOp(store, user, op, leaseKeys);
}

function authorizeOp(store: AuthStore, user: string, op: WireRequestOp, leaseKeys: LeaseKeys): void {
  const kind = op.request;
  switch (kind) {
    case 'request_range':
      if (op.request_range) authorizeRange(store, user, op.request_range);
      return;
    case 'request_put':
      if (op.request_put) authorizePut(store, user, op.request_put, leaseKeys);
      return;
    case 'request_delete_range':
      if (op.request_delete_range) authorizeDelete(store, user, op.request_delete_range);
      return;
    case 'request_txn':
      if (op.request_txn) authorizeTxn(store, user, op.request_txn, leaseKeys);
      return;
    case undefined:
      return;
    default:
      assertNever(kind);
  }
}

function authorizePut(store: AuthStore, user: string, put: WirePutRequest, leaseKeys: LeaseKeys): void {
  const key = bytes(put.key);
  store.checkRange(user, 'write', key);
  // A key joins its lease's fate: whoever may not revoke the lease may not attach to it.
  const lease = toBigInt(put.lease);
  if (lease !== 0n) for (const attached of leaseKeys(lease)) store.checkRange(user, 'write', attached);
  if (put.prev_kv) store.checkRange(user, 'read', key);
}

function authorizeDelete(store: AuthStore, user: string, r: WireDeleteRangeRequest): void {
  store.checkRange(user, 'write', bytes(r.key), bytes(r.range_end));
  if (r.prev_kv) store.checkRange(user, 'read', bytes(r.key), bytes(r.range_end));
}

/** Applies an auth mutation at log index `index`; returns the level operations that record it. */
export function applyAuth(auth: AuthState, request: WireInternalRequest, index: number): BatchOp[] {
  return authOps(authChanges(auth, request, index));
}

function authChanges(auth: AuthState, request: WireInternalRequest, index: number): AuthChange[] {
  const { store, tokens } = auth;
  const kind = request.request;
  switch (kind) {
    case 'auth_enable':
      return store.enable();
    case 'auth_disable': {
      const changes = store.disable();
      tokens.clear();
      return changes;
    }
    case 'authenticate': {
      const r = required(request.authenticate);
      if (!store.enabled) throw new GavelError('AuthNotEnabled');
      const user = store.user(r.name);
      // The proposer checked the password against this hash; a change since then fails the login.
      if (user === undefined || user.noPassword || passwordDigest(user.passwordHash) !== r.password_digest) throw new GavelError('AuthFailed');
      tokens.assign(r.token_digest, r.name, index);
      return [];
    }
    case 'auth_user_add': {
      const r = required(request.auth_user_add);
      const noPassword = r.options?.no_password === true;
      if (!noPassword) requireHash(r.hashedPassword);
      return store.userAdd(r.name, r.hashedPassword, noPassword);
    }
    case 'auth_user_delete': {
      const name = required(request.auth_user_delete).name;
      const changes = store.userDelete(name);
      tokens.invalidateUser(name);
      return changes;
    }
    case 'auth_user_change_password': {
      const r = required(request.auth_user_change_password);
      if (store.user(r.name)?.noPassword !== true) requireHash(r.hashedPassword);
      const changes = store.userChangePassword(r.name, r.hashedPassword);
      tokens.invalidateUser(r.name);
      return changes;
    }
    case 'auth_user_grant_role': {
      const r = required(request.auth_user_grant_role);
      return store.userGrantRole(r.user, r.role);
    }
    case 'auth_user_revoke_role': {
      const r = required(request.auth_user_revoke_role);
      return store.userRevokeRole(r.name, r.role);
    }
    case 'auth_role_add':
      return store.roleAdd(required(request.auth_role_add).name);
    case 'auth_role_delete':
      return store.roleDelete(required(request.auth_role_delete).role);
    case 'auth_role_grant_permission': {
      const r = required(request.auth_role_grant_permission);
      return store.roleGrantPermission(r.name, permissionFromWire(r.perm));
    }
    case 'auth_role_revoke_permission': {
      const r = required(request.auth_role_revoke_permission);
      return store.roleRevokePermission(r.role, bytes(r.key), bytes(r.range_end));
    }
    default:
      throw new Error(`not an auth request: ${String(kind)}`);
  }
}

function permissionFromWire(perm: { permType: number; key: Uint8Array; range_end: Uint8Array } | null | undefined): Permission | undefined {
  if (perm === null || perm === undefined) return undefined;
  return { type: perm.permType as PermissionType, key: new Uint8Array(bytes(perm.key)), rangeEnd: new Uint8Array(bytes(perm.range_end)) };
}

/** Only a member puts a hash in the log; anything else is a malformed entry, refused the same everywhere. */
function requireHash(hash: string): void {
  if (parseHash(hash) === undefined) throw new GavelError('InvalidArgument', 'malformed internal request: not a password hash');
}

function required<T>(value: T | null | undefined): T {
  if (value === null || value === undefined) throw new GavelError('InvalidArgument', 'malformed internal request');
  return value;
}
