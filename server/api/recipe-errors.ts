/** What the recipe-backed services (Lock, Election) share: the caller's client, adopting a caller's lease, mapping errors. */
import type { Client } from '../../client/client.js';
import { GavelClientError } from '../../client/errors.js';
import type { Session } from '../../client/session.js';
import { GavelError } from '../errors.js';
import { etcdMessage } from './status.js';
import { callerOf, type CallerSource } from './caller.js';
import type { ApiContext } from './context.js';

/**
 * The in-process client the recipes run with for a caller: its KV, Lease and Watch calls are
 * checked against that user's permissions (undefined: auth is off, nothing is checked).
 */
export type RecipeClients = (caller: string | undefined) => Client;

/** The recipes' client for the user who made `call` (Unauthenticated for an invalid token). */
export async function clientForCall(ctx: ApiContext, clients: RecipeClients, call: CallerSource, signal?: AbortSignal): Promise<Client> {
  return clients(await callerOf(ctx, call, signal));
}

/** etcd's v3lock and v3election give lease 0 a fresh lease of this TTL (concurrency's default). */
const DEFAULT_RECIPE_TTL_SECONDS = 60;

/** A session on the caller's lease, not kept alive by us: the caller keeps it alive. */
export async function sessionForLease(client: Client, leaseId: bigint, signal: AbortSignal): Promise<Session> {
  const id = leaseId !== 0n ? leaseId : (await client.lease.grant(DEFAULT_RECIPE_TTL_SECONDS, { signal })).id;
  return client.session({ leaseId: id, keepAlive: false, signal });
}

/**
 * etcd 3.4 reports its recipe errors with status Unknown and the error's text; clients match on
 * the text, so we do the same. Transient failures keep their status, so clients retry them.
 */
export function recipeError(error: unknown): unknown {
  if (error instanceof GavelError) return error;
  if (!(error instanceof GavelClientError)) return error;
  switch (error.code) {
    case 'DeadlineExceeded':
      // Only the server's own wait (wait_ms) ends in a deadline here: the lock was not acquired.
      return new GavelError('LockBusy');
    case 'LockLost':
    case 'SessionExpired':
      // The waiter's own key went away with its lease.
      return new GavelError('Unknown', etcdMessage('LeaseNotFound'));
    case 'Aborted':
      return new GavelError('Unknown', 'context canceled');
    case 'NoLeader':
    case 'LeaderChanged':
    case 'Timeout':
      return new GavelError(error.code);
    case 'Unavailable':
      return new GavelError('Stopped');
    default:
      return new GavelError('Unknown', error.message);
  }
}
