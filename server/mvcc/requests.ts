/**
 * Request builders with etcd's proto3 zero defaults (limit 0, revision 0 = newest, no sort, no
 * filters), for callers that build requests in-process (lease revoke, recipes, tests).
 */
import { EMPTY_BYTES } from './key-range.js';
import {
  SortOrder,
  SortTarget,
  type Bytes,
  type DeleteRangeRequest,
  type PutRequest,
  type RangeRequest,
  type TxnRequest,
} from './types.js';

export function rangeRequest(key: Bytes, options: Partial<Omit<RangeRequest, 'key'>> = {}): RangeRequest {
  return {
    key,
    rangeEnd: EMPTY_BYTES,
    limit: 0,
    revision: 0,
    sortOrder: SortOrder.None,
    sortTarget: SortTarget.Key,
    serializable: false,
    keysOnly: false,
    countOnly: false,
    minModRevision: 0,
    maxModRevision: 0,
    minCreateRevision: 0,
    maxCreateRevision: 0,
    ...options,
  };
}

export function putRequest(key: Bytes, value: Bytes, options: Partial<Omit<PutRequest, 'key' | 'value'>> = {}): PutRequest {
  return { key, value, lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false, ...options };
}

export function deleteRangeRequest(key: Bytes, options: Partial<Omit<DeleteRangeRequest, 'key'>> = {}): DeleteRangeRequest {
  return { key, rangeEnd: EMPTY_BYTES, prevKv: false, ...options };
}

export function txnRequest(options: Partial<TxnRequest> = {}): TxnRequest {
  return { compare: [], success: [], failure: [], ...options };
}
