/**
 * The KV API with plain types: keys and values as Buffers (strings accepted), revisions and
 * lease ids as bigint, comparisons and operations as small tagged objects built by `compare`
 * and `op`. Conversion to and from proto-loader's wire objects happens only here.
 */
import type { WireCompare, WireKeyValue, WireRangeRequest, WireRequestOp, WireTxnRequest } from '../server/api/wire.js';
import type { CallOptions, Rpc } from './rpc.js';

export type Bytes = Uint8Array | string;

export function toBuffer(value: Bytes): Buffer {
  if (typeof value === 'string') return Buffer.from(value);
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/** The smallest key greater than every key starting with `prefix` (etcd's WithPrefix range end). */
export function prefixEnd(prefix: Bytes): Buffer {
  const end = Buffer.from(toBuffer(prefix));
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] ?? 0) < 0xff) {
      end[i] = (end[i] ?? 0) + 1;
      return end.subarray(0, i + 1);
    }
  }
  // All 0xff (or empty): the range runs to the end of the keyspace.
  return Buffer.from([0]);
}

export interface KeyValue {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly createRevision: bigint;
  readonly modRevision: bigint;
  readonly version: bigint;
  readonly lease: bigint;
}

export interface Header {
  readonly revision: bigint;
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly raftTerm: bigint;
}

interface WireHeaderIn {
  revision?: string;
  member_id?: string;
  cluster_id?: string;
  raft_term?: string;
}

export function headerFromWire(h: WireHeaderIn | null | undefined): Header {
  return { revision: BigInt(h?.revision ?? '0'), memberId: BigInt(h?.member_id ?? '0'), clusterId: BigInt(h?.cluster_id ?? '0'), raftTerm: BigInt(h?.raft_term ?? '0') };
}

export function keyValueFromWire(kv: WireKeyValue): KeyValue {
  return {
    key: toBuffer(kv.key),
    value: toBuffer(kv.value),
    createRevision: BigInt(kv.create_revision),
    modRevision: BigInt(kv.mod_revision),
    version: BigInt(kv.version),
    lease: BigInt(kv.lease),
  };
}

export interface RangeOptions {
  /** Every key starting with `key`. */
  readonly prefix?: boolean;
  /** Keys in [key, rangeEnd); wins over `prefix`. */
  readonly rangeEnd?: Bytes;
  /** Read at this past revision. */
  readonly revision?: bigint;
  readonly limit?: number;
  /** Answer from the member's local state, without a linearizable read barrier. */
  readonly serializable?: boolean;
  readonly keysOnly?: boolean;
  readonly countOnly?: boolean;
  readonly sort?: { readonly target: 'key' | 'version' | 'create' | 'mod' | 'value'; readonly order: 'ascend' | 'descend' };
  readonly maxCreateRevision?: bigint;
  readonly minCreateRevision?: bigint;
  readonly maxModRevision?: bigint;
  readonly minModRevision?: bigint;
}

export interface RangeResult {
  readonly kvs: KeyValue[];
  readonly count: bigint;
  readonly more: boolean;
  readonly header: Header;
}

export interface PutOptions {
  readonly lease?: bigint;
  readonly prevKv?: boolean;
}

export interface PutResult {
  readonly header: Header;
  readonly prevKv: KeyValue | undefined;
}

export interface DeleteOptions {
  readonly prefix?: boolean;
  readonly rangeEnd?: Bytes;
  readonly prevKv?: boolean;
}

export interface DeleteResult {
  readonly header: Header;
  readonly deleted: bigint;
  readonly prevKvs: KeyValue[];
}

export type CompareTarget = 'version' | 'createRevision' | 'modRevision' | 'value' | 'lease';
export type CompareResult = '==' | '!=' | '<' | '>';

export type Compare =
  | { readonly target: 'value'; readonly key: Bytes; readonly result: CompareResult; readonly operand: Bytes; readonly rangeEnd?: Bytes }
  | { readonly target: Exclude<CompareTarget, 'value'>; readonly key: Bytes; readonly result: CompareResult; readonly operand: bigint; readonly rangeEnd?: Bytes };

/** Builders for Txn conditions: `compare.createRevision(key, '==', 0n)`. */
export const compare = {
  version: (key: Bytes, result: CompareResult, operand: bigint): Compare => ({ target: 'version', key, result, operand }),
  createRevision: (key: Bytes, result: CompareResult, operand: bigint): Compare => ({ target: 'createRevision', key, result, operand }),
  modRevision: (key: Bytes, result: CompareResult, operand: bigint): Compare => ({ target: 'modRevision', key, result, operand }),
  value: (key: Bytes, result: CompareResult, operand: Bytes): Compare => ({ target: 'value', key, result, operand }),
  lease: (key: Bytes, result: CompareResult, operand: bigint): Compare => ({ target: 'lease', key, result, operand }),
};

