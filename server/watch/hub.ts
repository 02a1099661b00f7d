/**
 * The watch hub: etcd's watchable store, in memory, without goroutines.
 *
 * A watcher is either synced (it has every event up to the hub's revision queued or sent, and gets
 * new ones from notify()) or unsynced (it remembers nextRevision and catches up from
 * HistorySource on drained()/tick()). notify() is called by the apply loop for every applied
 * write revision and must stay cheap: it only looks at watchers interested in the changed keys
 * (single-key watchers through a map, range watchers through a list) and never waits on a
 * transport. A stream whose transport is backed up queues at most maxPendingResponsesPerStream
 * responses and maxPendingBytesPerStream (estimated) bytes, plus one response; past that its
 * watchers fall back to unsynced, so a slow client costs O(1) memory per watcher and never slows
 * other streams. (Control responses are always queued: they answer requests, which the adapter
 * stops reading while the transport is backed up.)
 *
 * Limits refuse what is over them, not what came before: past maxWatchersPerStream each further
 * create is refused on its own (etcd's answer to a refused create: created and canceled, watch id
 * -1, a cancel reason) while the stream's watchers keep their events. A stream is cut off only if
 * its client does not read (see controlRoom).
 *
 * Ordering contract per watcher: created first, then events in revision order, each exactly
 * once, with no gap; a response's headerRevision H means "every event of this watcher up to H
 * has been sent" (for the stream-wide progress response, for every watcher of the stream).
 */
import type { Clock } from '../clock.js';
import { assert, GavelError, isGavelError } from '../errors.js';
import type { MvccEvent } from '../mvcc/types.js';
import { keyString, normalizeWatchRange, rangeContains, toKeyRange, type WatchKeyRange } from './key-range.js';
import { batchWholeRevisions, fragmentEvents, responseBytes, selectEvents } from './responses.js';
import type { HistorySource, WatchCreate, WatchHubOptions, WatchResponse, WatchSink, WatchStream } from './types.js';

/** etcd's clientv3.InvalidWatchID: stream-wide progress responses and refused creates carry it. */
export const INVALID_WATCH_ID = -1;

/** Cancel reasons: etcd's texts where etcd has one (clients may match on them), ours otherwise. */
export const CANCEL_REASONS = {
  duplicateWatchId: 'mvcc: duplicate watch ID provided on the WatchStream',
  emptyRange: 'mvcc: watcher range is empty',
  /** etcd answers a negative start revision with the compacted error text. */
  negativeStartRevision: 'etcdserver: mvcc: required revision has been compacted',
  invalidWatchId: 'gavel: watch ID must be a non-negative safe integer',
  invalidStartRevision: 'gavel: start revision must be a safe integer',
  tooManyWatchers: (limit: number) => `gavel: too many watchers on this stream (limit ${limit})`,
} as const;

const DEFAULT_MAX_PENDING_RESPONSES = 128;
const DEFAULT_MAX_PENDING_BYTES = 256 * 1024;
const DEFAULT_MAX_WATCHERS_PER_STREAM = 10_000;
const DEFAULT_SYNC_BATCH_EVENTS = 1_000;
/** Catch-up reads history from level (about 10 µs an event cold): 3,000 keep one turn of the event loop near 30 ms. */
const DEFAULT_SYNC_BUDGET_EVENTS = 3_000;
/** How long a stream's control backlog may stay over its bound without the client reading any of it. */
const DEFAULT_STALLED_STREAM_MS = 30_000;
/** Past this many times its bound, a control backlog is cut off even from a client that reads (memory). */
const CONTROL_BACKLOG_CEILING_FACTOR = 4;

interface Watcher {
  readonly id: number;
  readonly stream: StreamState;
  readonly range: WatchKeyRange;
  readonly noPut: boolean;
  readonly noDelete: boolean;
  readonly prevKv: boolean;
  readonly fragment: boolean;
  readonly progressNotify: boolean;
  /** The first revision this watcher has not been given yet. */
  nextRevision: number;
  state: 'synced' | 'unsynced' | 'removed';
  /** When this watcher last got events or a progress notification (clock ms). */
  lastSentMs: number;
}

