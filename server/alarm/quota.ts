/**
 * The space quota's arithmetic, as etcd 3.4's etcdserver/quota.go: what a request costs and
 * whether it fits. Pure; the I/O shell that measures the disk and raises the alarm is
 * server/api/quota.ts.
 *
 * Only requests that add data cost anything: a Put (key + value + 256 bytes of bookkeeping), a
 * Txn (its costlier branch's puts) and a LeaseGrant (64 bytes). A request of cost 0 (a read-only
 * Txn) always fits, so it is served even past the quota, as by etcd 3.4.23.
 */
import type { WirePutRequest, WireRequestOp, WireTxnRequest } from '../api/wire.js';

/** etcd's DefaultQuotaBytes: --quota-backend-bytes 0 means this. */
export const DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;
/** etcd's MaxQuotaBytes: larger quotas are allowed, with a warning (degraded performance). */
export const MAX_SUGGESTED_QUOTA_BYTES = 8 * 1024 * 1024 * 1024;
/** etcd's kvOverhead: bookkeeping per stored key version. */
const KV_OVERHEAD_BYTES = 256;
/** etcd's leaseOverhead. */
export const LEASE_OVERHEAD_BYTES = 64;

/** The quota in force for a configured value: 0 → etcd's default, negative → none (Infinity). */
export function effectiveQuotaBytes(configured: number): number {
  if (configured < 0) return Number.POSITIVE_INFINITY;
  return configured === 0 ? DEFAULT_QUOTA_BYTES : configured;
}

/** etcd's backendQuota.Available: the database would stay strictly below the quota. */
export function fitsQuota(sizeBytes: number, costBytes: number, quotaBytes: number): boolean {
  return costBytes === 0 || sizeBytes + costBytes < quotaBytes;
}

export function putCost(r: WirePutRequest): number {
  return KV_OVERHEAD_BYTES + (r.key?.length ?? 0) + (r.value?.length ?? 0);
}

/**
 * The costlier branch's puts. Unlike etcd 3.4, which counts only a branch's top-level puts,
 * the puts of nested txns count too: they add data just the same.
 */
export function txnCost(r: WireTxnRequest): number {
  return Math.max(branchCost(r.success ?? []), branchCost(r.failure ?? []));
}

function branchCost(ops: readonly WireRequestOp[]): number {
  let total = 0;
  for (const op of ops) {
    if (op.request_put) total += putCost(op.request_put);
    else if (op.request_txn) total += txnCost(op.request_txn);
  }
  return total;
}

/**
 * Whether a txn puts anything in any branch, nested txns included (its cost is above 0).
 * Iterative: this runs while applying, where a deep request must not exhaust the stack.
 */
export function txnPuts(r: WireTxnRequest): boolean {
  const pending: WireTxnRequest[] = [r];
  for (let txn = pending.pop(); txn !== undefined; txn = pending.pop()) {
    for (const op of [...(txn.success ?? []), ...(txn.failure ?? [])]) {
      if (op.request_put) return true;
      if (op.request_txn) pending.push(op.request_txn);
    }
  }
  return false;
}
