/**
 * v3electionpb.Election, served by the client library's Election running in-process, with
 * etcd's layout (`name/<lease hex>`, LeaderKey {name, key, rev, lease}) and etcd 3.4's errors
 * ("election: no leader", "election: not leader", `"leader" field must be provided`, status Unknown).
 */
import type * as grpc from '@grpc/grpc-js';
import { proclaimAs, resignAs, type LeaderKey } from '../../client/election.js';
import type { KeyValue } from '../../client/kv.js';
import { GavelError } from '../errors.js';
import { toBigInt } from './convert.js';
import { callSignal, header, unary, type ApiContext } from './context.js';
import { clientForCall, recipeError, sessionForLease, type RecipeClients } from './recipe-errors.js';
import { failStream } from './status.js';
import { encodedSize, StreamOutput } from './stream-output.js';

interface WireLeaderKey {
  name: Buffer;
  key: Buffer;
  rev: string;
  lease: string;
}

const leaderBytes = encodedSize('v3electionpb.LeaderResponse');

/** etcd's v3election ErrMissingLeaderKey: Proclaim and Resign without a `leader` field (status Unknown). */
const MISSING_LEADER_KEY = '"leader" field must be provided';

function leaderKeyFromWire(w: WireLeaderKey | null | undefined): LeaderKey {
  // Checked before anything is looked up, as etcd's electionServer does.
  if (!w) throw new GavelError('Unknown', MISSING_LEADER_KEY);
  return { name: w.name, key: w.key, revision: toBigInt(w.rev), lease: toBigInt(w.lease) };
}

function keyValueToWire(kv: KeyValue): object {
  return {
    key: kv.key,
    value: kv.value,
    create_revision: String(kv.createRevision),
    mod_revision: String(kv.modRevision),
    version: String(kv.version),
    lease: String(kv.lease),
  };
}

export function electionService(ctx: ApiContext, clients: RecipeClients): grpc.UntypedServiceImplementation {
  const guarded =
    <Req, Res>(fn: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>) =>
    (request: Req, call: grpc.ServerUnaryCall<Req, Res>): Promise<Res> =>
      fn(request, call).catch((error: unknown) => {
        throw recipeError(error);
      });
  return {
    Campaign: unary(
      guarded(async (r: { name: Buffer; lease: string; value: Buffer }, call) => {
        const signal = callSignal(call);
        const client = await clientForCall(ctx, clients, call, signal);
        const session = await sessionForLease(client, toBigInt(r.lease), signal);
        const leader = await client.election(r.name, { session }).campaign(r.value, { signal });
        ctx.lockMetrics.electionLeaderChanges.inc({ name: ctx.lockMetrics.label(r.name.toString()) });
        return { header: header(ctx), leader: { name: leader.name, key: leader.key, rev: String(leader.revision), lease: String(leader.lease) } };
      }),
      ctx,
    ),

    Proclaim: unary(
      guarded(async (r: { leader: WireLeaderKey | null; value: Buffer }, call) => {
        const client = await clientForCall(ctx, clients, call);
        await proclaimAs(client.kv, leaderKeyFromWire(r.leader), r.value, { signal: callSignal(call) });
        return { header: header(ctx) };
      }),
      ctx,
    ),

    Leader: unary(
      guarded(async (r: { name: Buffer }, call) => {
        const client = await clientForCall(ctx, clients, call);
        const leader = await client.election(r.name).leader({ signal: callSignal(call) });
        if (leader === undefined) throw new GavelError('Unknown', 'election: no leader');
        return { header: header(ctx), kv: keyValueToWire(leader) };
      }),
      ctx,
    ),

    Resign: unary(
      guarded(async (r: { leader: WireLeaderKey | null }, call) => {
        const client = await clientForCall(ctx, clients, call);
        await resignAs(client.kv, leaderKeyFromWire(r.leader), { signal: callSignal(call) });
        return { header: header(ctx) };
      }),
      ctx,
    ),

    Observe: (call: grpc.ServerWritableStream<{ name: Buffer }, object>) => {
      const signal = callSignal(call);
      const output = new StreamOutput<object>(call, { kind: 'election_observe', tally: ctx.streams });
      void (async () => {
        const client = await clientForCall(ctx, clients, call, signal);
        // etcd's Observe reports leaders only; "no leader" moments are skipped on this wire.
        for await (const change of client.election(call.request.name).observe({ signal })) {
          if (change.leader === undefined) continue;
          const response = { header: header(ctx, Number(change.revision)), kv: keyValueToWire(change.leader) };
          // A client that does not read holds the observer here, and its watch behind it: like
          // etcd's, it falls behind and catches up from history once the client reads again.
          if (!output.write(response, leaderBytes(response))) await output.room();
        }
        if (!signal.aborted) call.end();
      })().catch((error: unknown) => {
        if (!signal.aborted) failStream(call, recipeError(error));
      });
    },
  };
}
