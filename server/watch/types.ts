/**
 * The watch hub's contracts: what it reads history from, what it is asked, what it answers.
 * Responses are domain shapes; the gRPC adapter maps them to etcd's WatchResponse and fills the
 * rest of the header.
 */
import type { Bytes, KeyRange, MvccEvent } from '../mvcc/types.js';
import type { Clock } from '../clock.js';
import type { GavelError } from '../errors.js';

export interface HistorySource {
  readonly currentRevision: number;
  readonly compactedRevision: number;
  /**
   * Every event with fromRevision <= revision <= toRevision in the range, in order, prevKv filled;
   * throws GavelError('Compacted') if fromRevision < compactedRevision (etcd lets a watcher start AT the compacted revision). With maxEvents the
   * answer may stop early (possibly inside a revision; the hub copes with that).
   */
  eventsInRange(fromRevision: number, toRevision: number, range: KeyRange, maxEvents?: number): MvccEvent[];
}

export interface WatchResponse {
  /** -1 for a stream-wide progress response and for a refused create (etcd's InvalidWatchID). */
  readonly watchId: number;
  readonly headerRevision: number;
  readonly created?: boolean;
  readonly canceled?: boolean;
  readonly compactRevision?: number;
  readonly cancelReason?: string;
  readonly fragment?: boolean;
  /** prevKv is stripped unless the watcher asked for it. */
  readonly events: MvccEvent[];
}

export type WatchFilter = 'noPut' | 'noDelete';

export interface WatchCreate {
  readonly key: Bytes;
  readonly rangeEnd: Bytes;
  /** 0 = from currentRevision + 1. */
  readonly startRevision: number;
  readonly progressNotify: boolean;
  readonly filters: WatchFilter[];
  readonly prevKv: boolean;
  /** 0 = pick the next free id on this stream. */
  readonly watchId: number;
  readonly fragment: boolean;
  /** Refuse this watch with this cancel reason (the caller may not read the range: server/api/watch.ts). */
  readonly refusal?: string;
}

export interface WatchSink {
  /**
   * Hands one response to the transport, which takes it. false = the transport is backed up: the
   * hub sends nothing more until WatchStream.drained(). Must not call back into the hub.
   */
  send(response: WatchResponse): boolean;
  /** Optional: the hub gave up on this stream (a client that sends requests but never reads); end the call with this error. */
  fail?(error: GavelError): void;
  /** Optional: the estimated bytes of this stream's responses queued in the hub, whenever that changes (for accounting). */
  queued?(bytes: number): void;
}

export interface WatchHubOptions {
  readonly clock: Clock;
  /** Responses above this are split when the watcher asked for fragments (etcd: max request bytes). */
  readonly maxResponseBytes: number;
  /** Progress notifications for progress_notify watchers after this long without events (etcd: 10 min). */
  readonly progressIntervalMs: number;
  /** Responses queued while the sink is backed up before the stream's watchers fall back to history (etcd's chanBufLen: 128). */
  readonly maxPendingResponsesPerStream?: number;
  /** The same bound in estimated bytes (default 256 KiB): 128 large responses would be hundreds of MB. */
  readonly maxPendingBytesPerStream?: number;
  readonly maxWatchersPerStream?: number;
  /** Events read from history per catch-up read (etcd reads up to 1000 revisions per sync). */
  readonly syncBatchEvents?: number;
  /** Events read from history per tick()/drained() call over all watchers, so catch-up never stalls the apply loop. */
  readonly syncBudgetEvents?: number;
  /**
   * How long (hub clock) a stream's control backlog may stay over its bound without the client
   * draining any of it before the stream is cut off as a client that does not read (default 30 s).
   */
  readonly stalledStreamMs?: number;
}

export interface WatchStream {
  create(request: WatchCreate): void;
  /** Returns false (and sends nothing, as etcd) if no such watcher. */
  cancel(watchId: number): boolean;
  requestProgress(): void;
  /** The transport can take more: flush the queue, then catch up unsynced watchers. */
  drained(): void;
  close(): void;
  readonly watcherCount: number;
}
