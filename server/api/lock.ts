/**
 * v3lockpb.Lock, served by the client library's Mutex running in-process (DESIGN.md §5), with
 * etcd's key layout `name/<lease hex>`. Beyond etcd: a waiter whose lease expires gets an error
 * at once, never a grant; `wait_ms` and `try_lock` let the server answer "not acquired"
 * definitively, so every language gets a try-lock without racing a gRPC deadline.
 */
import type * as grpc from '@grpc/grpc-js';
import { GavelError } from '../errors.js';
import { toBigInt, toNumber } from './convert.js';
import { callSignal, header, unary, type ApiContext } from './context.js';
import { clientForCall, recipeError, sessionForLease, type RecipeClients } from './recipe-errors.js';
import { rangeRequest } from '../mvcc/requests.js';

interface WireLockRequest {
  name: Buffer;
  lease: string;
  wait_ms: string;
  try_lock: boolean;
}

/** The lock name of a key `name/<lease hex>`. */
function lockName(key: Buffer): string {
  const text = key.toString();
  const slash = text.lastIndexOf('/');
  return slash < 0 ? text : text.slice(0, slash);
}

export function lockService(ctx: ApiContext, clients: RecipeClients): grpc.UntypedServiceImplementation {
  return {
    Lock: unary(async (r: WireLockRequest, call) => {
      const signal = callSignal(call);
      const client = await clientForCall(ctx, clients, call, signal);
      const waitMs = toNumber(r.wait_ms);
      if (waitMs < 0) throw new GavelError('InvalidArgument', 'gavel: wait_ms must not be negative');
      const wait = ctx.lockMetrics.waiting('v3lock', r.name.toString());
      try {
        const session = await sessionForLease(client, toBigInt(r.lease), signal);
        const mutex = client.mutex(r.name, { session, keyPer: 'session' });
        if (r.try_lock) {
          if (!(await mutex.tryLock({ signal }))) throw new GavelError('LockBusy');
        } else {
          await mutex.lock({ signal, ...(waitMs > 0 ? { timeoutMs: waitMs } : {}) });
        }
        const revision = mutex.fencingToken;
        // Held while the key is there with the grant's create revision (a lease expiry removes it).
        wait.granted(mutex.key.toString('hex'), () => ctx.machine.store.range(rangeRequest(mutex.key)).kvs[0]?.createRevision === Number(revision));
        return { header: header(ctx), key: mutex.key };
      } catch (error) {
        wait.failed();
        throw recipeError(error);
      }
    }, ctx),

    Unlock: unary(async (r: { key: Buffer }, call) => {
      const signal = callSignal(call);
      const client = await clientForCall(ctx, clients, call, signal);
      try {
        const result = await client.kv.delete(r.key, { signal });
        ctx.lockMetrics.released('v3lock', lockName(r.key), r.key.toString('hex'));
        return { header: header(ctx, Number(result.header.revision)) };
      } catch (error) {
        throw recipeError(error);
      }
    }, ctx),
  };
}
