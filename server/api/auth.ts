/**
 * etcdserverpb.Auth: enabling auth, logging in, users, roles and permissions (server/auth/).
 * Changes go through the log and are checked when they apply (root only while auth is enabled);
 * reads of the auth state wait for a read barrier. Two things happen here, on the member that
 * receives the request, because they must not enter the log: hashing a new password (only the
 * hash is proposed) and checking a password at login (only a digest of the token is proposed).
 */
import type * as grpc from '@grpc/grpc-js';
import { GavelError } from '../errors.js';
import type { Mutation } from '../apply/request.js';
import { passwordDigest } from '../apply/auth.js';
import { hashPassword, verifyNothing, verifyPassword } from '../auth/password.js';
import { PasswordGate } from '../auth/password-gate.js';
import { formatToken, newTokenPrefix, prefixDigest } from '../auth/tokens.js';
import type { Permission } from '../auth/store.js';
import { callerOf, proposalHeader, requireAdmin, type CallerSource } from './caller.js';
import { callSignal, header, unary, type ApiContext } from './context.js';
import { expectResult } from './kv.js';
import type { WireAuthRequests, WirePermission } from './wire.js';

function permissionToWire(permission: Permission): WirePermission {
  return { permType: permission.type, key: Buffer.from(permission.key), range_end: Buffer.from(permission.rangeEnd) };
}

/** A client-made hash cannot be checked (etcd 3.5 takes bcrypt ones): the password must come in clear, over TLS. */
function refuseClientHash(hashedPassword: string | undefined): void {
  if (hashedPassword !== undefined && hashedPassword !== '') throw new GavelError('InvalidArgument', 'gavel: hashedPassword is not accepted; send password (the member hashes it)');
}

