// Goal: the watch hub gives every watcher etcd's stream — created first, then each matching event exactly once in revision order — even when history is replayed, a stream backs up or history is compacted.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../server/clock.js';
import { GavelError } from '../../server/errors.js';
import type { KeyRange, KeyValue, MvccEvent } from '../../server/mvcc/types.js';
import { CANCEL_REASONS, INVALID_WATCH_ID, WatchHub } from '../../server/watch/hub.js';
import type { HistorySource, WatchCreate, WatchHubOptions, WatchResponse, WatchSink } from '../../server/watch/types.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (value: string): Uint8Array => encoder.encode(value);
const str = (value: Uint8Array): string => decoder.decode(value);

type Op = { put: string; value?: string } | { del: string };

/** An event log with etcd's revision rules, independent of the hub's own range code. */
class FakeHistory implements HistorySource {
  currentRevision = 1; // etcd starts at revision 1
  compactedRevision = 0;
  reads = 0;
  readonly log: MvccEvent[] = [];
  private readonly live = new Map<string, KeyValue>();

  write(ops: Op[]): { revision: number; events: MvccEvent[] } {
    const revision = this.currentRevision + 1;
    const events: MvccEvent[] = [];
    for (const op of ops) {
      const key = 'put' in op ? op.put : op.del;
      const previous = this.live.get(key);
      if ('put' in op) {
        const kv: KeyValue = {
          key: bytes(key),
          value: bytes(op.value ?? `${key}@${revision}`),
          createRevision: previous?.createRevision ?? revision,
          modRevision: revision,
          version: (previous?.version ?? 0) + 1,
          lease: 0n,
        };
        this.live.set(key, kv);
        events.push(previous === undefined ? { type: 'put', kv } : { type: 'put', kv, prevKv: previous });
      } else {
        if (previous === undefined) continue;
        this.live.delete(key);
        const kv: KeyValue = { key: bytes(key), value: new Uint8Array(0), createRevision: 0, modRevision: revision, version: 0, lease: 0n };
        events.push({ type: 'delete', kv, prevKv: previous });
      }
    }
    if (events.length === 0) return { revision: this.currentRevision, events };
    this.currentRevision = revision;
    this.log.push(...events);
    return { revision, events };
  }

  compact(revision: number): void {
    this.compactedRevision = revision;
  }

  eventsInRange(fromRevision: number, toRevision: number, range: KeyRange, maxEvents?: number): MvccEvent[] {
    this.reads++;
    if (fromRevision <= this.compactedRevision) throw new GavelError('Compacted');
    const out: MvccEvent[] = [];
    for (const event of this.log) {
      const revision = event.kv.modRevision;
      if (revision < fromRevision || revision > toRevision || !inRange(range, str(event.kv.key))) continue;
      out.push(event);
      if (maxEvents !== undefined && out.length >= maxEvents) break;
    }
    return out;
  }

  /** The events a watcher on this range from `from` must see, as "type key@rev". */
  expected(range: KeyRange, from: number, filter: (event: MvccEvent) => boolean = () => true): string[] {
    return this.log.filter((e) => e.kv.modRevision >= from && inRange(range, str(e.kv.key)) && filter(e)).map(describeEvent);
  }
}

function inRange(range: KeyRange, key: string): boolean {
  const start = str(range.key);
  if (range.rangeEnd.length === 0) return key === start;
  if (range.rangeEnd.length === 1 && range.rangeEnd[0] === 0) return key >= start;
  return key >= start && key < str(range.rangeEnd);
}

class RecordingSink implements WatchSink {
  readonly responses: WatchResponse[] = [];
  accepting = true;
  failure: GavelError | undefined;
  send(response: WatchResponse): boolean {
    this.responses.push(response);
    return this.accepting;
  }
  fail(error: GavelError): void {
    this.failure = error;
  }
  /** Event strings delivered to one watch id, in order. */
  events(watchId: number): string[] {
    return this.responses.filter((r) => r.watchId === watchId).flatMap((r) => r.events.map(describeEvent));
  }
  of(watchId: number): WatchResponse[] {
    return this.responses.filter((r) => r.watchId === watchId);
  }
}

function describeEvent(event: MvccEvent): string {
  return `${event.type} ${str(event.kv.key)}@${event.kv.modRevision}`;
}

