// Goal: requests etcd refuses before proposing (empty key, too many ops, duplicate keys in a txn) are refused with the same error code.
import { describe, expect, it } from 'vitest';
import { checkPut, checkRange, checkTxn, txnWrites } from '../../server/api/validate.js';
import type { WireRequestOp, WireTxnRequest } from '../../server/api/wire.js';
import { isGavelError } from '../../server/errors.js';

const b = (s: string) => Buffer.from(s);
const put = (key: string): WireRequestOp => ({ request_put: { key: b(key), value: b('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } });
const del = (key: string, end = ''): WireRequestOp => ({ request_delete_range: { key: b(key), range_end: b(end), prev_kv: false } });
const get = (key: string): WireRequestOp => ({ request_range: { key: b(key), range_end: b(''), limit: '0', revision: '0', sort_order: 0, sort_target: 0, serializable: false, keys_only: false, count_only: false, min_mod_revision: '0', max_mod_revision: '0', min_create_revision: '0', max_create_revision: '0' } });
const txn = (success: WireRequestOp[], failure: WireRequestOp[] = []): WireTxnRequest => ({ compare: [], success, failure });

function codeOf(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    return isGavelError(error) ? error.code : 'other';
  }
}

describe('request validation', () => {
  it('refuses an empty key', () => {
    expect(codeOf(() => checkPut(put('').request_put!))).toBe('EmptyKey');
    expect(codeOf(() => checkRange(get('').request_range!))).toBe('EmptyKey');
    expect(codeOf(() => checkTxn(txn([put('')]), 128))).toBe('EmptyKey');
  });

  it('refuses more ops per branch than --max-txn-ops', () => {
    expect(codeOf(() => checkTxn(txn([put('a'), put('b'), put('c')]), 2))).toBe('TooManyOps');
    expect(codeOf(() => checkTxn(txn([put('a'), put('b')], [put('c'), put('d')]), 2))).toBeUndefined();
  });

  it('refuses a key written twice in one branch, including through a deleted range or a nested txn', () => {
    expect(codeOf(() => checkTxn(txn([put('a'), put('a')]), 128))).toBe('DuplicateKey');
    expect(codeOf(() => checkTxn(txn([del('a', 'c'), put('b')]), 128))).toBe('DuplicateKey');
    expect(codeOf(() => checkTxn(txn([put('a'), { request_txn: txn([put('a')]) }]), 128))).toBe('DuplicateKey');
    // The two branches never both run, and overlapping deletes are allowed.
    expect(codeOf(() => checkTxn(txn([put('a')], [put('a')]), 128))).toBeUndefined();
    expect(codeOf(() => checkTxn(txn([del('a', 'c'), del('b')]), 128))).toBeUndefined();
  });

  it('tells read-only txns from writing ones', () => {
    expect(txnWrites(txn([get('a')], [get('b')]))).toBe(false);
    expect(txnWrites(txn([get('a')], [{ request_txn: txn([put('x')]) }]))).toBe(true);
  });
});