interface Queued {
  readonly response: WatchResponse;
  readonly bytes: number;
}

/** One stream's outbound queue and watchers. Knows nothing about history or indexes. */
class StreamState {
  readonly watchers = new Map<number, Watcher>();
  readonly unsynced = new Set<Watcher>();
  nextWatchId = 0;
  progressDeferred = false;
  /** Since when (hub clock) the control backlog has been over its bound with no drain from the client. */
  overBoundSinceMs: number | undefined = undefined;
  closed = false;
  private blocked = false;
  private sending = false;
  private queue: (Queued | undefined)[] = [];
  private head = 0;
  /** Estimated bytes of the queued responses (server/watch/responses.ts responseBytes). */
  private queuedBytes = 0;

  constructor(
    readonly sink: WatchSink,
    private readonly maxPending: number,
    private readonly maxPendingBytes: number,
    private readonly onSinkError: (state: StreamState) => void,
  ) {}

  get pending(): number {
    return this.queue.length - this.head;
  }

  /** Whether event responses may still be queued; control responses are always queued. */
  hasRoom(): boolean {
    return !this.closed && this.pending < this.maxPending && this.queuedBytes < this.maxPendingBytes;
  }

  push(response: WatchResponse): void {
    if (this.closed) return;
    if (!this.blocked && this.pending === 0) {
      this.sendNow(response);
      return;
    }
    const bytes = responseBytes(response);
    this.queue.push({ response, bytes });
    this.setQueuedBytes(this.queuedBytes + bytes);
  }

  /** Sends queued responses until the sink backs up again. */
  flush(): void {
    this.blocked = false;
    let bytes = this.queuedBytes;
    while (!this.blocked && !this.closed && this.head < this.queue.length) {
      const queued = this.queue[this.head];
      this.queue[this.head++] = undefined;
      assert(queued !== undefined, 'watch queue slot empty');
      bytes -= queued.bytes;
      this.sendNow(queued.response);
    }
    if (!this.closed) this.setQueuedBytes(bytes);
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  drop(): void {
    this.closed = true;
    this.queue = [];
    this.head = 0;
    this.setQueuedBytes(0);
  }

  private setQueuedBytes(bytes: number): void {
    assert(bytes >= 0, `watch queue counted ${bytes} bytes`);
    if (bytes === this.queuedBytes) return;
    this.queuedBytes = bytes;
    this.sink.queued?.(bytes);
  }

  private sendNow(response: WatchResponse): void {
    assert(!this.sending, 'WatchSink.send re-entered the watch stream');
    this.sending = true;
    try {
      this.blocked = !this.sink.send(response);
    } catch {
      // A transport that throws is gone: close this stream only, never fail notify() for others.
      this.sending = false;
      this.onSinkError(this);
      return;
    }
    this.sending = false;
  }
}

export class WatchHub {
  private readonly byKey = new Map<string, Set<Watcher>>();
  private readonly rangeWatchers = new Set<Watcher>();
  private readonly progressWatchers = new Set<Watcher>();
  private readonly streams = new Set<StreamState>();
  /** Streams with at least one unsynced watcher, in round-robin order for tick(). */
  private readonly unsyncedStreams = new Set<StreamState>();
  private readonly clock: Clock;
  private readonly maxResponseBytes: number;
  private readonly progressIntervalMs: number;
  private readonly maxPending: number;
  private readonly maxPendingBytes: number;
  private readonly maxWatchersPerStream: number;
  private readonly syncBatchEvents: number;
  private readonly syncBudgetEvents: number;
  private readonly stalledStreamMs: number;
  /** The newest revision notify() has seen: the hub's "current revision". */
  private revision: number;
  private closed = false;