function watch(key: string, overrides: Partial<WatchCreate> = {}): WatchCreate {
  return { key: bytes(key), rangeEnd: new Uint8Array(0), startRevision: 0, progressNotify: false, filters: [], prevKv: false, watchId: 0, fragment: false, ...overrides };
}

function prefixEnd(prefix: string): Uint8Array {
  const end = bytes(prefix);
  end[end.length - 1]! += 1;
  return end;
}

function setup(options: Partial<WatchHubOptions> = {}) {
  const clock = new ManualClock(0);
  const history = new FakeHistory();
  const hub = new WatchHub(history, { clock, maxResponseBytes: 1 << 20, progressIntervalMs: 1_000, ...options });
  const apply = (ops: Op[]): number => {
    const { revision, events } = history.write(ops);
    if (events.length > 0) hub.notify(revision, events);
    return revision;
  };
  const put = (key: string, value?: string): number => apply([value === undefined ? { put: key } : { put: key, value }]);
  const del = (key: string): number => apply([{ del: key }]);
  return { clock, history, hub, apply, put, del };
}

describe('create', () => {
  it('answers created first with the current revision, ids 0, 1, … per stream', () => {
    const { hub, put } = setup();
    put('a');
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    stream.create(watch('a'));
    stream.create(watch('b'));
    expect(sink.responses).toEqual([
      { watchId: 0, headerRevision: 2, created: true, events: [] },
      { watchId: 1, headerRevision: 2, created: true, events: [] },
    ]);
    const other = new RecordingSink();
    hub.openStream(other).create(watch('a'));
    expect(other.responses[0]?.watchId).toBe(0);
  });

  it('uses a requested id, skips ids in use, and refuses a duplicate with etcd\'s text and id -1', () => {
    const { hub } = setup();
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    stream.create(watch('a', { watchId: 1 }));
    stream.create(watch('a')); // auto: 0
    stream.create(watch('a')); // auto: 1 is taken → 2
    stream.create(watch('a', { watchId: 2 }));
    expect(sink.responses.map((r) => r.watchId)).toEqual([1, 0, 2, INVALID_WATCH_ID]);
    expect(sink.responses[3]).toMatchObject({ created: true, canceled: true, cancelReason: 'mvcc: duplicate watch ID provided on the WatchStream' });
    expect(stream.watcherCount).toBe(3);
  });

  it('refuses an empty range, a negative start revision and too many watchers', () => {
    const { hub } = setup({ maxWatchersPerStream: 2 });
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    stream.create(watch('b', { rangeEnd: bytes('a') }));
    stream.create(watch('a', { startRevision: -1 }));
    stream.create(watch('a'));
    stream.create(watch('b'));
    stream.create(watch('c'));
    expect(sink.responses.map((r) => [r.watchId, r.canceled === true, r.cancelReason])).toEqual([
      [-1, true, CANCEL_REASONS.emptyRange],
      [-1, true, 'etcdserver: mvcc: required revision has been compacted'],
      [0, false, undefined],
      [1, false, undefined],
      [-1, true, 'gavel: too many watchers on this stream (limit 2)'],
    ]);
  });

  it('a past start revision replays history after the created response, then goes live with no gap or duplicate', () => {
    const { hub, put, del, history } = setup();
    for (let i = 0; i < 5; i++) put('k');
    del('k');
    const sink = new RecordingSink();
    hub.openStream(sink).create(watch('k', { startRevision: 3 }));
    put('k');
    put('k');
    expect(sink.responses[0]).toMatchObject({ watchId: 0, created: true, headerRevision: 7 });
    expect(sink.events(0)).toEqual(history.expected({ key: bytes('k'), rangeEnd: new Uint8Array(0) }, 3));
    expect(sink.events(0)).toEqual(['put k@3', 'put k@4', 'put k@5', 'put k@6', 'delete k@7', 'put k@8', 'put k@9']);
  });

  it('a future start revision delivers nothing before it', () => {
    const { hub, put } = setup();
    const sink = new RecordingSink();
    hub.openStream(sink).create(watch('k', { startRevision: 4 }));
    put('k');
    put('k');
    put('k');
    expect(sink.events(0)).toEqual(['put k@4']);
  });

  it('a compacted start revision is created, then canceled with the compact revision', () => {
    const { hub, put, history } = setup();
    for (let i = 0; i < 5; i++) put('k');
    history.compact(4);
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    stream.create(watch('k', { startRevision: 4 }));
    expect(sink.responses).toEqual([
      { watchId: 0, headerRevision: 6, created: true, events: [] },
      { watchId: 0, headerRevision: 0, canceled: true, compactRevision: 4, events: [] },
    ]);
    expect(stream.watcherCount).toBe(0);
    put('k');
    expect(sink.responses).toHaveLength(2);
    stream.create(watch('k', { startRevision: 5 })); // the first revision still in history; ids keep counting (etcd 3.5)
    expect(sink.events(1)).toEqual(['put k@5', 'put k@6', 'put k@7']);
  });
});