export type Op =
  | { readonly type: 'range'; readonly key: Bytes; readonly options: RangeOptions }
  | { readonly type: 'put'; readonly key: Bytes; readonly value: Bytes; readonly options: PutOptions }
  | { readonly type: 'delete'; readonly key: Bytes; readonly options: DeleteOptions }
  | { readonly type: 'txn'; readonly request: TxnRequest };

/** Builders for Txn operations: `op.put(key, value, { lease })`. */
export const op = {
  get: (key: Bytes, options: RangeOptions = {}): Op => ({ type: 'range', key, options }),
  put: (key: Bytes, value: Bytes, options: PutOptions = {}): Op => ({ type: 'put', key, value, options }),
  delete: (key: Bytes, options: DeleteOptions = {}): Op => ({ type: 'delete', key, options }),
  txn: (request: TxnRequest): Op => ({ type: 'txn', request }),
};

export interface TxnRequest {
  readonly compare: readonly Compare[];
  readonly success: readonly Op[];
  readonly failure?: readonly Op[];
}

export type OpResult =
  | { readonly type: 'range'; readonly kvs: KeyValue[]; readonly count: bigint; readonly more: boolean }
  | { readonly type: 'put'; readonly prevKv: KeyValue | undefined }
  | { readonly type: 'delete'; readonly deleted: bigint; readonly prevKvs: KeyValue[] }
  | { readonly type: 'txn'; readonly succeeded: boolean; readonly results: OpResult[] };

export interface TxnResult {
  readonly header: Header;
  readonly succeeded: boolean;
  readonly results: OpResult[];
}

const SORT_TARGET = { key: 0, version: 1, create: 2, mod: 3, value: 4 } as const;
const SORT_ORDER = { ascend: 1, descend: 2 } as const;
const COMPARE_RESULT: Record<CompareResult, number> = { '==': 0, '>': 1, '<': 2, '!=': 3 };
const COMPARE_TARGET = { version: 0, createRevision: 1, modRevision: 2, value: 3, lease: 4 } as const;
const UNION_FIELD = { version: 'version', createRevision: 'create_revision', modRevision: 'mod_revision', value: 'value', lease: 'lease' } as const;

/**
 * The range end of a request, or undefined for a single key. An absent range_end and an empty
 * one differ on etcd's wire: Go decodes an explicitly sent empty bytes field as a non-nil empty
 * slice, which etcd reads as "every key from `key` on". So a single key must leave it unset.
 */
export function rangeEndFor(key: Bytes, options: { prefix?: boolean; rangeEnd?: Bytes }): Buffer | undefined {
  if (options.rangeEnd !== undefined) return toBuffer(options.rangeEnd);
  return options.prefix === true ? prefixEnd(key) : undefined;
}

export function rangeToWire(key: Bytes, o: RangeOptions): WireRangeRequest {
  return {
    key: toBuffer(key),
    range_end: rangeEndFor(key, o) as Buffer,
    limit: String(o.limit ?? 0),
    revision: String(o.revision ?? 0n),
    sort_order: o.sort === undefined ? 0 : SORT_ORDER[o.sort.order],
    sort_target: o.sort === undefined ? 0 : SORT_TARGET[o.sort.target],
    serializable: o.serializable === true,
    keys_only: o.keysOnly === true,
    count_only: o.countOnly === true,
    min_mod_revision: String(o.minModRevision ?? 0n),
    max_mod_revision: String(o.maxModRevision ?? 0n),
    min_create_revision: String(o.minCreateRevision ?? 0n),
    max_create_revision: String(o.maxCreateRevision ?? 0n),
  };
}

function compareToWire(c: Compare): WireCompare {
  const field = UNION_FIELD[c.target];
  return {
    result: COMPARE_RESULT[c.result],
    target: COMPARE_TARGET[c.target],
    key: toBuffer(c.key),
    range_end: (c.rangeEnd === undefined ? undefined : toBuffer(c.rangeEnd)) as Buffer, // unset for one key (see rangeEndFor)
    target_union: field,
    [field]: c.target === 'value' ? toBuffer(c.operand) : String(c.operand),
  };
}

function opToWire(o: Op): WireRequestOp {
  switch (o.type) {
    case 'range':
      return { request_range: rangeToWire(o.key, o.options) };
    case 'put':
      return { request_put: { key: toBuffer(o.key), value: toBuffer(o.value), lease: String(o.options.lease ?? 0n), prev_kv: o.options.prevKv === true, ignore_value: false, ignore_lease: false } };
    case 'delete':
      return { request_delete_range: { key: toBuffer(o.key), range_end: rangeEndFor(o.key, o.options) as Buffer, prev_kv: o.options.prevKv === true } };
    case 'txn':
      return { request_txn: txnToWire(o.request) };
  }
}

export function txnToWire(t: TxnRequest): WireTxnRequest {
  return { compare: t.compare.map(compareToWire), success: t.success.map(opToWire), failure: (t.failure ?? []).map(opToWire) };
}