  constructor(
    private readonly source: HistorySource,
    options: WatchHubOptions,
  ) {
    this.clock = options.clock;
    this.maxResponseBytes = positiveInteger(options.maxResponseBytes, 'maxResponseBytes');
    this.progressIntervalMs = positive(options.progressIntervalMs, 'progressIntervalMs');
    this.maxPending = positiveInteger(options.maxPendingResponsesPerStream ?? DEFAULT_MAX_PENDING_RESPONSES, 'maxPendingResponsesPerStream');
    this.maxPendingBytes = positiveInteger(options.maxPendingBytesPerStream ?? DEFAULT_MAX_PENDING_BYTES, 'maxPendingBytesPerStream');
    this.maxWatchersPerStream = positiveInteger(options.maxWatchersPerStream ?? DEFAULT_MAX_WATCHERS_PER_STREAM, 'maxWatchersPerStream');
    this.syncBatchEvents = positiveInteger(options.syncBatchEvents ?? DEFAULT_SYNC_BATCH_EVENTS, 'syncBatchEvents');
    this.syncBudgetEvents = positiveInteger(options.syncBudgetEvents ?? DEFAULT_SYNC_BUDGET_EVENTS, 'syncBudgetEvents');
    this.stalledStreamMs = positive(options.stalledStreamMs ?? DEFAULT_STALLED_STREAM_MS, 'stalledStreamMs');
    this.revision = source.currentRevision;
    assert(Number.isSafeInteger(this.revision) && this.revision >= 0, `history revision ${this.revision}`);
  }

  get currentRevision(): number {
    return this.revision;
  }

  get streamCount(): number {
    return this.streams.size;
  }

  get watcherCount(): number {
    let count = 0;
    for (const stream of this.streams) count += stream.watchers.size;
    return count;
  }

  get unsyncedWatcherCount(): number {
    let count = 0;
    for (const stream of this.unsyncedStreams) count += stream.unsynced.size;
    return count;
  }

  /**
   * Called by the apply loop right after revision `revision` was applied, with all its events
   * (one write revision = one call, in increasing order).
   */
  notify(revision: number, events: readonly MvccEvent[]): void {
    if (this.closed) return;
    assert(Number.isSafeInteger(revision) && revision > this.revision, `notify(${revision}) after revision ${this.revision}`);
    this.revision = revision;
    for (const [watcher, matched] of this.interestedWatchers(revision, events)) this.deliverLive(watcher, revision, matched);
  }

  openStream(sink: WatchSink): WatchStream {
    assert(!this.closed, 'openStream on a closed WatchHub');
    const state = new StreamState(sink, this.maxPending, this.maxPendingBytes, (broken) => this.closeStream(broken));
    this.streams.add(state);
    return {
      create: (request) => this.create(state, request),
      cancel: (watchId) => this.cancel(state, watchId),
      requestProgress: () => this.requestProgress(state),
      drained: () => this.drained(state),
      close: () => this.closeStream(state),
      get watcherCount() {
        return state.watchers.size;
      },
    };
  }

  /** Periodic work: move unsynced watchers forward (bounded), then progress notifications. */
  tick(): void {
    if (this.closed) return;
    const budget = { events: this.syncBudgetEvents };
    for (const stream of [...this.unsyncedStreams]) {
      if (budget.events <= 0) break;
      this.syncStream(stream, budget);
      // Round robin: a stream that still lags goes to the back, so one huge backlog cannot starve the others.
      if (this.unsyncedStreams.delete(stream)) this.unsyncedStreams.add(stream);
    }
    this.sendProgressNotifications();
  }

  /**
   * The store was replaced (snapshot install): every synced watcher catches up from history like
   * etcd's watchableStore.Restore, and the hub adopts the store's revision.
   */
  restored(): void {
    assert(this.source.currentRevision >= this.revision, 'a restored store went back in revisions');
    for (const stream of this.streams) {
      for (const watcher of stream.watchers.values()) if (watcher.state === 'synced') this.markUnsynced(watcher, watcher.nextRevision);
    }
    this.revision = this.source.currentRevision;
  }