describe('matching', () => {
  it('delivers a key, a prefix, a range, everything from a key, and all keys', () => {
    const { hub, put, history } = setup();
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    const ranges: KeyRange[] = [
      { key: bytes('foo'), rangeEnd: new Uint8Array(0) },
      { key: bytes('foo'), rangeEnd: prefixEnd('foo') },
      { key: bytes('b'), rangeEnd: bytes('fooa') },
      { key: bytes('foo1'), rangeEnd: Uint8Array.of(0) },
      { key: new Uint8Array(0), rangeEnd: Uint8Array.of(0) },
    ];
    for (const range of ranges) stream.create(watch('', { key: range.key, rangeEnd: range.rangeEnd }));
    for (const key of ['a', 'b', 'fo', 'foo', 'foo1', 'foo2', 'fop', 'z', 'fooa']) put(key);
    ranges.forEach((range, id) => {
      const normalized = range.key.length === 0 ? { key: Uint8Array.of(0), rangeEnd: range.rangeEnd } : range;
      expect(sink.events(id)).toEqual(history.expected(normalized, 0));
    });
    expect(sink.events(0)).toEqual(['put foo@5']);
    expect(sink.events(1)).toEqual(['put foo@5', 'put foo1@6', 'put foo2@7', 'put fooa@10']);
    expect(sink.events(2)).toEqual(['put b@3', 'put fo@4', 'put foo@5', 'put foo1@6', 'put foo2@7']);
    expect(sink.events(4)).toHaveLength(9);
  });

  it('a multi-key revision reaches each watcher as one response with only its keys', () => {
    const { hub, apply } = setup();
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    stream.create(watch('a'));
    stream.create(watch('a', { rangeEnd: Uint8Array.of(0) }));
    apply([{ put: 'a' }, { put: 'b' }, { put: 'c' }]);
    expect(sink.of(0).slice(1).map((r) => r.events.map(describeEvent))).toEqual([['put a@2']]);
    expect(sink.of(1).slice(1).map((r) => r.events.map(describeEvent))).toEqual([['put a@2', 'put b@2', 'put c@2']]);
    expect(sink.of(1)[1]?.headerRevision).toBe(2);
  });

  it('filters drop puts or deletes; a revision with nothing left sends nothing', () => {
    const { hub, put, del } = setup();
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    stream.create(watch('k', { filters: ['noPut'] }));
    stream.create(watch('k', { filters: ['noDelete'] }));
    put('k');
    del('k');
    put('k');
    expect(sink.events(0)).toEqual(['delete k@3']);
    expect(sink.events(1)).toEqual(['put k@2', 'put k@4']);
    expect(sink.of(0)).toHaveLength(2); // created + one delete
  });

  it('prevKv only when asked, live and replayed', () => {
    const { hub, put } = setup();
    put('k', 'one');
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    stream.create(watch('k'));
    stream.create(watch('k', { prevKv: true }));
    stream.create(watch('k', { prevKv: true, startRevision: 2 }));
    put('k', 'two');
    expect(sink.of(0)[1]?.events[0]?.prevKv).toBeUndefined();
    expect(sink.of(1)[1]?.events[0]?.prevKv?.value).toEqual(bytes('one'));
    const replayed = sink.events(2);
    expect(replayed).toEqual(['put k@2', 'put k@3']);
    const replayedEvents = sink.of(2).flatMap((r) => r.events);
    expect(replayedEvents[0]?.prevKv).toBeUndefined(); // a create has no previous version
    expect(replayedEvents[1]?.prevKv?.value).toEqual(bytes('one'));
  });
});

