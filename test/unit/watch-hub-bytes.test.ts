// Goal: a watch stream whose transport is backed up holds at most maxPendingBytesPerStream (estimated) bytes in the hub, plus one response, reports them to its sink, and its watcher still gets every event exactly once, in order, from history after drained().
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../server/clock.js';
import type { KeyRange, MvccEvent } from '../../server/mvcc/types.js';
import { WatchHub } from '../../server/watch/hub.js';
import { responseBytes } from '../../server/watch/responses.js';
import type { HistorySource, WatchResponse, WatchSink } from '../../server/watch/types.js';

const KEY = new TextEncoder().encode('k');

/** Puts of one key, each with a value of `valueBytes` bytes. */
class OneKeyHistory implements HistorySource {
  currentRevision = 1;
  compactedRevision = 0;
  readonly log: MvccEvent[] = [];

  put(valueBytes: number): MvccEvent {
    const revision = ++this.currentRevision;
    const event: MvccEvent = { type: 'put', kv: { key: KEY, value: new Uint8Array(valueBytes), createRevision: 2, modRevision: revision, version: revision - 1, lease: 0n } };
    this.log.push(event);
    return event;
  }

  eventsInRange(fromRevision: number, toRevision: number, _range: KeyRange, maxEvents?: number): MvccEvent[] {
    const out = this.log.filter((e) => e.kv.modRevision >= fromRevision && e.kv.modRevision <= toRevision);
    return maxEvents === undefined ? out : out.slice(0, maxEvents);
  }
}

class BlockingSink implements WatchSink {
  readonly responses: WatchResponse[] = [];
  readonly reports: number[] = [];
  accepting = true;
  send(response: WatchResponse): boolean {
    this.responses.push(response);
    return this.accepting;
  }
  queued(bytes: number): void {
    this.reports.push(bytes);
  }
  revisions(): number[] {
    return this.responses.flatMap((r) => r.events.map((e) => e.kv.modRevision));
  }
}

describe('watch hub byte bound', () => {
  it('queues at most the byte bound plus one response, then falls back to history; reports the bytes', () => {
    const history = new OneKeyHistory();
    const maxPendingBytesPerStream = 64 * 1024;
    const hub = new WatchHub(history, { clock: new ManualClock(0), maxResponseBytes: 1 << 20, progressIntervalMs: 1_000, maxPendingBytesPerStream });
    const sink = new BlockingSink();
    const stream = hub.openStream(sink);
    stream.create({ key: KEY, rangeEnd: new Uint8Array(0), startRevision: 0, progressNotify: false, filters: [], prevKv: false, watchId: 0, fragment: false });
    sink.accepting = false;
    // 100 puts of 10 KB: 1 MB of events against a 64 KB queue (and fewer than 128 responses).
    for (let i = 0; i < 100; i++) {
      const event = history.put(10 * 1024);
      hub.notify(event.kv.modRevision, [event]);
    }
    const oneResponse = responseBytes({ events: [history.log[0]!] });
    const most = Math.max(...sink.reports);
    expect(most).toBeLessThan(maxPendingBytesPerStream + oneResponse);
    expect(most).toBeGreaterThanOrEqual(maxPendingBytesPerStream);
    expect(hub.unsyncedWatcherCount).toBe(1);

    sink.accepting = true;
    for (let i = 0; i < 10 && hub.unsyncedWatcherCount > 0; i++) stream.drained();
    stream.drained();
    expect(hub.unsyncedWatcherCount).toBe(0);
    expect(sink.revisions()).toEqual(history.log.map((e) => e.kv.modRevision));
    expect(sink.reports.at(-1)).toBe(0);
    stream.close();
  });
});
