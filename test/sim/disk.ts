/**
 * SimDisk: one member's disk. Writes land in an ordered, unsynced buffer; sync() makes the
 * whole buffer durable. A crash keeps a random prefix of the unsynced writes (the OS may have
 * flushed some, always in order) and loses the rest. A restarted member rebuilds its Raft
 * storage and state machine from the durable state only.
 *
 * The state machine is persisted like the real server does it: each applied batch is a write
 * (with its applied index) in the same ordered stream as the Raft log and hard state, so the
 * durable applied index never runs ahead of the durable log.
 */
import { assert, assertNever, type ConfState, type Entry, type HardState, type Snapshot } from '../../server/raft/index.js';
import { KvStateMachine } from './kv.js';
import type { Prng } from './prng.js';

export type DiskWrite =
  | { readonly type: 'entries'; readonly entries: readonly Entry[] }
  | { readonly type: 'hardState'; readonly hardState: HardState }
  /** A snapshot from the leader: replaces the whole log and the state machine. */
  | { readonly type: 'installSnapshot'; readonly snapshot: Snapshot }
  /** A local snapshot of the applied state, and log compaction up to compactIndex. */
  | { readonly type: 'compact'; readonly snapshot: Snapshot; readonly compactIndex: number }
  /** Committed entries applied to the state machine (confState for conf changes). */
  | { readonly type: 'apply'; readonly applied: readonly { readonly entry: Entry; readonly confState?: ConfState }[] };

export interface DurableState {
  readonly hardState: HardState;
  /** The newest durable snapshot (the bootstrap one for initial members), if any. */
  readonly snapshot: Snapshot | undefined;
  /** Durable log entries after the compaction point, contiguous. */
  readonly entries: readonly Entry[];
  readonly machine: KvStateMachine;
}

export class SimDisk {
  private hardState: HardState;
  private snapshot: Snapshot | undefined;
  private entries: Entry[];
  private machine: KvStateMachine;
  private unsynced: DiskWrite[] = [];
  /** Counters for the run summary. */
  syncs = 0;
  lostWrites = 0;

  constructor(initial: DurableState) {
    this.hardState = initial.hardState;
    this.snapshot = initial.snapshot;
    this.entries = [...initial.entries];
    this.machine = initial.machine.clone();
  }

  write(write: DiskWrite): void {
    this.unsynced.push(write);
  }

  /** fsync: everything written so far is durable. */
  sync(): void {
    for (const write of this.unsynced) this.makeDurable(write);
    this.unsynced = [];
    this.syncs++;
  }

  /** Power loss: a random prefix of the unsynced writes made it to disk, the rest is gone. */
  crash(random: Prng): void {
    const kept = random.int(this.unsynced.length + 1);
    for (let i = 0; i < kept; i++) this.makeDurable(this.unsynced[i]!);
    this.lostWrites += this.unsynced.length - kept;
    this.unsynced = [];
  }

  /** What a restarted member finds (copies: the new incarnation must not share live objects). */
  recover(): DurableState {
    assert(this.unsynced.length === 0, 'sim disk: recover() with unsynced writes; crash() first');
    return { hardState: this.hardState, snapshot: this.snapshot, entries: [...this.entries], machine: this.machine.clone() };
  }

  private makeDurable(write: DiskWrite): void {
    switch (write.type) {
      case 'entries':
        this.appendEntries(write.entries);
        return;
      case 'hardState':
        this.hardState = write.hardState;
        return;
      case 'installSnapshot':
        this.snapshot = write.snapshot;
        this.entries = [];
        this.machine = KvStateMachine.deserialize(write.snapshot.data);
        return;
      case 'compact':
        if (this.snapshot === undefined || write.snapshot.metadata.index > this.snapshot.metadata.index) this.snapshot = write.snapshot;
        this.entries = this.entries.filter((entry) => entry.index > write.compactIndex);
        return;
      case 'apply':
        for (const { entry, confState } of write.applied) {
          if (entry.index <= this.machine.applied) continue; // already in the snapshot
          this.machine.applyEntry(entry, confState);
        }
        return;
      default:
        assertNever(write, 'disk write');
    }
  }

  private appendEntries(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const snapshotIndex = this.snapshot?.metadata.index ?? 0;
    const usable = entries.filter((entry) => entry.index > snapshotIndex);
    if (usable.length === 0) return;
    const first = usable[0]!.index;
    const base = this.entries[0]?.index ?? snapshotIndex + 1;
    const lastIndex = this.entries.length === 0 ? snapshotIndex : this.entries[this.entries.length - 1]!.index;
    assert(first <= lastIndex + 1, `sim disk: gap in the log (last ${lastIndex}, appending ${first})`);
    this.entries = this.entries.slice(0, Math.max(0, first - base)).concat(usable);
  }

  /** The durable log's last index (for checks). */
  lastIndex(): number {
    const last = this.entries[this.entries.length - 1];
    return last?.index ?? this.snapshot?.metadata.index ?? 0;
  }
}