describe('fragments and batches', () => {
  const big = 'x'.repeat(400);

  it('splits a revision larger than maxResponseBytes only when fragment was asked', () => {
    const { hub, apply } = setup({ maxResponseBytes: 1_000 });
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    stream.create(watch('k', { rangeEnd: Uint8Array.of(0), fragment: true }));
    stream.create(watch('k', { rangeEnd: Uint8Array.of(0) }));
    const ops: Op[] = ['k1', 'k2', 'k3', 'k4', 'k5'].map((key) => ({ put: key, value: big }));
    apply(ops);
    const fragments = sink.of(0).slice(1);
    expect(fragments.length).toBeGreaterThan(1);
    expect(fragments.slice(0, -1).every((r) => r.fragment === true)).toBe(true);
    expect(fragments.at(-1)?.fragment).toBeUndefined();
    expect(fragments.flatMap((r) => r.events.map(describeEvent))).toEqual(['k1', 'k2', 'k3', 'k4', 'k5'].map((k) => `put ${k}@2`));
    const whole = sink.of(1).slice(1);
    expect(whole).toHaveLength(1);
    expect(whole[0]?.events).toHaveLength(5);
  });

  it('replay batches whole revisions under maxResponseBytes, never splitting one', () => {
    // One revision here is two ~460-byte events: two revisions fit below 2 500 bytes, three do not.
    const { hub, apply, history } = setup({ maxResponseBytes: 2_500 });
    for (let i = 0; i < 6; i++) apply([{ put: `a${i}`, value: big }, { put: `b${i}`, value: big }]);
    const sink = new RecordingSink();
    hub.openStream(sink).create(watch('a', { rangeEnd: Uint8Array.of(0), startRevision: 1 }));
    const batches = sink.of(0).slice(1);
    expect(batches.map((batch) => batch.events.length)).toEqual([4, 4, 4]);
    for (const batch of batches) {
      const revisions = new Set(batch.events.map((e) => e.kv.modRevision));
      // Each revision's two events travel together.
      expect(batch.events.length).toBe(2 * revisions.size);
    }
    expect(sink.events(0)).toEqual(history.expected({ key: bytes('a'), rangeEnd: Uint8Array.of(0) }, 1));
    expect(batches.at(-1)?.headerRevision).toBe(7);
  });

  it('replay reads history in bounded batches and still never splits a revision', () => {
    const { hub, apply, history } = setup({ syncBatchEvents: 2 });
    apply([{ put: 'a' }]);
    apply([{ put: 'b' }, { put: 'c' }, { put: 'd' }]); // one revision larger than a read batch
    apply([{ put: 'e' }]);
    apply([{ put: 'f' }, { put: 'g' }]);
    const sink = new RecordingSink();
    hub.openStream(sink).create(watch('a', { rangeEnd: Uint8Array.of(0), startRevision: 2 }));
    expect(sink.events(0)).toEqual(history.expected({ key: bytes('a'), rangeEnd: Uint8Array.of(0) }, 2));
    for (const response of sink.of(0).slice(1)) {
      const revision = response.events[0]?.kv.modRevision;
      if (revision === 3) expect(response.events).toHaveLength(3);
    }
  });
});