  close(): void {
    for (const stream of [...this.streams]) this.closeStream(stream);
    this.closed = true;
  }

  // ---- stream requests ----

  private create(stream: StreamState, request: WatchCreate): void {
    if (stream.closed || !this.controlRoom(stream)) return;
    const refusal = this.refusalReason(stream, request);
    if (refusal !== undefined) {
      stream.push({ watchId: INVALID_WATCH_ID, headerRevision: this.revision, created: true, canceled: true, cancelReason: refusal, events: [] });
      return;
    }
    const range = normalizeWatchRange(request.key, request.rangeEnd);
    assert(range !== undefined, 'range validated by refusalReason');
    const watcher: Watcher = {
      id: this.assignWatchId(stream, request.watchId),
      stream,
      range,
      noPut: request.filters.includes('noPut'),
      noDelete: request.filters.includes('noDelete'),
      prevKv: request.prevKv,
      fragment: request.fragment,
      progressNotify: request.progressNotify,
      nextRevision: request.startRevision === 0 ? this.revision + 1 : request.startRevision,
      state: 'unsynced',
      lastSentMs: this.clock.now(),
    };
    stream.watchers.set(watcher.id, watcher);
    if (watcher.progressNotify) this.progressWatchers.add(watcher);
    // created goes out before anything else of this watcher: everything below is queued after it.
    stream.push({ watchId: watcher.id, headerRevision: this.revision, created: true, events: [] });
    if (watcher.state === 'removed') return; // the sink threw and the stream is gone
    if (watcher.nextRevision > this.revision) {
      this.markSynced(watcher);
      return;
    }
    // A past start revision: replay history now as far as the queue and the budget allow; the rest on drained()/tick().
    this.markUnsynced(watcher, watcher.nextRevision);
    this.catchUp(watcher, { events: this.syncBudgetEvents });
  }

  private refusalReason(stream: StreamState, request: WatchCreate): string | undefined {
    if (request.refusal !== undefined) return request.refusal;
    if (!Number.isSafeInteger(request.startRevision)) return CANCEL_REASONS.invalidStartRevision;
    if (request.startRevision < 0) return CANCEL_REASONS.negativeStartRevision;
    if (!Number.isSafeInteger(request.watchId) || request.watchId < 0) return CANCEL_REASONS.invalidWatchId;
    if (normalizeWatchRange(request.key, request.rangeEnd) === undefined) return CANCEL_REASONS.emptyRange;
    if (request.watchId !== 0 && stream.watchers.has(request.watchId)) return CANCEL_REASONS.duplicateWatchId;
    if (stream.watchers.size >= this.maxWatchersPerStream) return CANCEL_REASONS.tooManyWatchers(this.maxWatchersPerStream);
    return undefined;
  }

  /** etcd 3.5's per-stream ids: a requested id as is, else the next free one from 0 up. */
  private assignWatchId(stream: StreamState, requested: number): number {
    if (requested !== 0) return requested;
    while (stream.watchers.has(stream.nextWatchId)) stream.nextWatchId++;
    return stream.nextWatchId++;
  }

  private cancel(stream: StreamState, watchId: number): boolean {
    const watcher = stream.watchers.get(watchId);
    if (stream.closed || watcher === undefined || !this.controlRoom(stream)) return false;
    this.removeWatcher(watcher);
    stream.push({ watchId, headerRevision: this.revision, canceled: true, events: [] });
    this.afterUnsyncedChange(stream);
    return true;
  }

  /** etcd's RequestProgressAll: watch id -1 at the current revision, once every watcher of the stream is synced. */
  private requestProgress(stream: StreamState): void {
    if (stream.closed || !this.controlRoom(stream)) return;
    stream.progressDeferred = true;
    this.afterUnsyncedChange(stream);
  }

