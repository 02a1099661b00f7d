/**
 * Deletes from level the versions a compaction dropped from the key index, in bounded batches
 * with a pause between them (etcd's scheduleCompaction: 1000 keys a batch, 10 ms apart), so a
 * compaction of millions of revisions never stalls the member or builds one huge level batch.
 *
 * It scans the 'kv' space from the start up to the compacted revision and deletes every record
 * the store no longer holds (MvccStore.holds). That is safe at any moment: the index decides what
 * reads can see, and a record it does not hold is never read again. Nothing needs the job to
 * finish — a crash leaves garbage that the restarted store ignores (StoreBuilder) and this job
 * deletes after the restart — so progress is recorded only at the end (finishedCompactRevision).
 */
import type { Logger } from '../log.js';
import { decodeRecordHeader, decodeRevisionKey, encodeRevisionKey } from './codec.js';
import { changesToBatch, type BackendOp } from './backend.js';
import type { MvccStore } from './store.js';
import { SCAN_OPTIONS } from '../storage/layout.js';

export interface CompactorEnvironment {
  /** The 'kv' space: a snapshot iterator over a key range. */
  readonly kv: {
    iterator(options: { lt: Uint8Array; highWaterMarkBytes: number }): { nextv(size: number): Promise<Array<[Uint8Array, Uint8Array]>>; close(): Promise<void> };
  };
  /** One unsynced level batch. */
  write(ops: readonly BackendOp[]): Promise<void>;
  /** The store of the moment (a snapshot install replaces it; the job is stopped first). */
  store(): MvccStore;
  /** Has level rewrite the deleted range [start, end) of the 'kv' space, giving its disk space back. */
  reclaim?(start: Uint8Array, end: Uint8Array): Promise<void>;
  readonly logger: Logger;
  /** Records per batch (default 1000) and the pause between batches (default 10 ms). */
  readonly batchRecords?: number;
  readonly pauseMs?: number;
}

const DEFAULT_BATCH_RECORDS = 1000;
const DEFAULT_PAUSE_MS = 10;

export class Compactor {
  private target = 0;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Callers of whenFinished, by the revision they wait for. */
  private waiters: { revision: number; resolve: () => void }[] = [];
  /** Records deleted over the member's life (metrics, tests). */
  deletedRecords = 0;

  constructor(private readonly env: CompactorEnvironment) {}

  /** Deletes what compactions up to revision dropped; a later call extends the job. */
  schedule(revision: number): void {
    if (this.stopped || revision <= this.target) return;
    this.target = revision;
    this.running ??= this.run().finally(() => (this.running = undefined));
  }

  /**
   * Resolves once every version compaction at revision dropped is deleted from level (etcd's
   * physical compaction), or when the job stops (a snapshot replaced the state, shutdown).
   */
  whenFinished(revision: number): Promise<void> {
    if (this.env.store().finishedCompactRevision >= revision || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ revision, resolve }));
  }

  /** Resolves once no job is running (defragmentation waits for it; tests and benchmarks too). */
  async idle(): Promise<void> {
    while (this.running !== undefined) await this.running;
  }

  /** Stops after the batch under way (before a snapshot install, at shutdown). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
    this.release(Infinity);
  }

  /** Takes work again after stop() (a snapshot was installed: the new store may need a job). */
  resume(): void {
    this.stopped = false;
    this.target = 0;
    const store = this.env.store();
    if (store.finishedCompactRevision < store.compactedRevision) this.schedule(store.compactedRevision);
  }

  private async run(): Promise<void> {
    let done = 0;
    while (!this.stopped && done < this.target) {
      const revision = this.target;
      const started = performance.now();
      const result = await this.compactThrough(revision);
      if (result === undefined) return; // stopped
      done = revision;
      const finished = changesToBatch(this.env.store().compactionFinished(revision, result.freedBytes));
      await this.env.write(finished);
      if (result.deleted > 0) await this.env.reclaim?.(encodeRevisionKey({ main: 0, sub: 0 }, false), encodeRevisionKey({ main: revision + 1, sub: 0 }, false));
      this.env.logger.info('finished compaction', { revision, deletedRecords: result.deleted, tookMs: Math.round(performance.now() - started) });
      this.release(revision);
    }
  }

  private release(revision: number): void {
    const due = this.waiters.filter((waiter) => waiter.revision <= revision);
    this.waiters = this.waiters.filter((waiter) => waiter.revision > revision);
    for (const waiter of due) waiter.resolve();
  }

  /** One pass over the records up to revision; undefined when stopped part-way. */
  private async compactThrough(revision: number): Promise<{ deleted: number; freedBytes: number } | undefined> {
    const batchRecords = this.env.batchRecords ?? DEFAULT_BATCH_RECORDS;
    const pauseMs = this.env.pauseMs ?? DEFAULT_PAUSE_MS;
    const iterator = this.env.kv.iterator({ lt: encodeRevisionKey({ main: revision + 1, sub: 0 }, false), ...SCAN_OPTIONS });
    let deleted = 0;
    let freedBytes = 0;
    try {
      for (;;) {
        if (this.stopped) return undefined;
        const entries = await iterator.nextv(batchRecords);
        if (entries.length === 0) return { deleted, freedBytes };
        const store = this.env.store();
        const ops: BackendOp[] = [];
        for (const [key, value] of entries) {
          const { revision: version, tombstone } = decodeRevisionKey(key);
          if (store.holds(version, tombstone, decodeRecordHeader(value).key)) continue;
          ops.push({ type: 'del', space: 'kv', key });
          freedBytes += key.byteLength + value.byteLength;
        }
        if (ops.length > 0) await this.env.write(ops);
        deleted += ops.length;
        this.deletedRecords += ops.length;
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    } finally {
      await iterator.close();
    }
  }
}
