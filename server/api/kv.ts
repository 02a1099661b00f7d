/** etcdserverpb.KV: validate, propose or read, map the result. No logic of its own. */
import type * as grpc from '@grpc/grpc-js';
import { GavelError } from '../errors.js';
import type { ApplyResult } from '../apply/state-machine.js';
import { rangeFromWire, txnFromWire } from './convert.js';
import { callSignal, header, headerFields, unary, type ApiContext } from './context.js';
import { encodeDeleteRangeResponse, encodePutResponse, encodeRangeResponse, encodeTxnResponse } from './response-encoding.js';
import { isFencedTxn } from '../metrics/locks.js';
import { checkDeleteRange, checkPut, checkRange, checkTxn, txnWrites } from './validate.js';
import type { WireCompactionRequest, WireDeleteRangeRequest, WirePutRequest, WireRangeRequest, WireTxnRequest } from './wire.js';
import { callerOf, proposalHeader } from './caller.js';
import { authorizeRange, authorizeTxn } from '../apply/auth.js';

/** An applied error result becomes the rejection; a result of another kind is a bug. */
export function expectResult<T extends ApplyResult['type']>(result: ApplyResult, type: T): Extract<ApplyResult, { type: T }> {
  if (result.type === 'error') throw result.error;
  if (result.type !== type) throw new Error(`expected ${type} result, got ${result.type}`);
  return result as Extract<ApplyResult, { type: T }>;
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

/**
 * FOR TESTS ONLY: a deliberately broken server. With GAVEL_UNSAFE_SKIP_FENCE=1, a Txn of the
 * client library's fenced shape (metrics/locks.ts isFencedTxn) runs without its compare, so a
 * holder that lost its lock still writes. The fault test (test/fault/broken.test.ts) switches
 * it on to prove that its fencing checker catches a stale holder. Never set it in production.
 */
export function unsafeSkipFence(env: NodeJS.ProcessEnv = process.env): boolean {
  return env['GAVEL_UNSAFE_SKIP_FENCE'] === '1';
}

export function kvService(ctx: ApiContext): grpc.UntypedServiceImplementation {
  const skipReadBarrier = unsafeLocalReads();
  if (skipReadBarrier) ctx.logger.warn('GAVEL_UNSAFE_LOCAL_READS=1: linearizable reads are answered locally without a read barrier (tests only)');
  const skipFence = unsafeSkipFence();
  if (skipFence) ctx.logger.warn('GAVEL_UNSAFE_SKIP_FENCE=1: fenced Txns run without their compare (tests only)');
  // Honour clients that require a leader (fail fast instead of waiting for an election).
  const leaderAware = <Req, Res>(fn: Parameters<typeof unary<Req, Res>>[0]): ReturnType<typeof unary<Req, Res>> => unary(fn, ctx);
  return {
    Range: leaderAware(async (r: WireRangeRequest, call) => {
      checkRange(r);
      const request = rangeFromWire(r);
      const signal = callSignal(call);
      if (!request.serializable && !skipReadBarrier) await ctx.node.readBarrier(signal);
      // Reads do not go through the log: checked here, against state as new as the read.
      const user = await callerOf(ctx, call, signal);
      if (user !== undefined) authorizeRange(ctx.machine.auth.store, user, r);
      const response = ctx.machine.store.range(request);
      return encodeRangeResponse(headerFields(ctx), ctx.machine.store.currentRevision, response);
    }),

    Put: leaderAware(async (r: WirePutRequest, call) => {
      checkPut(r);
      // Writes are checked when they apply (server/apply/auth.ts), as the header's user.
      const signal = callSignal(call);
      const result = expectResult(await ctx.node.propose({ put: r, header: await proposalHeader(ctx, call, signal) }, signal), 'put');
      return encodePutResponse(headerFields(ctx), result.revision, result.response);
    }),

    DeleteRange: leaderAware(async (r: WireDeleteRangeRequest, call) => {
      checkDeleteRange(r);
      const signal = callSignal(call);
      const result = expectResult(await ctx.node.propose({ delete_range: r, header: await proposalHeader(ctx, call, signal) }, signal), 'deleteRange');
      return encodeDeleteRangeResponse(headerFields(ctx), result.revision, result.response);
    }),

    Txn: leaderAware(async (received: WireTxnRequest, call) => {
      // Tests only: GAVEL_UNSAFE_SKIP_FENCE=1 drops the fence (see unsafeSkipFence).
      const r = skipFence && isFencedTxn(received) ? { ...received, compare: [] } : received;
      checkTxn(r, ctx.config.maxTxnOps);
      const signal = callSignal(call);
      if (!txnWrites(r)) {
        // A read-only txn is served like a Range: a read barrier, then local state.
        const request = txnFromWire(r);
        if (!skipReadBarrier) await ctx.node.readBarrier(signal);
        const user = await callerOf(ctx, call, signal);
        if (user !== undefined) authorizeTxn(ctx.machine.auth.store, user, r, () => []);
        const revision = ctx.machine.store.currentRevision;
        const w = ctx.machine.store.txn(request, () => true);
        return encodeTxnResponse(headerFields(ctx), revision, w.response, revision);
      }
      const result = expectResult(await ctx.node.propose({ txn: r, header: await proposalHeader(ctx, call, signal) }, signal), 'txn');
      if (!result.response.succeeded && isFencedTxn(r)) ctx.lockMetrics.fencingRejections.inc();
      return encodeTxnResponse(headerFields(ctx), result.revision, result.response, result.revision);
    }),

    Compact: leaderAware(async (r: WireCompactionRequest, call) => {
      if (r.revision === undefined) throw new GavelError('InvalidArgument', 'etcdserver: invalid compaction revision');
      // etcd checks no permission for a compaction; a token given must still be valid.
      const signal = callSignal(call);
      const compaction = { revision: r.revision, physical: r.physical };
      const result = expectResult(await ctx.node.propose({ compaction, header: await proposalHeader(ctx, call, signal) }, signal), 'compaction');
      // etcd's physical compaction: answer once the dropped versions are gone from disk too.
      if (r.physical) await ctx.compactionFinished(Number(r.revision));
      return { header: header(ctx, result.revision) };
    }),
  };
}