  private drained(stream: StreamState): void {
    if (stream.closed) return;
    stream.overBoundSinceMs = undefined; // the client reads
    stream.flush();
    if (stream.unsynced.size > 0) this.syncStream(stream, { events: this.syncBudgetEvents });
  }

  private closeStream(stream: StreamState): void {
    if (!this.streams.delete(stream)) return;
    for (const watcher of [...stream.watchers.values()]) this.removeWatcher(watcher);
    this.unsyncedStreams.delete(stream);
    stream.drop();
  }

  /**
   * Control responses (created, canceled, progress) are never dropped: every create gets its
   * answer, in order, refused ones too. So a burst of requests sent before the client reads
   * anything queues past the bound (maxPending + maxWatchersPerStream); that alone ends nothing.
   * Only a client that does not read is cut off: its backlog stayed over the bound for
   * stalledStreamMs without a single drain. A backlog CONTROL_BACKLOG_CEILING_FACTOR times the
   * bound is cut off regardless, so memory stays bounded. Cutting off closes the stream and the
   * sink's fail() (if any) ends the call. Not thrown: the adapter calls us from a transport event handler.
   */
  private controlRoom(stream: StreamState): boolean {
    const bound = this.maxPending + this.maxWatchersPerStream;
    if (stream.pending < bound) return true;
    const now = this.clock.now();
    stream.overBoundSinceMs ??= now;
    const notReading = now - stream.overBoundSinceMs >= this.stalledStreamMs;
    if (!notReading && stream.pending < bound * CONTROL_BACKLOG_CEILING_FACTOR) return true;
    this.closeStream(stream);
    stream.sink.fail?.(new GavelError('TooManyRequests', 'etcdserver: too many requests'));
    return false;
  }

  // ---- live delivery ----

  private interestedWatchers(revision: number, events: readonly MvccEvent[]): Map<Watcher, MvccEvent[]> {
    const matched = new Map<Watcher, MvccEvent[]>();
    const add = (watcher: Watcher, event: MvccEvent): void => {
      const list = matched.get(watcher);
      if (list === undefined) matched.set(watcher, [event]);
      else list.push(event);
    };
    for (const event of events) {
      assert(event.kv.modRevision === revision, `event at ${event.kv.modRevision} notified as revision ${revision}`);
      const exact = this.byKey.get(keyString(event.kv.key));
      if (exact !== undefined) for (const watcher of exact) add(watcher, event);
      for (const watcher of this.rangeWatchers) if (rangeContains(watcher.range, event.kv.key)) add(watcher, event);
    }
    return matched;
  }

  private deliverLive(watcher: Watcher, revision: number, matched: readonly MvccEvent[]): void {
    // A watcher can leave the synced set mid-loop (its stream broke while sending to another watcher).
    if (watcher.state !== 'synced' || revision < watcher.nextRevision) return;
    const events = selectEvents(matched, watcher);
    if (events.length === 0) {
      watcher.nextRevision = revision + 1;
      return;
    }
    if (!watcher.stream.hasRoom()) {
      // The transport is backed up and the queue is full: fall back to history from this revision.
      this.markUnsynced(watcher, revision);
      return;
    }
    watcher.nextRevision = revision + 1;
    this.sendEvents(watcher, revision, events);
  }

  private sendEvents(watcher: Watcher, headerRevision: number, events: readonly MvccEvent[]): void {
    const pieces = watcher.fragment ? fragmentEvents(events, this.maxResponseBytes) : [[...events]];
    pieces.forEach((piece, index) => {
      const fragment = index < pieces.length - 1;
      watcher.stream.push(fragment ? { watchId: watcher.id, headerRevision, fragment, events: piece } : { watchId: watcher.id, headerRevision, events: piece });
    });
    watcher.lastSentMs = this.clock.now();
  }

