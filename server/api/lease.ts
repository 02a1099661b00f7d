/** etcdserverpb.Lease: grant and revoke go through the log; keep-alive renews on the leader. */
import type * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { GavelError, isGavelError } from '../errors.js';
import { toBigInt, toNumber } from './convert.js';
import { callSignal, header, headerFields, unary, type ApiContext } from './context.js';
import { expectResult } from './kv.js';
import { failStream } from './status.js';
import { GRPC_FRAME_BYTES, StreamOutput } from './stream-output.js';
import { encodeKeepAliveResponse } from './response-encoding.js';
import type { WireLeaseGrantRequest, WireLeaseIdRequest, WireLeaseTimeToLiveRequest } from './wire.js';
import { callerOf, proposalHeader } from './caller.js';

/** etcd's upper bound on a lease TTL, in seconds. */
export const MAX_LEASE_TTL_SECONDS = 9_000_000_000;

/** A positive 63-bit id: lease ids travel as int64, and clients treat negative ones as invalid. */
export function randomLeaseId(): bigint {
  const id = randomBytes(8).readBigUInt64BE() & 0x7fff_ffff_ffff_ffffn;
  return id === 0n ? 1n : id;
}

export function leaseService(ctx: ApiContext): grpc.UntypedServiceImplementation {
  // Honour clients that require a leader (fail fast instead of waiting for an election).
  const leaderAware = <Req, Res>(fn: Parameters<typeof unary<Req, Res>>[0]): ReturnType<typeof unary<Req, Res>> => unary(fn, ctx);
  return {
    LeaseGrant: leaderAware(async (r: WireLeaseGrantRequest, call) => {
      const ttl = toNumber(r.TTL);
      if (ttl > MAX_LEASE_TTL_SECONDS) throw new GavelError('LeaseTtlTooLarge');
      const requested = toBigInt(r.ID);
      if (requested < 0n) throw new GavelError('InvalidArgument', 'etcdserver: lease ID must not be negative');
      // The proposer picks the id, so every member applies the same grant.
      const id = requested === 0n ? randomLeaseId() : requested;
      // Anyone may grant a lease (etcd checks no permission), but a token given must be valid.
      const signal = callSignal(call);
      const grant = { ID: id.toString(), TTL: String(ttl) };
      const result = expectResult(await ctx.node.propose({ lease_grant: grant, header: await proposalHeader(ctx, call, signal) }, signal), 'leaseGrant');
      return { header: header(ctx, result.revision), ID: result.id.toString(), TTL: String(result.ttlSeconds), error: '' };
    }),

    LeaseRevoke: leaderAware(async (r: WireLeaseIdRequest, call) => {
      // Needs WRITE on every attached key, checked when it applies (server/apply/auth.ts).
      const signal = callSignal(call);
      const result = expectResult(await ctx.node.propose({ lease_revoke: { ID: r.ID }, header: await proposalHeader(ctx, call, signal) }, signal), 'leaseRevoke');
      return { header: header(ctx, result.revision) };
    }),

    LeaseTimeToLive: leaderAware(async (r: WireLeaseTimeToLiveRequest, call) => {
      const id = toBigInt(r.ID);
      const signal = callSignal(call);
      const user = await callerOf(ctx, call, signal);
      // The remaining TTL is known only to the leader, which counts the deadlines.
      const info = await ctx.node.leaseTimeToLive(id, r.keys === true || user !== undefined, signal);
      // Under auth, READ on every attached key (etcd 3.4.26 and 3.5.9 closed that leak of key names).
      if (user !== undefined) for (const key of info.keys) ctx.machine.auth.store.checkRange(user, 'read', key);
      const keys = r.keys === true ? info.keys.map((k) => Buffer.from(k)) : [];
      return { header: header(ctx), ID: id.toString(), TTL: String(info.ttl), grantedTTL: String(info.grantedTtl), keys };
    }),

    LeaseLeases: leaderAware(async (_r: object, call) => {
      await ctx.node.readBarrier(callSignal(call));
      return { header: header(ctx), leases: ctx.machine.lessor.leases().map((id) => ({ ID: id.toString() })) };
    }),

    LeaseKeepAlive: (call: grpc.ServerDuplexStream<WireLeaseIdRequest, object>) => {
      // Past its bound the output stops reading keep-alives until the client reads the answers.
      const output = new StreamOutput<Uint8Array>(call as unknown as grpc.ServerDuplexStream<WireLeaseIdRequest, Uint8Array>, { kind: 'lease_keepalive', tally: ctx.streams });
      let open = true;
      const answer = (id: bigint, ttl: number): void => {
        if (!open) return;
        // Encoded once, here (the serializer passes bytes through): the answer to every keep-alive.
        const bytes = encodeKeepAliveResponse(headerFields(ctx), ctx.machine.store.currentRevision, id, ttl);
        output.write(bytes, GRPC_FRAME_BYTES + bytes.byteLength);
      };
      // Keep-alives read and not yet answered: a client that half-closes still gets their answers
      // (etcd answers each request before it reads the end; the JSON gateway half-closes at once).
      let inFlight = 0;
      let ending = false;
      call.on('data', (r: WireLeaseIdRequest) => {
        const id = toBigInt(r.ID);
        const answered = output.begin();
        inFlight++;
        ctx.node
          .renewLease(id)
          .then(
            (ttl) => answer(id, ttl),
            (error: unknown) => {
              if (!open) return;
              // An unknown lease answers TTL 0, which clients read as "expired"; the stream stays open.
              if (isGavelError(error, 'LeaseNotFound')) answer(id, 0);
              else {
                open = false;
                failStream(call, error);
              }
            },
          )
          .finally(() => {
            answered();
            inFlight--;
            if (ending && inFlight === 0) endStream();
          });
      });
      // The output closes itself when the call finishes or is cancelled.
      const close = (): void => {
        open = false;
      };
      const endStream = (): void => {
        if (!open) return;
        close();
        call.end();
      };
      call.on('end', () => {
        ending = true;
        if (inFlight === 0) endStream();
      });
      call.on('cancelled', close);
      call.on('error', close);
    },
  };
}