describe('cancel and progress', () => {
  it('cancel answers canceled and stops events; an unknown id gets no answer', () => {
    const { hub, put } = setup();
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    stream.create(watch('k'));
    put('k');
    expect(stream.cancel(0)).toBe(true);
    put('k');
    expect(stream.cancel(0)).toBe(false);
    expect(sink.of(0).map((r) => (r.created ? 'created' : r.canceled ? 'canceled' : r.events.map(describeEvent).join()))).toEqual(['created', 'put k@2', 'canceled']);
    expect(sink.responses.at(-1)).toEqual({ watchId: 0, headerRevision: 2, canceled: true, events: [] });
    expect(hub.watcherCount).toBe(0);
  });

  it('progress_notify watchers get an empty response after an interval without events', () => {
    const { hub, put, clock } = setup({ progressIntervalMs: 1_000 });
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    stream.create(watch('k', { progressNotify: true }));
    stream.create(watch('k'));
    clock.advance(999);
    hub.tick();
    expect(sink.responses).toHaveLength(2);
    clock.advance(1);
    put('other');
    hub.tick();
    expect(sink.responses.at(-1)).toEqual({ watchId: 0, headerRevision: 2, events: [] });
    clock.advance(500);
    put('k'); // an event resets the interval
    clock.advance(600);
    hub.tick();
    expect(sink.of(0).at(-1)?.events).toHaveLength(1);
    clock.advance(400);
    hub.tick();
    expect(sink.of(0).at(-1)).toEqual({ watchId: 0, headerRevision: 3, events: [] });
    expect(sink.of(1)).toHaveLength(2); // created + the event, no progress
  });

  it('requestProgress answers watch id -1 at the current revision when every watcher is synced', () => {
    const { hub, put } = setup();
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    stream.requestProgress(); // no watchers: answered at once, as etcd
    stream.create(watch('k'));
    put('x');
    stream.requestProgress();
    expect(sink.responses.filter((r) => r.watchId === -1)).toEqual([
      { watchId: -1, headerRevision: 1, events: [] },
      { watchId: -1, headerRevision: 2, events: [] },
    ]);
  });

  it('requestProgress waits for unsynced watchers, and comes after their events', () => {
    const { hub, put } = setup({ maxPendingResponsesPerStream: 1 });
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    stream.create(watch('k'));
    sink.accepting = false;
    put('k'); // sent; the sink backs up
    put('k'); // queued
    put('k'); // queue full: the watcher falls back to history
    stream.requestProgress();
    expect(sink.responses.filter((r) => r.watchId === -1)).toEqual([]);
    sink.accepting = true;
    stream.drained();
    expect(sink.events(0)).toEqual(['put k@2', 'put k@3', 'put k@4']);
    expect(sink.responses.at(-1)).toEqual({ watchId: -1, headerRevision: 4, events: [] });
  });
});

