/**
 * Writes a long MVCC history into a stopped gavel member's data dir, through the member's own
 * state machine: each revision is a put request applied by StateMachine.apply (the real apply
 * path), its level operations written as the node writes them, and the Raft log ends in a
 * snapshot at the last index, as after a local snapshot and log compaction. A restarted member
 * then serves that history — 300,000 revisions in seconds, where putting them over gRPC would
 * take minutes. Used by the compaction regression test and the benchmarks.
 *
 * With `compaction`, the history is compacted along the way as a long-running member's would be:
 * every `everyRevisions` revisions a compaction entry to (current - retainRevisions) goes through
 * the same apply path, and the member's own Compactor deletes what it dropped from level, so
 * the data dir ends as a member's under auto-compaction would (ten million revisions leave only
 * the retained window in the index).
 */
import { randomBytes } from 'node:crypto';
import { encodeRequest } from '../../server/apply/request.js';
import { loadMachineState } from '../../server/apply/load.js';
import { StateMachine } from '../../server/apply/state-machine.js';
import { confStateOf } from '../../server/cluster/bootstrap.js';
import { systemClock } from '../../server/clock.js';
import { silentLogger } from '../../server/log.js';
import { Compactor } from '../../server/mvcc/compactor.js';
import { metaOps, type BatchOp, Storage } from '../../server/storage/layout.js';
import { Wal } from '../../server/storage/wal.js';
import { walDirectory } from '../../server/storage/raft-wal.js';

export interface HistoryOptions {
  readonly revisions: number;
  /** Keys key-000000 ... written round-robin. */
  readonly keys: number;
  readonly valueBytes: number;
  /** Entries per level batch; default 1000. */
  readonly batch?: number;
  /** Compact along the way, keeping the last retainRevisions revisions (see the header). */
  readonly compaction?: { readonly everyRevisions: number; readonly retainRevisions: number };
  /** Called after each level batch with the revisions written so far. */
  readonly onProgress?: (done: number) => void;
}

export interface History {
  /** The store's revision after the last put. */
  readonly lastRevision: number;
  readonly firstRevision: number;
  /** The store's compacted revision at the end (0 without `compaction`). */
  readonly compactedRevision: number;
  /** Compaction entries applied. */
  readonly compactions: number;
}

export function historyKey(index: number): string {
  return `key-${String(index).padStart(6, '0')}`;
}

export async function appendHistory(dataDir: string, options: HistoryOptions): Promise<History> {
  const storage = await Storage.open(dataDir);
  const { wal, state: raft } = await Wal.open(walDirectory(dataDir));
  try {
    const machine = new StateMachine(await loadMachineState(storage, { minLeaseTtlSeconds: 1, clock: systemClock }));
    if (raft.hardState === undefined) throw new Error(`${dataDir} holds no member (start and stop one there first)`);
    const lastLogIndex = raft.entries.at(-1)?.index ?? raft.snapshot?.metadata.index ?? 0;
    if (raft.hardState.commit !== lastLogIndex) {
      throw new Error(`stop the member cleanly first: commit ${raft.hardState.commit}, log ends at ${lastLogIndex}`);
    }
    // A member may stop between persisting a commit and applying its entries: apply them first,
    // as its next start would.
    for (const entry of raft.entries) {
      if (entry.index <= machine.appliedIndex) continue;
      if (entry.type !== 'normal') throw new Error(`entry ${entry.index} is a membership change: start and stop the member once more`);
      const applied = machine.apply(entry.index, entry.data);
      await storage.write([...(applied?.ops ?? []), metaOps.appliedIndex(entry.index)], false);
      machine.markDurable();
    }
    // The member's own background deleter, without its pause between batches (nobody is waiting to be served).
    const compactor = new Compactor({ kv: storage.space('kv'), write: (ops) => storage.write(ops, false), store: () => machine.store, reclaim: (start, end) => storage.compactSpaceRange('kv', start, end), logger: silentLogger, pauseMs: 0 });
    machine.onCompaction((revision) => compactor.schedule(revision));
    const firstRevision = machine.store.currentRevision + 1;
    const { index, compactions } = await appendEntries(storage, machine, lastLogIndex, options);
    await compactor.idle();
    await compactor.stop();
    // The log ends where the state does: a snapshot at the last index, as a local snapshot leaves it.
    const term = raft.hardState.term;
    const metadata = { index, term, confState: confStateOf(machine.membership) };
    await storage.write([metaOps.appliedIndex(index)], true);
    await wal.saveSnapshot({ metadata }, { ...raft.hardState, commit: index });
    await wal.releaseTo(index);
    return { firstRevision, lastRevision: machine.store.currentRevision, compactedRevision: machine.store.compactedRevision, compactions };
  } finally {
    await wal.close();
    await storage.close();
  }
}

/** Applies the puts (and compactions) as log entries after lastLogIndex, one level batch per `batch` entries. */
async function appendEntries(storage: Storage, machine: StateMachine, lastLogIndex: number, options: HistoryOptions): Promise<{ index: number; compactions: number }> {
  // Values that do not compress, so level's size on disk tracks the history held.
  const noise = randomBytes(1 << 20);
  const batch = options.batch ?? 1000;
  let index = lastLogIndex;
  let compactions = 0;
  let sinceCompaction = 0;
  for (let done = 0; done < options.revisions; ) {
    const ops: BatchOp[] = [];
    for (const end = Math.min(options.revisions, done + batch); done < end; done++) {
      index++;
      const key = Buffer.from(historyKey(done % options.keys));
      const start = (done * 7919) % (noise.length - options.valueBytes);
      const value = noise.subarray(start, start + options.valueBytes);
      const data = encodeRequest(BigInt(index), { put: { key, value, lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } });
      const applied = machine.apply(index, data);
      if (applied === undefined || applied.result.type !== 'put') throw new Error(`entry ${index} did not apply as a put`);
      for (const op of applied.ops) ops.push(op);
      sinceCompaction++;
    }
    const compaction = options.compaction;
    const target = machine.store.currentRevision - (compaction?.retainRevisions ?? 0);
    if (compaction !== undefined && sinceCompaction >= compaction.everyRevisions && target > machine.store.compactedRevision) {
      index++;
      const applied = machine.apply(index, encodeRequest(BigInt(index), { compaction: { revision: String(target), physical: false } }));
      if (applied === undefined || applied.result.type !== 'compaction') throw new Error(`entry ${index} did not apply as a compaction`);
      for (const op of applied.ops) ops.push(op);
      compactions++;
      sinceCompaction = 0;
    }
    ops.push(metaOps.appliedIndex(machine.appliedIndex));
    await storage.write(ops, false);
    machine.markDurable();
    options.onProgress?.(done);
  }
  return { index, compactions };
}
