/**
 * Request checks done before a request is proposed, as etcd's v3rpc/key.go does: a rejected
 * request never reaches the log and writes nothing.
 */
import { GavelError } from '../errors.js';
import type { WireDeleteRangeRequest, WirePutRequest, WireRangeRequest, WireRequestOp, WireTxnRequest } from './wire.js';

function hasBytes(value: Uint8Array | null | undefined): boolean {
  return value !== null && value !== undefined && value.length > 0;
}

export function checkRange(r: WireRangeRequest): void {
  if (!hasBytes(r.key)) throw new GavelError('EmptyKey');
  // An unknown sort_order is accepted (etcd 3.4 answers unsorted; see rangeFromWire). An unknown
  // sort_target is refused as etcd 3.5+ refuses it: etcd 3.4 crashes on it.
  const target = r.sort_target ?? 0;
  if (!Number.isInteger(target) || target < 0 || target > 4) throw new GavelError('InvalidSortOption');
}

export function checkPut(r: WirePutRequest): void {
  if (!hasBytes(r.key)) throw new GavelError('EmptyKey');
  if (r.ignore_value && hasBytes(r.value)) throw new GavelError('ValueProvided');
  if (r.ignore_lease && r.lease !== '0' && r.lease !== '') throw new GavelError('LeaseProvided');
}

export function checkDeleteRange(r: WireDeleteRangeRequest): void {
  if (!hasBytes(r.key)) throw new GavelError('EmptyKey');
}

export function checkTxn(r: WireTxnRequest, maxTxnOps: number): void {
  const compare = r.compare ?? [];
  const success = r.success ?? [];
  const failure = r.failure ?? [];
  if (compare.length > maxTxnOps || success.length > maxTxnOps || failure.length > maxTxnOps) throw new GavelError('TooManyOps');
  for (const c of compare) if (!hasBytes(c.key)) throw new GavelError('EmptyKey');
  for (const op of [...success, ...failure]) checkRequestOp(op, maxTxnOps);
  checkNoDuplicateWrites(success);
  checkNoDuplicateWrites(failure);
}

function checkRequestOp(op: WireRequestOp, maxTxnOps: number): void {
  if (op.request_range) checkRange(op.request_range);
  else if (op.request_put) checkPut(op.request_put);
  else if (op.request_delete_range) checkDeleteRange(op.request_delete_range);
  else if (op.request_txn) checkTxn(op.request_txn, maxTxnOps);
  else throw new GavelError('InvalidArgument', 'etcdserver: invalid txn request: empty RequestOp');
}

/** Whether a txn writes anything in either branch (a read-only txn is served like a Range). */
export function txnWrites(r: WireTxnRequest): boolean {
  return [...(r.success ?? []), ...(r.failure ?? [])].some((op) => op.request_put || op.request_delete_range || (op.request_txn && txnWrites(op.request_txn)));
}

interface Interval {
  readonly key: Buffer;
  readonly end: Buffer | undefined; // undefined: the single key
}

/**
 * etcd refuses a txn branch that writes one key twice: two puts of one key, or a put inside a
 * deleted range. Nested txns count, each of their branches separately; deletes may overlap.
 */
function checkNoDuplicateWrites(ops: readonly WireRequestOp[]): void {
  const { puts, deletes } = collectWrites(ops);
  const seen = new Set<string>();
  for (const key of puts) {
    const hex = key.toString('hex');
    if (seen.has(hex)) throw new GavelError('DuplicateKey');
    seen.add(hex);
  }
  for (const key of puts) {
    for (const d of deletes) if (intervalContains(d, key)) throw new GavelError('DuplicateKey');
  }
}

function collectWrites(ops: readonly WireRequestOp[]): { puts: Buffer[]; deletes: Interval[] } {
  const puts: Buffer[] = [];
  const deletes: Interval[] = [];
  for (const op of ops) {
    if (op.request_put) puts.push(Buffer.from(op.request_put.key));
    else if (op.request_delete_range) deletes.push(toInterval(op.request_delete_range.key, op.request_delete_range.range_end));
    else if (op.request_txn) {
      // Writes in the nested txn's branches must not collide with this level's writes;
      // only one of its branches runs, so check each branch against the outer writes.
      for (const branch of [op.request_txn.success ?? [], op.request_txn.failure ?? []]) {
        const inner = collectWrites(branch);
        for (const key of inner.puts) {
          if (puts.some((p) => p.equals(key))) throw new GavelError('DuplicateKey');
          for (const d of deletes) if (intervalContains(d, key)) throw new GavelError('DuplicateKey');
        }
        for (const d of inner.deletes) for (const p of puts) if (intervalContains(d, p)) throw new GavelError('DuplicateKey');
      }
    }
  }
  return { puts, deletes };
}

function toInterval(key: Uint8Array, rangeEnd: Uint8Array | null | undefined): Interval {
  return { key: Buffer.from(key), end: hasBytes(rangeEnd) ? Buffer.from(rangeEnd as Uint8Array) : undefined };
}

function intervalContains(interval: Interval, key: Buffer): boolean {
  if (interval.end === undefined) return interval.key.equals(key);
  // range_end "\0" means every key >= key.
  if (interval.end.length === 1 && interval.end[0] === 0) return Buffer.compare(key, interval.key) >= 0;
  return Buffer.compare(key, interval.key) >= 0 && Buffer.compare(key, interval.end) < 0;
}