describe('slow streams', () => {
  it('a backed-up sink blocks neither notify nor other streams, and catches up exactly once in order after drained()', () => {
    const { hub, put, del, history } = setup({ maxPendingResponsesPerStream: 4 });
    const slow = new RecordingSink();
    const fast = new RecordingSink();
    const slowStream = hub.openStream(slow);
    hub.openStream(fast).create(watch('k', { rangeEnd: Uint8Array.of(0) }));
    slowStream.create(watch('k', { rangeEnd: Uint8Array.of(0) }));
    slowStream.create(watch('k5'));
    slow.accepting = false;
    for (let i = 0; i < 200; i++) (i % 7 === 6 ? del : put)(`k${i % 10}`);
    const all = history.expected({ key: bytes('k'), rangeEnd: Uint8Array.of(0) }, 2);
    expect(fast.events(0)).toEqual(all);
    // The slow sink got one response and then nothing: 4 queued, the rest left in history.
    expect(slow.responses.length).toBeLessThanOrEqual(3);
    expect(hub.unsyncedWatcherCount).toBe(2);
    const readsBefore = history.reads;
    hub.tick(); // still backed up: tick does not read history for it
    expect(history.reads).toBe(readsBefore);
    // The transport drains a little at a time.
    for (let round = 0; round < 100 && hub.unsyncedWatcherCount > 0; round++) {
      slow.accepting = round % 3 === 2;
      slowStream.drained();
      put(`k${round % 10}`); // writes keep coming while it catches up
    }
    slow.accepting = true;
    slowStream.drained();
    expect(hub.unsyncedWatcherCount).toBe(0);
    expect(slow.events(0)).toEqual(history.expected({ key: bytes('k'), rangeEnd: Uint8Array.of(0) }, 2));
    expect(slow.events(1)).toEqual(history.expected({ key: bytes('k5'), rangeEnd: new Uint8Array(0) }, 2));
    expect(fast.events(0)).toEqual(slow.events(0));
  });

  it('a replay that fills the queue mid-window resumes at the first revision not queued', () => {
    const { hub, put, history } = setup({ maxResponseBytes: 100, maxPendingResponsesPerStream: 2 });
    for (let i = 0; i < 12; i++) put('k');
    const sink = new RecordingSink();
    sink.accepting = false;
    const stream = hub.openStream(sink);
    stream.create(watch('k', { startRevision: 2 })); // one revision per response: the window outgrows the queue
    expect(sink.responses).toHaveLength(1);
    expect(hub.unsyncedWatcherCount).toBe(1);
    for (let i = 0; i < 20 && hub.unsyncedWatcherCount > 0; i++) stream.drained(); // one response per drain
    expect(hub.unsyncedWatcherCount).toBe(0);
    sink.accepting = true;
    stream.drained(); // synced, but the last responses are still queued
    expect(sink.events(0)).toEqual(history.expected({ key: bytes('k'), rangeEnd: new Uint8Array(0) }, 2));
  });

  it('tick catches up a stream that has room but was left behind by the read budget', () => {
    const { hub, put, history } = setup({ syncBatchEvents: 3, syncBudgetEvents: 3 });
    for (let i = 0; i < 20; i++) put('k');
    const sink = new RecordingSink();
    hub.openStream(sink).create(watch('k', { startRevision: 2 }));
    expect(hub.unsyncedWatcherCount).toBe(1);
    put('k'); // live write while unsynced: must come after the replay, once
    for (let i = 0; i < 20 && hub.unsyncedWatcherCount > 0; i++) hub.tick();
    expect(hub.unsyncedWatcherCount).toBe(0);
    put('k');
    expect(sink.events(0)).toEqual(history.expected({ key: bytes('k'), rangeEnd: new Uint8Array(0) }, 2));
  });

  it('history compacted while a watcher lagged cancels it with the compact revision', () => {
    const { hub, put, history } = setup({ maxPendingResponsesPerStream: 1 });
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    stream.create(watch('k'));
    stream.create(watch('other'));
    sink.accepting = false;
    for (let i = 0; i < 5; i++) put('k');
    history.compact(4);
    sink.accepting = true;
    stream.drained();
    expect(sink.of(0).at(-1)).toEqual({ watchId: 0, headerRevision: 0, canceled: true, compactRevision: 4, events: [] });
    expect(sink.events(0)).toEqual(['put k@2', 'put k@3']);
    expect(stream.watcherCount).toBe(1); // the other watcher was synced and is untouched
  });

  it('after a snapshot install (restored) synced watchers catch up from history, or are canceled if it is gone', () => {
    const { hub, put, history } = setup();
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    stream.create(watch('k'));
    put('k');
    history.write([{ put: 'k' }]); // applied by the snapshot, never notified
    history.write([{ put: 'k' }]);
    hub.restored();
    expect(hub.currentRevision).toBe(4);
    hub.tick();
    put('k');
    expect(sink.events(0)).toEqual(['put k@2', 'put k@3', 'put k@4', 'put k@5']);
    history.write([{ put: 'k' }]);
    history.compact(6);
    hub.restored();
    hub.tick();
    expect(sink.responses.at(-1)).toEqual({ watchId: 0, headerRevision: 0, canceled: true, compactRevision: 6, events: [] });
  });

  it('a sink that throws closes only its own stream', () => {
    const { hub, put } = setup();
    const good = new RecordingSink();
    hub.openStream(good).create(watch('k'));
    let sends = 0;
    const broken = hub.openStream({
      send: () => {
        if (++sends > 1) throw new Error('stream reset');
        return true;
      },
    });
    broken.create(watch('k'));
    put('k');
    put('k');
    expect(good.events(0)).toEqual(['put k@2', 'put k@3']);
    expect(hub.streamCount).toBe(1);
  });

  it('a client that never reads but keeps sending requests is cut off with fail() once it has not read for stalledStreamMs', () => {
    const { hub, clock } = setup({ maxPendingResponsesPerStream: 2, maxWatchersPerStream: 3, stalledStreamMs: 5_000 });
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    sink.accepting = false;
    for (let i = 0; i < 4; i++) {
      stream.create(watch('k'));
      stream.cancel(i);
    }
    // Over the bound (5 queued), but it has not been long: a burst, not yet a client that does not read.
    expect(sink.failure).toBeUndefined();
    clock.advance(4_999);
    stream.create(watch('k'));
    expect(sink.failure).toBeUndefined();
    clock.advance(1);
    stream.create(watch('k'));
    expect(sink.failure?.code).toBe('TooManyRequests');
    expect(sink.failure?.message).toBe('etcdserver: too many requests');
    expect(hub.streamCount).toBe(0);
  });

  it('a client that reads now and then is never cut off for being slow; past the ceiling (4 × the bound) it is, for memory', () => {
    const { hub, clock } = setup({ maxPendingResponsesPerStream: 2, maxWatchersPerStream: 3, stalledStreamMs: 5_000 });
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    for (let round = 0; round < 10; round++) {
      sink.accepting = false;
      for (let i = 0; i < 8; i++) stream.create(watch('k')); // over the bound (5); refused past 3 watchers, each answered
      clock.advance(4_000);
      sink.accepting = true;
      stream.drained(); // it read a little: 8 s over the bound in all, but never 5 s without reading
      sink.accepting = false;
    }
    expect(sink.failure).toBeUndefined();
    expect(stream.watcherCount).toBe(3);
    // The first answer goes to the transport, the next 20 wait in the queue (4 × the bound)...
    for (let i = 0; i < 21; i++) stream.create(watch('k'));
    expect(sink.failure).toBeUndefined();
    stream.create(watch('k')); // ...and one more is too many, read or not
    expect(sink.failure?.code).toBe('TooManyRequests');
  });

  it('a burst of creates past the watcher limit before the client reads: each one over is refused alone, the earlier watchers keep their events', () => {
    // Issue #20: 20,000 creates on one stream ended it with "too many requests", dropping the first 10,000 watchers.
    const { hub, put } = setup({ maxPendingResponsesPerStream: 4, maxWatchersPerStream: 100 });
    const sink = new RecordingSink();
    const stream = hub.openStream(sink);
    sink.accepting = false; // the client writes its whole burst before it reads anything
    for (let i = 0; i < 200; i++) stream.create(watch(`key/${i % 100}`));
    const first = put('key/7');
    const second = put('key/42');
    expect(sink.failure).toBeUndefined();
    expect(hub.streamCount).toBe(1);
    expect(stream.watcherCount).toBe(100);
    sink.accepting = true;
    stream.drained();
    hub.tick();
    const controls = sink.responses.filter((r) => r.created === true);
    expect(controls).toHaveLength(200);
    expect(controls.slice(0, 100).map((r) => [r.watchId, r.canceled === true])).toEqual(Array.from({ length: 100 }, (_, i) => [i, false]));
    for (const refused of controls.slice(100)) {
      expect(refused).toMatchObject({ watchId: INVALID_WATCH_ID, created: true, canceled: true, cancelReason: CANCEL_REASONS.tooManyWatchers(100) });
    }
    expect(sink.events(7)).toEqual([`put key/7@${first}`]);
    expect(sink.events(42)).toEqual([`put key/42@${second}`]);
    // Still watching: later events arrive live.
    const third = put('key/99');
    expect(sink.events(99)).toEqual([`put key/99@${third}`]);
  });
});