export function authService(ctx: ApiContext): grpc.UntypedServiceImplementation {
  // Every scrypt this member runs for a client passes one gate: bounded, fair across connections.
  const passwords = new PasswordGate();
  // Honour clients that require a leader (fail fast instead of waiting for an election).
  const leaderAware = <Req, Res>(fn: Parameters<typeof unary<Req, Res>>[0]): ReturnType<typeof unary<Req, Res>> => unary(fn, ctx);
  /** Proposes an auth change as the caller; the check (root only, while enabled) happens when it applies. */
  const change = async (call: CallerSource & grpc.ServerUnaryCall<unknown, unknown>, mutation: Mutation): Promise<object> => {
    const signal = callSignal(call);
    const result = expectResult(await ctx.node.propose({ ...mutation, header: await proposalHeader(ctx, call, signal) }, signal), 'auth');
    return { header: header(ctx, result.revision) };
  };
  /** The auth state as of now, for a reader allowed by `allowed` (root always is). */
  const read = async (call: grpc.ServerUnaryCall<unknown, unknown>, allowed: (user: string) => boolean = () => false): Promise<void> => {
    const signal = callSignal(call);
    const user = await callerOf(ctx, call, signal);
    await ctx.node.readBarrier(signal);
    if (user !== undefined && !allowed(user)) ctx.machine.auth.store.checkAdmin(user);
  };
  return {
    AuthEnable: leaderAware(async (_r: object, call) => change(call, { auth_enable: {} })),
    AuthDisable: leaderAware(async (_r: object, call) => change(call, { auth_disable: {} })),

    AuthStatus: leaderAware(async (_r: object, call) => {
      await ctx.node.readBarrier(callSignal(call));
      const store = ctx.machine.auth.store;
      return { header: header(ctx), enabled: store.enabled, authRevision: String(store.revision) };
    }),

    Authenticate: leaderAware(async (r: { name: string; password: string }, call) => {
      const signal = callSignal(call);
      // The newest auth state: a login right after `auth enable` or a password change on another member.
      await ctx.node.readBarrier(signal);
      const store = ctx.machine.auth.store;
      if (!store.enabled) throw new GavelError('AuthNotEnabled');
      const user = store.user(r.name);
      const ok = await passwords.run(
        call.getPeer(),
        () => (user === undefined || user.noPassword ? verifyNothing(r.password) : verifyPassword(r.password, user.passwordHash)),
        signal,
      );
      if (!ok || user === undefined) {
        ctx.logger.info('authentication failed', { user: r.name });
        throw new GavelError('AuthFailed');
      }
      // Every member registers the token when this applies; the log gets only a digest of it.
      const prefix = newTokenPrefix();
      const authenticate = { name: r.name, token_digest: prefixDigest(prefix), password_digest: passwordDigest(user.passwordHash) };
      const result = expectResult(await ctx.node.propose({ authenticate }, signal), 'auth');
      return { header: header(ctx, result.revision), token: formatToken(prefix, result.index) };
    }),

    UserAdd: leaderAware(async (r: WireAuthRequests['auth_user_add'], call) => {
      refuseClientHash(r.hashedPassword);
      const noPassword = r.options?.no_password === true;
      // Hashing costs a member tens of milliseconds: only for those who may add users.
      await requireAdmin(ctx, call, callSignal(call));
      const hashedPassword = noPassword ? '' : await passwords.run(call.getPeer(), () => hashPassword(r.password ?? ''), callSignal(call));
      return change(call, { auth_user_add: { name: r.name, password: '', hashedPassword, options: { no_password: noPassword } } });
    }),

    UserChangePassword: leaderAware(async (r: WireAuthRequests['auth_user_change_password'], call) => {
      refuseClientHash(r.hashedPassword);
      await requireAdmin(ctx, call, callSignal(call));
      const hashedPassword = await passwords.run(call.getPeer(), () => hashPassword(r.password ?? ''), callSignal(call));
      return change(call, { auth_user_change_password: { name: r.name, password: '', hashedPassword } });
    }),

    UserDelete: leaderAware(async (r: WireAuthRequests['auth_user_delete'], call) => change(call, { auth_user_delete: { name: r.name } })),
    UserGrantRole: leaderAware(async (r: WireAuthRequests['auth_user_grant_role'], call) => change(call, { auth_user_grant_role: { user: r.user, role: r.role } })),
    UserRevokeRole: leaderAware(async (r: WireAuthRequests['auth_user_revoke_role'], call) => change(call, { auth_user_revoke_role: { name: r.name, role: r.role } })),
    RoleAdd: leaderAware(async (r: WireAuthRequests['auth_role_add'], call) => change(call, { auth_role_add: { name: r.name } })),
    RoleDelete: leaderAware(async (r: WireAuthRequests['auth_role_delete'], call) => change(call, { auth_role_delete: { role: r.role } })),
    RoleGrantPermission: leaderAware(async (r: WireAuthRequests['auth_role_grant_permission'], call) =>
      change(call, { auth_role_grant_permission: { name: r.name, perm: r.perm ?? null } }),
    ),
    RoleRevokePermission: leaderAware(async (r: WireAuthRequests['auth_role_revoke_permission'], call) =>
      change(call, { auth_role_revoke_permission: { role: r.role, key: r.key, range_end: r.range_end } }),
    ),

    // A user may read its own record and its roles' (etcd's authApplierV3.UserGet, RoleGet).
    UserGet: leaderAware(async (r: { name: string }, call) => {
      await read(call, (user) => user === r.name);
      const user = ctx.machine.auth.store.user(r.name);
      if (user === undefined) throw new GavelError('UserNotFound');
      return { header: header(ctx), roles: [...user.roles] };
    }),

    RoleGet: leaderAware(async (r: { role: string }, call) => {
      await read(call, (user) => ctx.machine.auth.store.hasRole(user, r.role));
      const role = ctx.machine.auth.store.role(r.role);
      if (role === undefined) throw new GavelError('RoleNotFound');
      return { header: header(ctx), perm: role.permissions.map(permissionToWire) };
    }),

    UserList: leaderAware(async (_r: object, call) => {
      await read(call);
      return { header: header(ctx), users: ctx.machine.auth.store.userNames() };
    }),

    RoleList: leaderAware(async (_r: object, call) => {
      await read(call);
      return { header: header(ctx), roles: ctx.machine.auth.store.roleNames() };
    }),
  };
}
