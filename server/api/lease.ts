/** etcdserverpb.Lease: grant and revoke go through the log; keep-alive renews on the leader. */
import type * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { GavelError, isGavelError } from '../errors.js';
import { toBigInt, toNumber } from './convert.js';
import { callSignal, header, unary, type ApiContext } from './context.js';
import { expectResult } from './kv.js';
import { toServiceError } from './status.js';
import type { WireLeaseGrantRequest, WireLeaseIdRequest, WireLeaseTimeToLiveRequest } from './wire.js';

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
      const result = expectResult(await ctx.node.propose({ lease_grant: { ID: id.toString(), TTL: String(ttl) } }, callSignal(call)), 'leaseGrant');
      return { header: header(ctx, result.revision), ID: result.id.toString(), TTL: String(result.ttlSeconds), error: '' };
    }),

    LeaseRevoke: leaderAware(async (r: WireLeaseIdRequest, call) => {
      const result = expectResult(await ctx.node.propose({ lease_revoke: { ID: r.ID } }, callSignal(call)), 'leaseRevoke');
      return { header: header(ctx, result.revision) };
    }),

    LeaseTimeToLive: leaderAware(async (r: WireLeaseTimeToLiveRequest, call) => {
      const id = toBigInt(r.ID);
      // The remaining TTL is known only to the leader, which counts the deadlines.
      const info = await ctx.node.leaseTimeToLive(id, r.keys === true, callSignal(call));
      return { header: header(ctx), ID: id.toString(), TTL: String(info.ttl), grantedTTL: String(info.grantedTtl), keys: info.keys.map((k) => Buffer.from(k)) };
    }),

    LeaseLeases: leaderAware(async (_r: object, call) => {
      await ctx.node.readBarrier(callSignal(call));
      return { header: header(ctx), leases: ctx.machine.lessor.leases().map((id) => ({ ID: id.toString() })) };
    }),

    LeaseKeepAlive: (call: grpc.ServerDuplexStream<WireLeaseIdRequest, object>) => {
      let open = true;
      call.on('data', (r: WireLeaseIdRequest) => {
        const id = toBigInt(r.ID);
        ctx.node.renewLease(id).then(
          (ttl) => {
            if (open) call.write({ header: header(ctx), ID: id.toString(), TTL: String(ttl) });
          },
          (error: unknown) => {
            if (!open) return;
            // An unknown lease answers TTL 0, which clients read as "expired"; the stream stays open.
            if (isGavelError(error, 'LeaseNotFound')) call.write({ header: header(ctx), ID: id.toString(), TTL: '0' });
            else {
              open = false;
              call.destroy(toServiceError(error) as unknown as Error);
            }
          },
        );
      });
      const close = (): void => {
        open = false;
      };
      call.on('end', () => {
        close();
        call.end();
      });
      call.on('cancelled', close);
      call.on('error', close);
    },
  };
}