describe('scale', () => {
  it('many watchers on one stream and many streams each get exactly their events', () => {
    const { hub, put, del, history } = setup();
    const keys = Array.from({ length: 50 }, (_, i) => `key/${String(i).padStart(2, '0')}`);
    const sinks: RecordingSink[] = [];
    const ranges: KeyRange[][] = [];
    for (let s = 0; s < 40; s++) {
      const sink = new RecordingSink();
      const stream = hub.openStream(sink);
      const mine: KeyRange[] = [];
      for (let w = 0; w < 25; w++) {
        const pick = (s * 31 + w * 7) % keys.length;
        const range: KeyRange =
          w % 5 === 0 ? { key: bytes(`key/${pick % 5}`), rangeEnd: prefixEnd(`key/${pick % 5}`) } : { key: bytes(keys[pick] ?? ''), rangeEnd: new Uint8Array(0) };
        mine.push(range);
        stream.create(watch('', { key: range.key, rangeEnd: range.rangeEnd }));
      }
      sinks.push(sink);
      ranges.push(mine);
    }
    expect(hub.watcherCount).toBe(1_000);
    for (let i = 0; i < 300; i++) (i % 11 === 10 ? del : put)(keys[(i * 17) % keys.length] ?? '');
    sinks.forEach((sink, s) => {
      ranges[s]?.forEach((range, w) => expect(sink.events(w)).toEqual(history.expected(range, 2)));
    });
  });

  it.each([7, 8, 9, 10])('random writes, back-pressure and drains (seed %i): every watcher sees exactly its events in order', (seed) => {
    const { history, streams } = randomRun(seed, false);
    for (const { sink, watches } of streams) {
      watches.forEach(({ range, from }, id) => {
        expect(sink.of(id)[0]?.created).toBe(true);
        expect(sink.events(id)).toEqual(history.expected(range, from));
      });
    }
  });

  it.each([11, 12, 13])('the same with compaction (seed %i): a watcher gets a gapless prefix, and is canceled with the compact revision only if it lagged behind it', (seed) => {
    const { history, streams } = randomRun(seed, true);
    let canceled = 0;
    for (const { sink, watches } of streams) {
      watches.forEach(({ range, from }, id) => {
        const expected = history.expected(range, from);
        const got = sink.events(id);
        expect(got).toEqual(expected.slice(0, got.length));
        const cancel = sink.of(id).find((r) => r.canceled === true);
        if (cancel === undefined) {
          expect(got).toEqual(expected);
          return;
        }
        canceled++;
        expect(cancel.compactRevision).toBeGreaterThan(0);
        // It was canceled because it still needed history at or below the compact revision.
        const last = got.at(-1);
        if (last !== undefined) expect(Number(last.split('@')[1])).toBeLessThan(cancel.compactRevision ?? 0);
        expect(sink.of(id).at(-1)).toBe(cancel);
      });
    }
    expect(canceled).toBeGreaterThan(0);
  });
});