  // ---- catch-up from history ----

  private syncStream(stream: StreamState, budget: { events: number }): void {
    for (const watcher of [...stream.unsynced]) {
      this.catchUp(watcher, budget);
      if (!stream.hasRoom() || budget.events <= 0) return;
    }
  }

  /** Terminates: every syncWatcher call either changes the watcher's state or spends budget. */
  private catchUp(watcher: Watcher, budget: { events: number }): void {
    while (watcher.state === 'unsynced' && watcher.stream.hasRoom() && budget.events > 0) this.syncWatcher(watcher, budget);
  }

  /** One history read for one unsynced watcher: queue what fits, then maybe become synced. */
  private syncWatcher(watcher: Watcher, budget: { events: number }): void {
    const stream = watcher.stream;
    if (!stream.hasRoom()) return;
    if (watcher.nextRevision > this.revision) {
      this.markSynced(watcher);
      return;
    }
    const window = this.readHistory(watcher, Math.max(1, Math.min(this.syncBatchEvents, budget.events)));
    budget.events -= Math.max(1, window.read);
    if (window.compactRevision !== undefined) {
      this.cancelCompacted(watcher, window.compactRevision);
      return;
    }
    const batches = batchWholeRevisions(selectEvents(window.events, watcher), this.maxResponseBytes);
    for (const [index, batch] of batches.entries()) {
      if (!stream.hasRoom()) {
        watcher.nextRevision = batch.firstRevision;
        return;
      }
      // The last batch vouches for the whole window (also revisions without events for this watcher).
      const headerRevision = index === batches.length - 1 ? window.toRevision : batch.lastRevision;
      this.sendEvents(watcher, headerRevision, batch.events);
      if (watcher.state === 'removed') return; // the sink threw and the stream is gone
      watcher.nextRevision = batch.lastRevision + 1;
    }
    watcher.nextRevision = window.toRevision + 1;
    if (window.toRevision >= this.revision) this.markSynced(watcher);
  }

  /**
   * The watcher's events from nextRevision, whole revisions only, up to toRevision (inclusive);
   * or the compact revision if that history is gone.
   */
  private readHistory(watcher: Watcher, limit: number): { events: MvccEvent[]; toRevision: number; read: number; compactRevision?: number } {
    const from = watcher.nextRevision;
    const compacted = this.source.compactedRevision;
    if (from < compacted) return { events: [], toRevision: from - 1, read: 0, compactRevision: compacted };
    const range = toKeyRange(watcher.range);
    try {
      const read = this.source.eventsInRange(from, this.revision, range, limit);
      checkHistory(read, from, this.revision);
      const last = read[read.length - 1];
      if (last === undefined || read.length < limit) return { events: read, toRevision: this.revision, read: read.length };
      // The read may have stopped inside revision `last`: keep only whole revisions.
      const lastRevision = last.kv.modRevision;
      const first = read[0];
      if (first !== undefined && first.kv.modRevision < lastRevision) {
        return { events: read.filter((event) => event.kv.modRevision < lastRevision), toRevision: lastRevision - 1, read: read.length };
      }
      // One revision filled the whole batch: read that revision alone, unlimited (a revision is one bounded txn).
      const whole = this.source.eventsInRange(lastRevision, lastRevision, range);
      checkHistory(whole, lastRevision, lastRevision);
      return { events: whole, toRevision: lastRevision, read: read.length + whole.length };
    } catch (error) {
      if (!isGavelError(error, 'Compacted')) throw error;
      return { events: [], toRevision: from - 1, read: 0, compactRevision: this.source.compactedRevision };
    }
  }

  /**
   * etcd: a watcher whose history was compacted away is canceled with the compact revision (no
   * reason text), and its header has no revision (etcd 3.4 sends the event batch's revision,
   * which a compaction notice does not have).
   */
  private cancelCompacted(watcher: Watcher, compactRevision: number): void {
    const stream = watcher.stream;
    this.removeWatcher(watcher);
    stream.push({ watchId: watcher.id, headerRevision: 0, canceled: true, compactRevision, events: [] });
    this.afterUnsyncedChange(stream);
  }

