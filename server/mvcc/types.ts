/**
 * The domain shapes of the MVCC key-value store, shared by mvcc/, watch/, lease/, apply/ and
 * api/. Keys and values are bytes compared byte by byte; revisions are safe integers; lease
 * ids are bigint (etcd's are 63-bit random numbers that a JS number cannot hold exactly).
 */

export type Bytes = Uint8Array;

/** A store revision: main = one per Put/DeleteRange/Txn, sub = the change's index inside it. */
export interface Revision {
  readonly main: number;
  readonly sub: number;
}

/** One version of one key, as etcd's mvccpb.KeyValue. */
export interface KeyValue {
  readonly key: Bytes;
  readonly createRevision: number;
  readonly modRevision: number;
  /** Modifications in the current generation; 1 after a create. */
  readonly version: number;
  readonly value: Bytes;
  /** 0n means no lease. */
  readonly lease: bigint;
}

export type EventType = 'put' | 'delete';

/** A change to one key. For a delete, kv carries the key and modRevision (the delete's revision). */
export interface MvccEvent {
  readonly type: EventType;
  readonly kv: KeyValue;
  /** The key's previous live version, if there was one (always filled; watchers drop it unless asked). */
  readonly prevKv?: KeyValue;
}

/** [key, rangeEnd): empty rangeEnd = the key alone; rangeEnd = [0] = every key >= key. */
export interface KeyRange {
  readonly key: Bytes;
  readonly rangeEnd: Bytes;
}

export enum SortOrder { None = 0, Ascend = 1, Descend = 2 }
export enum SortTarget { Key = 0, Version = 1, Create = 2, Mod = 3, Value = 4 }
export enum CompareResult { Equal = 0, Greater = 1, Less = 2, NotEqual = 3 }
export enum CompareTarget { Version = 0, Create = 1, Mod = 2, Value = 3, Lease = 4 }

export interface RangeRequest extends KeyRange {
  readonly limit: number;
  /** <= 0: the newest revision. */
  readonly revision: number;
  readonly sortOrder: SortOrder;
  readonly sortTarget: SortTarget;
  readonly serializable: boolean;
  readonly keysOnly: boolean;
  readonly countOnly: boolean;
  readonly minModRevision: number;
  readonly maxModRevision: number;
  readonly minCreateRevision: number;
  readonly maxCreateRevision: number;
}

export interface PutRequest {
  readonly key: Bytes;
  readonly value: Bytes;
  readonly lease: bigint;
  readonly prevKv: boolean;
  readonly ignoreValue: boolean;
  readonly ignoreLease: boolean;
}

export interface DeleteRangeRequest extends KeyRange {
  readonly prevKv: boolean;
}

/** The compared operand; its kind must match the target (checked by the API layer). */
export type CompareOperand =
  | { readonly kind: 'version'; readonly version: number }
  | { readonly kind: 'createRevision'; readonly createRevision: number }
  | { readonly kind: 'modRevision'; readonly modRevision: number }
  | { readonly kind: 'value'; readonly value: Bytes }
  | { readonly kind: 'lease'; readonly lease: bigint };

export interface Compare extends KeyRange {
  readonly result: CompareResult;
  readonly target: CompareTarget;
  readonly operand: CompareOperand;
}

export type RequestOp =
  | { readonly type: 'range'; readonly request: RangeRequest }
  | { readonly type: 'put'; readonly request: PutRequest }
  | { readonly type: 'deleteRange'; readonly request: DeleteRangeRequest }
  | { readonly type: 'txn'; readonly request: TxnRequest };

export interface TxnRequest {
  readonly compare: readonly Compare[];
  readonly success: readonly RequestOp[];
  readonly failure: readonly RequestOp[];
}

export interface RangeResponse {
  readonly kvs: readonly KeyValue[];
  readonly more: boolean;
  readonly count: number;
}

export interface PutResponse {
  readonly prevKv?: KeyValue;
}

export interface DeleteRangeResponse {
  readonly deleted: number;
  readonly prevKvs: readonly KeyValue[];
}

export type ResponseOp =
  | { readonly type: 'range'; readonly response: RangeResponse }
  | { readonly type: 'put'; readonly response: PutResponse }
  | { readonly type: 'deleteRange'; readonly response: DeleteRangeResponse }
  | { readonly type: 'txn'; readonly response: TxnResponse };

export interface TxnResponse {
  readonly succeeded: boolean;
  readonly responses: readonly ResponseOp[];
}