/** A small seeded PRNG (mulberry32): uniform in [0, 1), reproducible. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * Random writes, watcher creates (some from past revisions), sinks that back up and recover,
 * drains and ticks; optionally compaction. Ends by draining everything.
 */
function randomRun(seed: number, compact: boolean) {
  const next = mulberry32(seed);
  const random = (n: number): number => Math.floor(next() * n);
  const { hub, put, del, history } = setup({ maxPendingResponsesPerStream: 3, syncBatchEvents: 5, syncBudgetEvents: 20, maxResponseBytes: 250 }); // ~2 events per response
  const keys = ['a', 'ab', 'abc', 'b', 'ba', 'c'];
  const streams = Array.from({ length: 6 }, () => {
    const sink = new RecordingSink();
    return { sink, stream: hub.openStream(sink), watches: [] as { range: KeyRange; from: number }[] };
  });
  let maxUnsynced = 0;
  for (let step = 0; step < 800; step++) {
    const choice = random(12);
    const target = streams[random(streams.length)];
    if (target === undefined) continue;
    if (choice < 6) (random(4) === 0 ? del : put)(keys[random(keys.length)] ?? 'a');
    else if (choice === 6 && target.watches.length < 4) {
      const key = keys[random(keys.length)] ?? 'a';
      const range: KeyRange = random(2) === 0 ? { key: bytes(key), rangeEnd: new Uint8Array(0) } : { key: bytes(key), rangeEnd: prefixEnd(key) };
      const start = random(3) === 0 ? Math.max(history.compactedRevision + 1, history.currentRevision - random(30)) : 0;
      target.watches.push({ range, from: start === 0 ? history.currentRevision + 1 : start });
      target.stream.create(watch('', { key: range.key, rangeEnd: range.rangeEnd, startRevision: start }));
    } else if (choice === 7) target.sink.accepting = !target.sink.accepting;
    else if (choice === 8) target.stream.drained();
    else if (choice === 9 && compact && random(10) === 0) history.compact(Math.max(history.compactedRevision, history.currentRevision - random(10)));
    else hub.tick();
    maxUnsynced = Math.max(maxUnsynced, hub.unsyncedWatcherCount);
  }
  // The run must have exercised the catch-up path, or it proves nothing.
  expect(maxUnsynced).toBeGreaterThan(2);
  for (const { sink } of streams) sink.accepting = true;
  for (let round = 0; round < 200 && hub.unsyncedWatcherCount > 0; round++) {
    for (const { stream } of streams) stream.drained();
    hub.tick();
  }
  expect(hub.unsyncedWatcherCount).toBe(0);
  return { history, streams };
}
