/**
 * Watch as an AsyncIterable of event batches. The watcher remembers the next revision it has
 * not seen; when its stream breaks it re-creates the watch from that revision on another
 * member, so a consumer sees every event exactly once, in revision order, across reconnects.
 * If that revision has been compacted meanwhile, iteration ends with a CompactedError.
 */
import type { WireKeyValue } from '../server/api/wire.js';
import type { ChannelStream } from './channel.js';
import { ClosedError, CompactedError, fromStatus, isTransient, toClientError, type GavelClientError } from './errors.js';
import { headerFromWire, keyValueFromWire, rangeEndFor, toBuffer, type Bytes, type KeyValue } from './kv.js';
import { backoffMs, sleep, type Rpc } from './rpc.js';

export interface WatchOptions {
  readonly prefix?: boolean;
  readonly rangeEnd?: Bytes;
  /** First revision to report; default: changes after the watch is created. */
  readonly startRevision?: bigint;
  readonly prevKv?: boolean;
  readonly noPut?: boolean;
  readonly noDelete?: boolean;
  /** Ask the server for periodic empty batches that advance `revision`. */
  readonly progressNotify?: boolean;
  /** Stops the watch; the iterator then ends quietly. */
  readonly signal?: AbortSignal;
}

export interface WatchEvent {
  readonly type: 'put' | 'delete';
  readonly kv: KeyValue;
  readonly prevKv: KeyValue | undefined;
}

export interface WatchBatch {
  /** The store revision this batch brings the watcher up to. */
  readonly revision: bigint;
  readonly events: WatchEvent[];
}

interface WireWatchResponseIn {
  header?: { revision?: string };
  created?: boolean;
  canceled?: boolean;
  compact_revision?: string;
  cancel_reason?: string;
  events?: { type?: number; kv?: WireKeyValue | null; prev_kv?: WireKeyValue | null }[];
}

/** Batches that a slow consumer may leave unread before the stream is paused. */
const QUEUE_HIGH_WATER = 256;
/** The same in key and value bytes: a few large values must not hold hundreds of MB. */
const QUEUE_HIGH_WATER_BYTES = 1024 * 1024;

export class Watcher implements AsyncIterable<WatchBatch> {
  private readonly queue: WatchBatch[] = [];
  /** Key and value bytes of the queued batches. */
  private queuedBytes = 0;
  private failure: GavelClientError | undefined;
  private done = false;
  private wake: (() => void) | undefined;
  private stream: ChannelStream | undefined;
  private readonly controller = new AbortController();
  /** The next revision the consumer has not been given. 0n until the first watch is created. */
  private nextRevision: bigint;
  private readonly created: Promise<void>;
  private resolveCreated!: () => void;

  constructor(
    private readonly rpc: Rpc,
    private readonly key: Bytes,
    private readonly options: WatchOptions,
  ) {
    this.nextRevision = options.startRevision ?? 0n;
    this.created = new Promise((resolve) => (this.resolveCreated = resolve));
    options.signal?.addEventListener('abort', () => this.close(), { once: true });
    if (options.signal?.aborted) this.close();
    else void this.run();
  }

  /** Resolves once the server has registered the watch (events after this point are seen). */
  ready(): Promise<void> {
    return this.created;
  }

  /** The revision the watcher has reached: every change up to it has been delivered or queued. */
  get revision(): bigint {
    return this.nextRevision - 1n;
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    // Half-close rather than cancel: the server then ends the stream cleanly. A cancel is an
    // HTTP/2 RST_STREAM, and servers (nghttp2's rapid-reset guard) drop connections that send
    // many of them.
    const stream = this.stream;
    stream?.end();
    setTimeout(() => stream?.cancel(), 5_000).unref();
    this.controller.abort();
    this.resolveCreated();
    this.wake?.();
  }

  private async run(): Promise<void> {
    for (let attempt = 0; !this.done; attempt++) {
      try {
        await this.rpc.authenticate(this.controller.signal);
      } catch (error) {
        if (this.done) return;
        return this.fail(toClientError(error));
      }
      const outcome = await this.runStream();
      if (this.done) return;
      if (outcome === 'healthy') attempt = 0;
      else if (outcome !== 'retry') return this.fail(outcome);
      this.rpc.channel.failover();
      try {
        await sleep(backoffMs(attempt, this.rpc.options), this.controller.signal);
      } catch {
        return;
      }
    }
  }

