/**
 * The part of a Range answered after the index scan, as etcd's executeRange: min/max filters,
 * sorting, limit, keys_only. count is always the number of keys in range at the revision,
 * before filters and limit.
 */
import { assertNever } from '../errors.js';
import { compareBytes, EMPTY_BYTES } from './key-range.js';
import { SortOrder, SortTarget, type KeyValue, type RangeRequest, type RangeResponse } from './types.js';

/** Whether the scan must return every key (etcd fetches all when sorting or filtering). */
export function needsAllKeys(request: RangeRequest): boolean {
  return (
    request.sortOrder !== SortOrder.None ||
    request.minModRevision !== 0 ||
    request.maxModRevision !== 0 ||
    request.minCreateRevision !== 0 ||
    request.maxCreateRevision !== 0
  );
}

/** kvs arrive in ascending key order; count is the number of keys in range at the revision. */
export function finishRange(request: RangeRequest, kvs: KeyValue[], count: number): RangeResponse {
  if (request.countOnly) return { kvs: [], more: false, count };
  let selected = kvs.filter((kv) => passesFilters(request, kv));
  const order = effectiveSortOrder(request);
  if (order !== SortOrder.None) selected = sortKvs(selected, request.sortTarget, order);
  let more = false;
  if (request.limit > 0 && selected.length > request.limit) {
    selected = selected.slice(0, request.limit);
    more = true;
  }
  if (request.keysOnly) selected = selected.map((kv) => ({ ...kv, value: EMPTY_BYTES }));
  return { kvs: selected, more, count };
}

function passesFilters(request: RangeRequest, kv: KeyValue): boolean {
  if (request.maxModRevision !== 0 && kv.modRevision > request.maxModRevision) return false;
  if (request.minModRevision !== 0 && kv.modRevision < request.minModRevision) return false;
  if (request.maxCreateRevision !== 0 && kv.createRevision > request.maxCreateRevision) return false;
  if (request.minCreateRevision !== 0 && kv.createRevision < request.minCreateRevision) return false;
  return true;
}

/** etcd: NONE with a target other than KEY means ASCEND; KEY + ASCEND is already the scan order. */
function effectiveSortOrder(request: RangeRequest): SortOrder {
  if (request.sortTarget !== SortTarget.Key && request.sortOrder === SortOrder.None) return SortOrder.Ascend;
  if (request.sortTarget === SortTarget.Key && request.sortOrder === SortOrder.Ascend) return SortOrder.None;
  return request.sortOrder;
}

/** A stable sort: ties keep ascending key order in both directions (etcd leaves ties unspecified). */
function sortKvs(kvs: KeyValue[], target: SortTarget, order: SortOrder.Ascend | SortOrder.Descend): KeyValue[] {
  const direction = order === SortOrder.Ascend ? 1 : -1;
  const compare = targetComparator(target);
  return kvs.sort((a, b) => direction * compare(a, b));
}

function targetComparator(target: SortTarget): (a: KeyValue, b: KeyValue) => number {
  switch (target) {
    case SortTarget.Key:
      return (a, b) => compareBytes(a.key, b.key);
    case SortTarget.Version:
      return (a, b) => a.version - b.version;
    case SortTarget.Create:
      return (a, b) => a.createRevision - b.createRevision;
    case SortTarget.Mod:
      return (a, b) => a.modRevision - b.modRevision;
    case SortTarget.Value:
      return (a, b) => compareBytes(a.value, b.value);
    default:
      return assertNever(target);
  }
}
