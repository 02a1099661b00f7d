/** Txn compare evaluation on one KeyValue, as etcd's compareKV. */
import { assertNever } from '../errors.js';
import { compareBytes, EMPTY_BYTES } from './key-range.js';
import { CompareResult, CompareTarget, type Compare, type CompareOperand, type KeyValue } from './types.js';

/**
 * Whether kv satisfies the compare. An operand of another kind than the target counts as zero
 * (etcd reads an unset oneof as 0 / empty); the API layer normally rejects that mismatch.
 */
export function compareKeyValue(compare: Compare, kv: KeyValue): boolean {
  const order = compareOrder(compare.target, compare.operand, kv);
  switch (compare.result) {
    case CompareResult.Equal:
      return order === 0;
    case CompareResult.NotEqual:
      return order !== 0;
    case CompareResult.Greater:
      return order > 0;
    case CompareResult.Less:
      return order < 0;
    default:
      return assertNever(compare.result);
  }
}

function compareOrder(target: CompareTarget, operand: CompareOperand, kv: KeyValue): number {
  switch (target) {
    case CompareTarget.Value:
      return compareBytes(kv.value, operand.kind === 'value' ? operand.value : EMPTY_BYTES);
    case CompareTarget.Version:
      return sign(kv.version - (operand.kind === 'version' ? operand.version : 0));
    case CompareTarget.Create:
      return sign(kv.createRevision - (operand.kind === 'createRevision' ? operand.createRevision : 0));
    case CompareTarget.Mod:
      return sign(kv.modRevision - (operand.kind === 'modRevision' ? operand.modRevision : 0));
    case CompareTarget.Lease: {
      const lease = operand.kind === 'lease' ? operand.lease : 0n;
      return kv.lease === lease ? 0 : kv.lease > lease ? 1 : -1;
    }
    default:
      return assertNever(target);
  }
}

function sign(difference: number): number {
  return difference === 0 ? 0 : difference > 0 ? 1 : -1;
}
