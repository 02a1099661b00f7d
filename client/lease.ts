/** The Lease API with bigint ids. Keep-alive streams live in session.ts, which owns their timing. */
import { headerFromWire, type Header } from './kv.js';
import type { CallOptions, Rpc } from './rpc.js';

export interface LeaseGrant {
  readonly id: bigint;
  readonly ttlSeconds: number;
  readonly header: Header;
}

export interface LeaseTimeToLive {
  readonly id: bigint;
  /** Seconds left; -1 when the lease does not exist (expired or revoked). */
  readonly ttlSeconds: number;
  readonly grantedTtlSeconds: number;
  readonly keys: Buffer[];
}

/** Lease ids as etcd prints them and as lock and election keys carry them: lowercase hex. */
export function leaseHex(id: bigint): string {
  return id.toString(16);
}

export class Lease {
  constructor(private readonly rpc: Rpc) {}

  async grant(ttlSeconds: number, options: CallOptions & { id?: bigint } = {}): Promise<LeaseGrant> {
    if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0) throw new RangeError(`lease TTL must be a positive integer number of seconds, got ${ttlSeconds}`);
    // With a chosen id a retry is harmless (a second grant fails with "lease already exists");
    // without one it could leave an orphan lease, so only never-sent failures are retried.
    const policy = options.id === undefined ? 'write' : 'idempotent';
    const r = await this.rpc.unary<{ header?: object; ID?: string; TTL?: string; error?: string }>('etcdserverpb.Lease', 'LeaseGrant', { TTL: String(ttlSeconds), ID: String(options.id ?? 0n) }, policy, options);
    return { id: BigInt(r.ID ?? '0'), ttlSeconds: Number(r.TTL ?? '0'), header: headerFromWire(r.header) };
  }

  async revoke(id: bigint, options: CallOptions = {}): Promise<Header> {
    const r = await this.rpc.unary<{ header?: object }>('etcdserverpb.Lease', 'LeaseRevoke', { ID: String(id) }, 'idempotent', options);
    return headerFromWire(r.header);
  }

  async timeToLive(id: bigint, options: CallOptions & { keys?: boolean } = {}): Promise<LeaseTimeToLive> {
    const r = await this.rpc.unary<{ ID?: string; TTL?: string; grantedTTL?: string; keys?: Buffer[] }>('etcdserverpb.Lease', 'LeaseTimeToLive', { ID: String(id), keys: options.keys === true }, 'idempotent', options);
    return { id, ttlSeconds: Number(r.TTL ?? '-1'), grantedTtlSeconds: Number(r.grantedTTL ?? '0'), keys: r.keys ?? [] };
  }

  async leases(options: CallOptions = {}): Promise<bigint[]> {
    const r = await this.rpc.unary<{ leases?: { ID: string }[] }>('etcdserverpb.Lease', 'LeaseLeases', {}, 'idempotent', options);
    return (r.leases ?? []).map((l) => BigInt(l.ID));
  }
}