interface WireRangeResponseIn {
  header?: WireHeaderIn;
  kvs?: WireKeyValue[];
  count?: string;
  more?: boolean;
}
interface WireResponseOpIn {
  response_range?: WireRangeResponseIn | null;
  response_put?: { prev_kv?: WireKeyValue | null } | null;
  response_delete_range?: { deleted?: string; prev_kvs?: WireKeyValue[] } | null;
  response_txn?: WireTxnResponseIn | null;
}
interface WireTxnResponseIn {
  header?: WireHeaderIn;
  succeeded?: boolean;
  responses?: WireResponseOpIn[];
}

function opResultFromWire(r: WireResponseOpIn): OpResult {
  if (r.response_range) return { type: 'range', kvs: (r.response_range.kvs ?? []).map(keyValueFromWire), count: BigInt(r.response_range.count ?? '0'), more: r.response_range.more === true };
  if (r.response_put) return { type: 'put', prevKv: r.response_put.prev_kv ? keyValueFromWire(r.response_put.prev_kv) : undefined };
  if (r.response_delete_range) return { type: 'delete', deleted: BigInt(r.response_delete_range.deleted ?? '0'), prevKvs: (r.response_delete_range.prev_kvs ?? []).map(keyValueFromWire) };
  if (r.response_txn) return { type: 'txn', succeeded: r.response_txn.succeeded === true, results: (r.response_txn.responses ?? []).map(opResultFromWire) };
  throw new Error('txn response without a response');
}

export function txnResultFromWire(r: WireTxnResponseIn): TxnResult {
  return { header: headerFromWire(r.header), succeeded: r.succeeded === true, results: (r.responses ?? []).map(opResultFromWire) };
}

/** The range result at `index` of a txn result (recipes know which op they put where). */
export function rangeAt(result: { results: OpResult[] }, index: number): KeyValue[] {
  const r = result.results[index];
  if (r?.type !== 'range') throw new Error(`txn result ${index} is not a range`);
  return r.kvs;
}

export type TxnOptions = CallOptions & {
  /** The caller vouches that sending the txn twice means the same as once, so it may be retried. */
  readonly idempotent?: boolean;
};

export class KV {
  constructor(private readonly rpc: Rpc) {}

  async get(key: Bytes, options: RangeOptions & CallOptions = {}): Promise<RangeResult> {
    const r = await this.rpc.unary<WireRangeResponseIn>('etcdserverpb.KV', 'Range', rangeToWire(key, options), 'idempotent', options);
    return { kvs: (r.kvs ?? []).map(keyValueFromWire), count: BigInt(r.count ?? '0'), more: r.more === true, header: headerFromWire(r.header) };
  }

  /** The value of one key, or undefined. */
  async getOne(key: Bytes, options: CallOptions & { serializable?: boolean; revision?: bigint } = {}): Promise<KeyValue | undefined> {
    return (await this.get(key, options)).kvs[0];
  }

  async put(key: Bytes, value: Bytes, options: PutOptions & CallOptions = {}): Promise<PutResult> {
    const request = (opToWire(op.put(key, value, options)).request_put ?? {}) as object;
    const r = await this.rpc.unary<{ header?: WireHeaderIn; prev_kv?: WireKeyValue | null }>('etcdserverpb.KV', 'Put', request, 'write', options);
    return { header: headerFromWire(r.header), prevKv: r.prev_kv ? keyValueFromWire(r.prev_kv) : undefined };
  }

  async delete(key: Bytes, options: DeleteOptions & CallOptions = {}): Promise<DeleteResult> {
    const request = (opToWire(op.delete(key, options)).request_delete_range ?? {}) as object;
    const r = await this.rpc.unary<{ header?: WireHeaderIn; deleted?: string; prev_kvs?: WireKeyValue[] }>('etcdserverpb.KV', 'DeleteRange', request, 'write', options);
    return { header: headerFromWire(r.header), deleted: BigInt(r.deleted ?? '0'), prevKvs: (r.prev_kvs ?? []).map(keyValueFromWire) };
  }

  async txn(request: TxnRequest, options: TxnOptions = {}): Promise<TxnResult> {
    const readOnly = [...request.success, ...(request.failure ?? [])].every((o) => o.type === 'range');
    const policy = readOnly || options.idempotent === true ? 'idempotent' : 'write';
    return txnResultFromWire(await this.rpc.unary<WireTxnResponseIn>('etcdserverpb.KV', 'Txn', txnToWire(request), policy, options));
  }

  async compact(revision: bigint, options: CallOptions & { physical?: boolean } = {}): Promise<Header> {
    const r = await this.rpc.unary<{ header?: WireHeaderIn }>('etcdserverpb.KV', 'Compact', { revision: String(revision), physical: options.physical === true }, 'idempotent', options);
    return headerFromWire(r.header);
  }
}
