// Goal: responses are cut the way etcd cuts them: fragments only above the size limit with at least one event each, catch-up batches only at revision boundaries.
import { describe, expect, it } from 'vitest';
import type { MvccEvent } from '../../server/mvcc/types.js';
import { normalizeWatchRange, rangeContains } from '../../server/watch/key-range.js';
import { batchWholeRevisions, eventBytes, fragmentEvents, RESPONSE_OVERHEAD_BYTES, selectEvents } from '../../server/watch/responses.js';

const bytes = (value: string): Uint8Array => new TextEncoder().encode(value);

function event(key: string, revision: number, valueBytes = 10, type: 'put' | 'delete' = 'put'): MvccEvent {
  const kv = { key: bytes(key), value: new Uint8Array(valueBytes), createRevision: 1, modRevision: revision, version: 1, lease: 0n };
  return { type, kv, prevKv: { ...kv, modRevision: revision - 1 } };
}

describe('fragmentEvents', () => {
  it('keeps a response below the limit, or with one event, whole', () => {
    const small = [event('a', 2), event('b', 2)];
    expect(fragmentEvents(small, 10_000)).toEqual([small]);
    const huge = [event('a', 2, 50_000)];
    expect(fragmentEvents(huge, 1_000)).toEqual([huge]);
  });

  it('cuts a large response into pieces below the limit, in order, none empty', () => {
    const events = Array.from({ length: 10 }, (_, i) => event(`k${i}`, 2, 300));
    const limit = 1_000;
    const pieces = fragmentEvents(events, limit);
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.flat()).toEqual(events);
    for (const piece of pieces) {
      expect(piece.length).toBeGreaterThan(0);
      const size = RESPONSE_OVERHEAD_BYTES + piece.reduce((sum, e) => sum + eventBytes(e), 0);
      if (piece.length > 1) expect(size).toBeLessThan(limit);
    }
  });
});

describe('batchWholeRevisions', () => {
  it('never splits a revision and starts a new batch at the limit', () => {
    const events = [event('a', 2, 300), event('b', 2, 300), event('c', 3, 300), event('d', 4, 2_000), event('e', 5, 10)];
    const batches = batchWholeRevisions(events, 1_000);
    expect(batches.map((b) => [b.firstRevision, b.lastRevision, b.events.length])).toEqual([
      [2, 2, 2],
      [3, 3, 1],
      [4, 4, 1], // one revision above the limit travels alone
      [5, 5, 1],
    ]);
    expect(batchWholeRevisions(events, 1_000_000)).toHaveLength(1);
    expect(batchWholeRevisions([], 1_000)).toEqual([]);
  });
});

describe('selectEvents', () => {
  it('applies filters and strips prevKv unless asked', () => {
    const events = [event('a', 2), event('a', 3, 0, 'delete')];
    expect(selectEvents(events, { noPut: true, noDelete: false, prevKv: false })).toEqual([{ type: 'delete', kv: events[1]?.kv }]);
    expect(selectEvents(events, { noPut: false, noDelete: true, prevKv: true })).toEqual([events[0]]);
  });
});

describe('watch key ranges', () => {
  it('follows etcd: empty key is "\\0", rangeEnd "\\0" is every key from key, key >= rangeEnd is empty', () => {
    const all = normalizeWatchRange(new Uint8Array(0), Uint8Array.of(0));
    expect(all?.kind).toBe('fromKey');
    expect(all !== undefined && rangeContains(all, Uint8Array.of(0))).toBe(true);
    const single = normalizeWatchRange(new Uint8Array(0), new Uint8Array(0));
    expect(single !== undefined && rangeContains(single, Uint8Array.of(0)) && !rangeContains(single, bytes('a'))).toBe(true);
    expect(normalizeWatchRange(bytes('b'), bytes('b'))).toBeUndefined();
    expect(normalizeWatchRange(bytes('b'), bytes('a'))).toBeUndefined();
    const range = normalizeWatchRange(bytes('a'), bytes('c'));
    expect(range !== undefined && ['a', 'b', 'bzz'].every((k) => rangeContains(range, bytes(k)))).toBe(true);
    expect(range !== undefined && rangeContains(range, bytes('c'))).toBe(false);
  });
});
