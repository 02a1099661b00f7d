/**
 * Who is calling: the user a request runs as, for the permission checks of server/auth/. Resolved
 * on the member that receives the request, in etcd's order (AuthInfoFromCtx, AuthInfoFromTLS):
 *
 *   1. a call made in-process by this member's Lock or Election service carries the user of the
 *      client that called those services (so the recipes' KV operations are the caller's own);
 *   2. else the `token` metadata, as etcd clients send it, or `authorization`, as etcd's JSON
 *      gateway forwards the HTTP header (etcd reads both): a simple token from Authenticate
 *      (server/auth/tokens.ts); an unknown or expired one is Unauthenticated "invalid auth token",
 *      on which etcdctl and clientv3 authenticate again;
 *   3. else, under --client-cert-auth, the common name of the verified client certificate;
 *   4. else no user (''), which every check refuses with "etcdserver: user name is empty".
 *
 * While auth is disabled there is no caller (undefined) and nothing is checked; tokens are then
 * ignored, as etcd 3.5 does.
 */
import type * as grpc from '@grpc/grpc-js';
import { GavelError } from '../errors.js';
import { parseToken } from '../auth/tokens.js';
import type { ApiContext } from './context.js';

/** Set by server/api/in-process.ts on the calls it makes: the outer caller's user. */
export const IN_PROCESS_CALLER: unique symbol = Symbol('gavel.inProcessCaller');

/** The metadata key etcd clients put their token in (rpctypes.TokenFieldNameGRPC). */
export const TOKEN_METADATA_KEY = 'token';
/** The key the JSON gateway puts the HTTP Authorization header in (rpctypes.TokenFieldNameSwagger). */
export const AUTHORIZATION_METADATA_KEY = 'authorization';

/** What the resolution reads of a call; grpc-js calls and in-process calls both have it. */
export interface CallerSource {
  readonly metadata: grpc.Metadata;
  getAuthContext?: () => { sslPeerCertificate?: { subject?: { CN?: string | string[] } } | undefined } | null;
  readonly [IN_PROCESS_CALLER]?: string | undefined;
}

/**
 * The caller's user name while auth is enabled ('' for none), undefined while it is disabled.
 * Rejects with InvalidAuthToken for a token this member does not know (after waiting, with a
 * read barrier, for the Authenticate entry a fresh token names).
 */
export async function callerOf(ctx: ApiContext, call: CallerSource, signal?: AbortSignal): Promise<string | undefined> {
  if (!ctx.machine.auth.store.enabled) return undefined;
  const inProcess = call[IN_PROCESS_CALLER];
  if (inProcess !== undefined) return inProcess;
  const token = call.metadata.get(TOKEN_METADATA_KEY)[0] ?? call.metadata.get(AUTHORIZATION_METADATA_KEY)[0];
  if (token !== undefined) return tokenUser(ctx, String(token), signal);
  if (ctx.config.clientCertAuth) {
    const commonName = call.getAuthContext?.()?.sslPeerCertificate?.subject?.CN;
    const name = Array.isArray(commonName) ? commonName[0] : commonName;
    if (name !== undefined && name !== '') return name;
  }
  return '';
}

async function tokenUser(ctx: ApiContext, token: string, signal: AbortSignal | undefined): Promise<string> {
  const parsed = parseToken(token);
  if (parsed === undefined) throw new GavelError('InvalidAuthToken');
  let user = ctx.machine.auth.tokens.lookup(parsed.digest, parsed.index);
  if (user === undefined && parsed.index > ctx.machine.appliedIndex) {
    // Issued by another member an instant ago: catch up with the log, then look again.
    await ctx.node.readBarrier(signal);
    user = ctx.machine.auth.tokens.lookup(parsed.digest, parsed.index);
  }
  if (user === undefined) throw new GavelError('InvalidAuthToken');
  return user;
}

/** etcd's RequestHeader for a client's proposal: checked again, authoritatively, when it applies. */
export async function proposalHeader(ctx: ApiContext, call: CallerSource, signal?: AbortSignal): Promise<{ username: string }> {
  return { username: (await callerOf(ctx, call, signal)) ?? '' };
}

/**
 * Root only (auth management reads, member changes, hashes, defragmentation), checked against
 * state at least as new as the request: a read barrier first.
 */
export async function requireAdmin(ctx: ApiContext, call: CallerSource, signal?: AbortSignal): Promise<void> {
  const user = await callerOf(ctx, call, signal);
  if (user === undefined) return;
  await ctx.node.readBarrier(signal);
  ctx.machine.auth.store.checkAdmin(user);
}
