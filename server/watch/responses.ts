/**
 * Pure helpers that turn a watcher's events into responses: filtering, prevKv stripping, size
 * estimates, etcd-style fragmenting, and grouping whole revisions into catch-up batches.
 */
import type { KeyValue, MvccEvent } from '../mvcc/types.js';
import { assert } from '../errors.js';

/** Rough protobuf overhead of a WatchResponse without events (header, ids, flags). */
export const RESPONSE_OVERHEAD_BYTES = 64;
/** Rough protobuf overhead of one KeyValue besides key and value (four varints, a lease, tags). */
const KEY_VALUE_OVERHEAD_BYTES = 48;
const EVENT_OVERHEAD_BYTES = 8;

export interface EventSelection {
  readonly noPut: boolean;
  readonly noDelete: boolean;
  readonly prevKv: boolean;
}

/** The events a watcher gets: filters applied, prevKv dropped unless it asked for it. */
export function selectEvents(events: readonly MvccEvent[], selection: EventSelection): MvccEvent[] {
  const selected: MvccEvent[] = [];
  for (const event of events) {
    if (event.type === 'put' ? selection.noPut : selection.noDelete) continue;
    selected.push(selection.prevKv || event.prevKv === undefined ? event : { type: event.type, kv: event.kv });
  }
  return selected;
}

/** An estimate of the event's encoded size; only used to decide where to cut responses. */
export function eventBytes(event: MvccEvent): number {
  return EVENT_OVERHEAD_BYTES + keyValueBytes(event.kv) + (event.prevKv === undefined ? 0 : keyValueBytes(event.prevKv));
}

/** An estimate of a whole response's encoded size: what a queued or written response holds. */
export function responseBytes(response: { readonly events: readonly MvccEvent[] }): number {
  let total = RESPONSE_OVERHEAD_BYTES;
  for (const event of response.events) total += eventBytes(event);
  return total;
}

function keyValueBytes(kv: KeyValue): number {
  return KEY_VALUE_OVERHEAD_BYTES + kv.key.length + kv.value.length;
}

/**
 * etcd's sendFragments: a response at or above maxBytes with two or more events is cut into
 * pieces of at least one event each, every piece below maxBytes where possible; every piece
 * but the last is marked fragment. Returns the event lists; one list means "send as is".
 */
export function fragmentEvents(events: readonly MvccEvent[], maxBytes: number): MvccEvent[][] {
  const total = RESPONSE_OVERHEAD_BYTES + events.reduce((sum, event) => sum + eventBytes(event), 0);
  if (total < maxBytes || events.length < 2) return [[...events]];
  const pieces: MvccEvent[][] = [];
  let current: MvccEvent[] = [];
  let currentBytes = RESPONSE_OVERHEAD_BYTES;
  for (const event of events) {
    const size = eventBytes(event);
    if (current.length > 0 && currentBytes + size >= maxBytes) {
      pieces.push(current);
      current = [];
      currentBytes = RESPONSE_OVERHEAD_BYTES;
    }
    current.push(event);
    currentBytes += size;
  }
  pieces.push(current);
  return pieces;
}

export interface RevisionBatch {
  readonly firstRevision: number;
  readonly lastRevision: number;
  readonly events: MvccEvent[];
}

/**
 * Cuts events (in revision order) into batches of whole revisions, each below maxBytes unless a
 * single revision alone is larger. A revision is never split across batches.
 */
export function batchWholeRevisions(events: readonly MvccEvent[], maxBytes: number): RevisionBatch[] {
  const batches: RevisionBatch[] = [];
  let index = 0;
  let batch: MvccEvent[] = [];
  let batchBytes = RESPONSE_OVERHEAD_BYTES;
  while (index < events.length) {
    const revision = revisionOf(events, index);
    let end = index;
    let revisionBytes = 0;
    while (end < events.length && revisionOf(events, end) === revision) revisionBytes += eventBytes(at(events, end++));
    assert(batch.length === 0 || revisionOf(batch, batch.length - 1) < revision, 'catch-up events out of revision order');
    if (batch.length > 0 && batchBytes + revisionBytes >= maxBytes) {
      batches.push(toBatch(batch));
      batch = [];
      batchBytes = RESPONSE_OVERHEAD_BYTES;
    }
    for (let i = index; i < end; i++) batch.push(at(events, i));
    batchBytes += revisionBytes;
    index = end;
  }
  if (batch.length > 0) batches.push(toBatch(batch));
  return batches;
}

function toBatch(events: MvccEvent[]): RevisionBatch {
  return { firstRevision: revisionOf(events, 0), lastRevision: revisionOf(events, events.length - 1), events };
}

function revisionOf(events: readonly MvccEvent[], index: number): number {
  return at(events, index).kv.modRevision;
}

function at(events: readonly MvccEvent[], index: number): MvccEvent {
  const event = events[index];
  assert(event !== undefined, `event index ${index} out of range`);
  return event;
}
