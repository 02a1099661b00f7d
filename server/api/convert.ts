/**
 * Wire objects ↔ domain values. int64 strings become safe-integer numbers (revisions, counts;
 * clamped, since nothing real exceeds 2^53) or bigints (lease ids, exact).
 */
import { GavelError, assertNever } from '../errors.js';
import {
  CompareResult,
  CompareTarget,
  SortOrder,
  SortTarget,
  type Compare,
  type CompareOperand,
  type DeleteRangeRequest,
  type KeyValue,
  type MvccEvent,
  type PutRequest,
  type RangeRequest,
  type RequestOp,
  type TxnRequest,
} from '../mvcc/types.js';
import type {
  Int64,
  WireCompare,
  WireDeleteRangeRequest,
  WireKeyValue,
  WirePutRequest,
  WireRangeRequest,
  WireRequestOp,
  WireTxnRequest,
} from './wire.js';

const EMPTY = new Uint8Array(0);

/** int64 string → number, clamped to the safe range (a revision beyond 2^53 is "the future"). */
export function toNumber(value: Int64 | number | undefined | null): number {
  if (value === undefined || value === null || value === '') return 0;
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isFinite(n)) return 0;
  if (n > Number.MAX_SAFE_INTEGER) return Number.MAX_SAFE_INTEGER;
  if (n < -Number.MAX_SAFE_INTEGER) return -Number.MAX_SAFE_INTEGER;
  return Math.trunc(n);
}

export function toBigInt(value: Int64 | number | undefined | null): bigint {
  if (value === undefined || value === null || value === '') return 0n;
  return BigInt(value);
}

export function bytes(value: Uint8Array | undefined | null): Uint8Array {
  return value ?? EMPTY;
}

function enumValue<T extends number>(value: number | undefined, max: number): T {
  const v = value ?? 0;
  if (!Number.isInteger(v) || v < 0 || v > max) throw new GavelError('InvalidSortOption');
  return v as T;
}

/**
 * etcd 3.4 accepts a sort_order outside the enum and then sorts by neither direction: it
 * answers in key order whatever the target (only NONE is promoted to ASCEND for a non-key
 * target), limit and count as usual. NONE on the key target is exactly that answer.
 */
function sortFromWire(w: WireRangeRequest): { sortOrder: SortOrder; sortTarget: SortTarget } {
  const sortTarget = enumValue<SortTarget>(w.sort_target, SortTarget.Value);
  const order = w.sort_order ?? 0;
  const known = Number.isInteger(order) && order >= SortOrder.None && order <= SortOrder.Descend;
  return known ? { sortOrder: order as SortOrder, sortTarget } : { sortOrder: SortOrder.None, sortTarget: SortTarget.Key };
}

export function rangeFromWire(w: WireRangeRequest): RangeRequest {
  return {
    key: bytes(w.key),
    rangeEnd: bytes(w.range_end),
    limit: toNumber(w.limit),
    revision: toNumber(w.revision),
    ...sortFromWire(w),
    serializable: w.serializable === true,
    keysOnly: w.keys_only === true,
    countOnly: w.count_only === true,
    minModRevision: toNumber(w.min_mod_revision),
    maxModRevision: toNumber(w.max_mod_revision),
    minCreateRevision: toNumber(w.min_create_revision),
    maxCreateRevision: toNumber(w.max_create_revision),
  };
}

export function putFromWire(w: WirePutRequest): PutRequest {
  return {
    key: bytes(w.key),
    value: bytes(w.value),
    lease: toBigInt(w.lease),
    prevKv: w.prev_kv === true,
    ignoreValue: w.ignore_value === true,
    ignoreLease: w.ignore_lease === true,
  };
}

export function deleteRangeFromWire(w: WireDeleteRangeRequest): DeleteRangeRequest {
  return { key: bytes(w.key), rangeEnd: bytes(w.range_end), prevKv: w.prev_kv === true };
}

function compareFromWire(w: WireCompare): Compare {
  const target = w.target ?? 0;
  if (!Number.isInteger(target) || target < CompareTarget.Version || target > CompareTarget.Lease) {
    throw new GavelError('InvalidArgument', 'etcdserver: invalid compare target');
  }
  const result = w.result ?? 0;
  if (!Number.isInteger(result) || result < CompareResult.Equal || result > CompareResult.NotEqual) {
    throw new GavelError('InvalidArgument', 'etcdserver: invalid compare result');
  }
  return {
    key: bytes(w.key),
    rangeEnd: bytes(w.range_end),
    result: result as CompareResult,
    target: target as CompareTarget,
    operand: operandFor(target as CompareTarget, w),
  };
}

/** etcd reads the operand that matches the target; an unset oneof compares as zero/empty. */
function operandFor(target: CompareTarget, w: WireCompare): CompareOperand {
  switch (target) {
    case CompareTarget.Version:
      return { kind: 'version', version: toNumber(w.version) };
    case CompareTarget.Create:
      return { kind: 'createRevision', createRevision: toNumber(w.create_revision) };
    case CompareTarget.Mod:
      return { kind: 'modRevision', modRevision: toNumber(w.mod_revision) };
    case CompareTarget.Value:
      return { kind: 'value', value: bytes(w.value) };
    case CompareTarget.Lease:
      return { kind: 'lease', lease: toBigInt(w.lease) };
    default:
      return assertNever(target);
  }
}

function requestOpFromWire(w: WireRequestOp): RequestOp {
  if (w.request_range) return { type: 'range', request: rangeFromWire(w.request_range) };
  if (w.request_put) return { type: 'put', request: putFromWire(w.request_put) };
  if (w.request_delete_range) return { type: 'deleteRange', request: deleteRangeFromWire(w.request_delete_range) };
  if (w.request_txn) return { type: 'txn', request: txnFromWire(w.request_txn) };
  // An empty RequestOp: etcd rejects it as an invalid argument (no request in the union).
  throw new GavelError('InvalidArgument', 'etcdserver: invalid txn request: empty RequestOp');
}

export function txnFromWire(w: WireTxnRequest): TxnRequest {
  return {
    compare: (w.compare ?? []).map(compareFromWire),
    success: (w.success ?? []).map(requestOpFromWire),
    failure: (w.failure ?? []).map(requestOpFromWire),
  };
}

// ---- domain → wire ----

export function kvToWire(kv: KeyValue, keysOnly = false): WireKeyValue {
  return {
    key: kv.key,
    create_revision: String(kv.createRevision),
    mod_revision: String(kv.modRevision),
    version: String(kv.version),
    value: keysOnly ? EMPTY : kv.value,
    lease: kv.lease.toString(),
  };
}

export function eventToWire(event: MvccEvent, withPrevKv: boolean): object {
  return {
    type: event.type === 'put' ? 0 : 1,
    kv: kvToWire(event.kv),
    prev_kv: withPrevKv && event.prevKv ? kvToWire(event.prevKv) : null,
  };
}