  /** One stream's life. 'healthy' if it delivered anything before breaking. */
  private runStream(): Promise<'retry' | 'healthy' | GavelClientError> {
    return new Promise((resolve) => {
      let delivered = false;
      let stream: ChannelStream;
      try {
        stream = this.rpc.channel.stream('etcdserverpb.Watch', 'Watch', {});
      } catch (error) {
        resolve(toClientError(error));
        return;
      }
      this.stream = stream;
      stream.on('data', (r: WireWatchResponseIn) => {
        const result = this.onResponse(r);
        if (result === 'ok') delivered = true;
        else {
          stream.cancel();
          resolve(result);
        }
      });
      stream.on('error', (status: { code: number; details: string }) => {
        const error = fromStatus(status);
        resolve(this.rpc.tokenRefused(error) || isTransient(error) || error.code === 'Aborted' || error.code === 'Internal' ? (delivered ? 'healthy' : 'retry') : error);
      });
      stream.on('end', () => resolve(delivered ? 'healthy' : 'retry'));
      const filters = [...(this.options.noPut === true ? [0] : []), ...(this.options.noDelete === true ? [1] : [])];
      stream.write({
        create_request: {
          key: toBuffer(this.key),
          range_end: rangeEndFor(this.key, this.options),
          start_revision: String(this.nextRevision),
          progress_notify: this.options.progressNotify === true,
          filters,
          prev_kv: this.options.prevKv === true,
          watch_id: '0',
          fragment: false,
        },
      });
    });
  }

  private onResponse(r: WireWatchResponseIn): 'ok' | GavelClientError {
    const headerRevision = headerFromWire(r.header).revision;
    if (r.canceled === true) {
      const compactRevision = BigInt(r.compact_revision ?? '0');
      if (compactRevision > 0n) {
        const error = new CompactedError(`watch from revision ${this.nextRevision} failed: compacted up to ${compactRevision}`);
        error.compactRevision = compactRevision;
        return error;
      }
      return toClientError({ code: 2, details: r.cancel_reason ?? 'watch canceled by the server' });
    }
    if (r.created === true) {
      // A watch "from now" resumes, after a reconnect, right after the revision it was created at.
      if (this.nextRevision === 0n) this.nextRevision = headerRevision + 1n;
      this.resolveCreated();
      return 'ok';
    }
    const events: WatchEvent[] = (r.events ?? []).map((e) => ({
      type: e.type === 1 ? 'delete' : 'put',
      kv: keyValueFromWire(e.kv as WireKeyValue),
      prevKv: e.prev_kv ? keyValueFromWire(e.prev_kv) : undefined,
    }));
    const last = events.at(-1);
    // Events already delivered (a server may repeat the tail after a reconnect) are dropped.
    const fresh = events.filter((e) => e.kv.modRevision >= this.nextRevision);
    const reached = last === undefined ? headerRevision : last.kv.modRevision;
    if (reached + 1n > this.nextRevision) this.nextRevision = reached + 1n;
    if (fresh.length > 0 || events.length === 0) this.push({ revision: reached, events: fresh });
    return 'ok';
  }

  private push(batch: WatchBatch): void {
    this.queue.push(batch);
    this.queuedBytes += batchBytes(batch);
    if (this.queue.length >= QUEUE_HIGH_WATER || this.queuedBytes >= QUEUE_HIGH_WATER_BYTES) this.stream?.pause();
    this.wake?.();
  }

  private fail(error: GavelClientError): void {
    this.failure = error;
    this.done = true;
    this.resolveCreated();
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WatchBatch> {
    try {
      for (;;) {
        const batch = this.queue.shift();
        if (batch !== undefined) {
          this.queuedBytes -= batchBytes(batch);
          if (this.queue.length < QUEUE_HIGH_WATER / 2 && this.queuedBytes < QUEUE_HIGH_WATER_BYTES / 2) this.stream?.resume();
          yield batch;
          continue;
        }
        if (this.failure !== undefined) throw this.failure;
        if (this.done) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
    } finally {
      // A consumer that stops iterating (break, throw) ends the watch.
      if (this.failure === undefined) this.close();
    }
  }

  /** Waits for the first event matching `predicate`; rejects if the watch fails or is closed first. */
  async until(predicate: (event: WatchEvent) => boolean): Promise<WatchEvent> {
    for await (const batch of this) {
      const match = batch.events.find(predicate);
      if (match !== undefined) return match;
    }
    throw new ClosedError('the watch was closed before the awaited event');
  }
}

function batchBytes(batch: WatchBatch): number {
  let total = 0;
  for (const event of batch.events) total += event.kv.key.length + event.kv.value.length + (event.prevKv === undefined ? 0 : event.prevKv.key.length + event.prevKv.value.length);
  return total;
}