  // ---- progress ----

  private sendProgressNotifications(): void {
    const now = this.clock.now();
    for (const watcher of this.progressWatchers) {
      if (watcher.state !== 'synced' || now - watcher.lastSentMs < this.progressIntervalMs) continue;
      // Progress notifications are droppable: a backed-up stream simply gets one later.
      if (!watcher.stream.hasRoom()) continue;
      watcher.stream.push({ watchId: watcher.id, headerRevision: this.revision, events: [] });
      watcher.lastSentMs = now;
    }
  }

  /** Sends a deferred stream-wide progress response once no watcher of the stream lags. */
  private afterUnsyncedChange(stream: StreamState): void {
    if (stream.unsynced.size > 0) return;
    this.unsyncedStreams.delete(stream);
    if (!stream.progressDeferred || stream.closed) return;
    stream.progressDeferred = false;
    stream.push({ watchId: INVALID_WATCH_ID, headerRevision: this.revision, events: [] });
  }

  // ---- watcher sets ----

  private markSynced(watcher: Watcher): void {
    assert(watcher.state === 'unsynced', `markSynced on a ${watcher.state} watcher`);
    watcher.state = 'synced';
    watcher.stream.unsynced.delete(watcher);
    this.index(watcher);
    this.afterUnsyncedChange(watcher.stream);
  }

  private markUnsynced(watcher: Watcher, nextRevision: number): void {
    assert(watcher.state !== 'removed', 'markUnsynced on a removed watcher');
    if (watcher.state === 'synced') this.unindex(watcher);
    watcher.state = 'unsynced';
    watcher.nextRevision = nextRevision;
    watcher.stream.unsynced.add(watcher);
    this.unsyncedStreams.add(watcher.stream);
  }

  /** Forgets the watcher everywhere; the caller sends whatever response goes with it. */
  private removeWatcher(watcher: Watcher): void {
    if (watcher.state === 'synced') this.unindex(watcher);
    watcher.state = 'removed';
    watcher.stream.unsynced.delete(watcher);
    watcher.stream.watchers.delete(watcher.id);
    this.progressWatchers.delete(watcher);
  }

  private index(watcher: Watcher): void {
    if (watcher.range.kind !== 'single') {
      this.rangeWatchers.add(watcher);
      return;
    }
    const set = this.byKey.get(watcher.range.keyString);
    if (set === undefined) this.byKey.set(watcher.range.keyString, new Set([watcher]));
    else set.add(watcher);
  }

  private unindex(watcher: Watcher): void {
    if (watcher.range.kind !== 'single') {
      this.rangeWatchers.delete(watcher);
      return;
    }
    const set = this.byKey.get(watcher.range.keyString);
    set?.delete(watcher);
    if (set?.size === 0) this.byKey.delete(watcher.range.keyString);
  }
}

/** Check the source's contract after reading: in range, in revision order. */
function checkHistory(events: readonly MvccEvent[], from: number, to: number): void {
  let previous = from;
  for (const event of events) {
    const revision = event.kv.modRevision;
    assert(revision >= previous && revision <= to, `history event at revision ${revision} outside [${previous}, ${to}]`);
    previous = revision;
  }
}

function positiveInteger(value: number, name: string): number {
  assert(Number.isSafeInteger(value) && value > 0, `WatchHub option ${name} must be a positive integer, got ${value}`);
  return value;
}

function positive(value: number, name: string): number {
  assert(Number.isFinite(value) && value > 0, `WatchHub option ${name} must be > 0, got ${value}`);
  return value;
}

export type { HistorySource, WatchCreate, WatchFilter, WatchHubOptions, WatchResponse, WatchSink, WatchStream } from './types.js';
