/** etcdserverpb.KV: validate, propose or read, map the result. No logic of its own. */
import type * as grpc from '@grpc/grpc-js';
import { GavelError } from '../errors.js';
import type { ApplyResult } from '../apply/state-machine.js';
import { deleteRangeResponseToWire, putResponseToWire, rangeFromWire, rangeResponseToWire, txnFromWire, txnResponseToWire } from './convert.js';
import { callSignal, header, unary, type ApiContext } from './context.js';
import { isFencedTxn } from '../metrics/locks.js';
import { checkDeleteRange, checkPut, checkRange, checkTxn, txnWrites } from './validate.js';
import type { WireCompactionRequest, WireDeleteRangeRequest, WirePutRequest, WireRangeRequest, WireTxnRequest } from './wire.js';

/** An applied error result becomes the rejection; a result of another kind is a bug. */
export function expectResult<T extends ApplyResult['type']>(result: ApplyResult, type: T): Extract<ApplyResult, { type: T }> {
  if (result.type === 'error') throw result.error;
  if (result.type !== type) throw new Error(`expected ${type} result, got ${result.type}`);
  return result as Extract<ApplyResult, { type: T }>;
}

/** etcd fills only the revision in the headers of a txn's nested responses. */
function nestedHeader(revision: number): object {
  return { revision: String(revision) };
}

/**
 * FOR TESTS ONLY: a deliberately broken server. With GAVEL_UNSAFE_LOCAL_READS=1 in the
 * environment, Range and read-only Txn skip the read barrier (ReadIndex) and answer from this
 * member's local state, which may be stale (a follower that has not applied the latest commits,
 * a paused member, a deposed leader). The fault test (test/fault/broken.test.ts) switches it on
 * to prove that its linearizability checker catches stale reads. Never set it in production.
 */
export function unsafeLocalReads(env: NodeJS.ProcessEnv = process.env): boolean {
  return env['GAVEL_UNSAFE_LOCAL_READS'] === '1';
}

export function kvService(ctx: ApiContext): grpc.UntypedServiceImplementation {
  const skipReadBarrier = unsafeLocalReads();
  if (skipReadBarrier) ctx.logger.warn('GAVEL_UNSAFE_LOCAL_READS=1: linearizable reads are answered locally without a read barrier (tests only)');
  // Honour clients that require a leader (fail fast instead of waiting for an election).
  const leaderAware = <Req, Res>(fn: Parameters<typeof unary<Req, Res>>[0]): ReturnType<typeof unary<Req, Res>> => unary(fn, ctx);
  return {
    Range: leaderAware(async (r: WireRangeRequest, call) => {
      checkRange(r);
      const request = rangeFromWire(r);
      if (!request.serializable && !skipReadBarrier) await ctx.node.readBarrier(callSignal(call));
      const response = ctx.machine.store.range(request);
      return { header: header(ctx), ...rangeResponseToWire(response) };
    }),

    Put: leaderAware(async (r: WirePutRequest, call) => {
      checkPut(r);
      const result = expectResult(await ctx.node.propose({ put: r }, callSignal(call)), 'put');
      return { header: header(ctx, result.revision), ...putResponseToWire(result.response) };
    }),

    DeleteRange: leaderAware(async (r: WireDeleteRangeRequest, call) => {
      checkDeleteRange(r);
      const result = expectResult(await ctx.node.propose({ delete_range: r }, callSignal(call)), 'deleteRange');
      return { header: header(ctx, result.revision), ...deleteRangeResponseToWire(result.response) };
    }),

    Txn: leaderAware(async (r: WireTxnRequest, call) => {
      checkTxn(r, ctx.config.maxTxnOps);
      if (!txnWrites(r)) {
        // A read-only txn is served like a Range: a read barrier, then local state.
        const request = txnFromWire(r);
        if (!skipReadBarrier) await ctx.node.readBarrier(callSignal(call));
        const w = ctx.machine.store.txn(request, () => true);
        return { header: header(ctx), ...txnResponseToWire(w.response, nestedHeader(ctx.machine.store.currentRevision)) };
      }
      const result = expectResult(await ctx.node.propose({ txn: r }, callSignal(call)), 'txn');
      if (!result.response.succeeded && isFencedTxn(r)) ctx.lockMetrics.fencingRejections.inc();
      return { header: header(ctx, result.revision), ...txnResponseToWire(result.response, nestedHeader(result.revision)) };
    }),

    Compact: leaderAware(async (r: WireCompactionRequest, call) => {
      if (r.revision === undefined) throw new GavelError('InvalidArgument', 'etcdserver: invalid compaction revision');
      const result = expectResult(await ctx.node.propose({ compaction: { revision: r.revision, physical: r.physical } }, callSignal(call)), 'compaction');
      return { header: header(ctx, result.revision) };
    }),
  };
}
