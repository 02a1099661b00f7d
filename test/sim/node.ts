/**
 * SimNode: one member's shell in the simulator. It drives the real RawNode the way the real
 * shell (server/node/raft-node.ts) does, with simulated time, disk and network:
 *
 *   tick → for each Ready: send `messages` → persist snapshot/entries/hardState (wait for the
 *   fsync when mustSync) → mirror into MemoryStorage → send `messagesAfterPersist` → apply the
 *   snapshot and committed entries (conf changes through applyConfChange) → serve ReadIndex
 *   reads whose index is applied → advance() → maybe snapshot and compact.
 *
 * A crash drops everything in memory; start() rebuilds the member from its SimDisk.
 */
import {
  MemoryStorage, RawNode, decodeConfChange, NONE,
  type ConfState, type Entry, type Message, type NodeId, type ProposeFailure, type RaftFaults, type Ready,
} from '../../server/raft/index.js';
import type { DurableState } from './disk.js';
import { SimDisk } from './disk.js';
import type { EventQueue } from './event-queue.js';
import { KvStateMachine, encodeRequest, type KvRequest, type KvResult } from './kv.js';
import type { SafetyMonitor } from './monitor.js';
import type { Prng } from './prng.js';

/** What a client asks a member: a KV request, or a linearizable read through ReadIndex. */
export type NodeRequest =
  | { readonly kind: 'propose'; readonly request: KvRequest }
  | { readonly kind: 'readIndex'; readonly key: string };

export type NodeResponse =
  | { readonly ok: true; readonly result: KvResult }
  | { readonly ok: false; readonly reason: ProposeFailure | 'stopped'; readonly leader: NodeId };

export type Reply = (response: NodeResponse) => void;

export interface NodeEnv {
  readonly queue: EventQueue;
  readonly monitor: SafetyMonitor;
  readonly send: (messages: readonly Message[]) => void;
  readonly trace: ((line: string) => void) | undefined;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly maxSizePerMsg: number;
  readonly faults: RaftFaults | undefined;
  /** Applied entries between local snapshots. */
  readonly snapshotEveryEntries: number;
  /** Entries kept in the log below a local snapshot, for slightly lagging followers. */
  readonly keepEntries: number;
  /** Called when this member, as leader, hands out newly committed entries. */
  readonly onLeaderCommit: (node: SimNode) => void;
  /** Called when a synced write starts (it completes after `units`). */
  readonly onFsync: (node: SimNode, ready: Ready, units: number) => void;
  /** Called when this member becomes leader. */
  readonly onLeader: (node: SimNode) => void;
  /** Called when this member applies a conf change. */
  readonly onConfChange: (node: SimNode, confState: ConfState) => void;
}

interface PendingRead {
  readonly key: string;
  readonly reply: Reply;
  index: number | undefined;
}

export class SimNode {
  disk: SimDisk;
  alive = false;
  /** Bumped at every start and crash: callbacks of an earlier incarnation are ignored. */
  incarnation = 0;
  /** Time units between two ticks of this member's clock (clock skew changes it). */
  tickUnits: number;
  /** Set once the member's removal is committed: it is never started again. */
  decommissioned = false;
  raw!: RawNode;
  storage!: MemoryStorage;
  machine!: KvStateMachine;
  /** A Ready whose fsync is in progress: no other Ready until it finishes. */
  private persisting = false;
  private waiters = new Map<string, Reply[]>();
  private reads = new Map<string, PendingRead>();
  private readCounter = 0;
  private snapshotIndex = 0;
  /** Latency of one fsync, in time units (0 = synchronous). */
  fsyncUnits = 0;
  role: string = 'follower';
  lead: NodeId = NONE;
  restarts = 0;

  constructor(
    readonly id: NodeId,
    initial: DurableState,
    private readonly env: NodeEnv,
    private readonly random: Prng,
    tickUnits: number,
  ) {
    this.disk = new SimDisk(initial);
    this.tickUnits = tickUnits;
  }

  start(): void {
    if (this.alive) throw new Error(`sim: n${this.id} started twice`);
    const durable = this.disk.recover();
    const storage = new MemoryStorage();
    if (durable.snapshot !== undefined) storage.applySnapshot(durable.snapshot);
    storage.setHardState(durable.hardState);
    storage.append(durable.entries);
    const snapshotIndex = durable.snapshot?.metadata.index ?? 0;
    if (durable.machine.applied > snapshotIndex) storage.setConfState(durable.machine.confState);
    this.storage = storage;
    this.machine = durable.machine;
    this.snapshotIndex = snapshotIndex;
    this.raw = new RawNode({
      id: this.id,
      electionTicks: this.env.electionTicks,
      heartbeatTicks: this.env.heartbeatTicks,
      storage,
      random: () => this.random.float(),
      applied: durable.machine.applied,
      preVote: true,
      checkQuorum: true,
      maxSizePerMsg: this.env.maxSizePerMsg,
      maxInflightMsgs: 16,
      ...(this.env.faults === undefined ? {} : { faults: this.env.faults }),
    });
    this.alive = true;
    this.persisting = false;
    this.role = 'follower';
    this.lead = NONE;
    this.incarnation++;
    if (this.incarnation > 1) this.restarts++;
    this.env.trace?.(`n${this.id} started: term ${durable.hardState.term} vote ${durable.hardState.vote} commit ${durable.hardState.commit} applied ${durable.machine.applied} log ${storage.firstIndex()}..${storage.lastIndex()}`);
    this.scheduleTick();
    this.pump();
  }

  crash(): void {
    if (!this.alive) return;
    this.alive = false;
    this.incarnation++;
    this.disk.crash(this.random);
    // Clients waiting on this member never hear back; they time out and retry elsewhere.
    this.waiters.clear();
    this.reads.clear();
    this.persisting = false;
    this.role = 'down';
    this.lead = NONE;
  }

  private scheduleTick(): void {
    const incarnation = this.incarnation;
    this.env.queue.after(this.tickUnits, () => {
      if (incarnation !== this.incarnation) return;
      this.raw.tick();
      this.pump();
      this.scheduleTick();
    });
  }

  receive(message: Message): boolean {
    if (!this.alive) return false;
    this.raw.step(message);
    this.pump();
    return true;
  }

  /** A client request arriving at this member. */
  request(request: NodeRequest, reply: Reply): void {
    if (!this.alive) return; // lost: the client times out
    if (this.decommissioned) {
      reply({ ok: false, reason: 'stopped', leader: NONE });
      return;
    }
    if (request.kind === 'propose') {
      const result = this.raw.propose(encodeRequest(request.request));
      if (!result.ok) {
        reply({ ok: false, reason: result.reason, leader: this.lead });
        return;
      }
      const key = waiterKey(request.request.client, request.request.seq);
      const list = this.waiters.get(key);
      if (list === undefined) this.waiters.set(key, [reply]);
      else list.push(reply);
    } else {
      const context = `${this.id}/${this.incarnation}/${++this.readCounter}`;
      const result = this.raw.readIndex(encoder.encode(context));
      if (!result.ok) {
        reply({ ok: false, reason: result.reason, leader: this.lead });
        return;
      }
      this.reads.set(context, { key: request.key, reply, index: undefined });
    }
    this.pump();
  }

  /** Processes Readies after an input given directly to `raw` (conf changes, transfers). */
  poke(): void {
    this.pump();
  }

  // ---- the Ready loop ----

  private pump(): void {
    while (this.alive && !this.persisting && this.raw.hasReady()) {
      const ready = this.raw.ready();
      if (ready.softState !== undefined) this.onSoftState(ready.softState.role, ready.softState.leader);
      this.env.send(ready.messages);
      this.write(ready);
      if (ready.mustSync && this.fsyncUnits > 0) {
        // The fsync takes time; a crash meanwhile loses this Ready's writes.
        this.persisting = true;
        this.env.onFsync(this, ready, this.fsyncUnits);
        const incarnation = this.incarnation;
        this.env.queue.after(this.fsyncUnits, () => {
          if (incarnation !== this.incarnation) return;
          this.persisting = false;
          this.disk.sync();
          this.finish(ready);
          this.pump();
        });
        return;
      }
      if (ready.mustSync) this.disk.sync();
      this.finish(ready);
    }
  }

  private write(ready: Ready): void {
    if (ready.snapshot !== undefined) this.disk.write({ type: 'installSnapshot', snapshot: ready.snapshot });
    if (ready.entries.length > 0) this.disk.write({ type: 'entries', entries: ready.entries });
    if (ready.hardState !== undefined) this.disk.write({ type: 'hardState', hardState: ready.hardState });
  }

  /** Everything after the Ready is durable: mirror, send, apply, advance. */
  private finish(ready: Ready): void {
    if (ready.snapshot !== undefined) {
      this.storage.applySnapshot(ready.snapshot);
      this.machine = KvStateMachine.deserialize(ready.snapshot.data);
      if (this.machine.applied !== ready.snapshot.metadata.index) {
        this.env.monitor.fail('crash', `n${this.id}: snapshot at ${ready.snapshot.metadata.index} holds state applied to ${this.machine.applied}`);
      }
      this.snapshotIndex = ready.snapshot.metadata.index;
      this.env.trace?.(`n${this.id} installed snapshot ${ready.snapshot.metadata.index} (term ${ready.snapshot.metadata.term})`);
    }
    this.storage.append(ready.entries);
    if (ready.hardState !== undefined) this.storage.setHardState(ready.hardState);
    if (ready.hardState !== undefined && this.role === 'leader' && ready.committedEntries.length > 0) this.env.onLeaderCommit(this);
    this.env.send(ready.messagesAfterPersist);
    if (ready.committedEntries.length > 0) this.apply(ready.committedEntries);
    for (const state of ready.readStates) {
      const read = this.reads.get(decoder.decode(state.context));
      if (read !== undefined) read.index = state.index;
    }
    this.releaseReads();
    this.raw.advance();
    this.maybeSnapshot();
  }

  private apply(entries: readonly Entry[]): void {
    const applied: { entry: Entry; confState?: ConfState }[] = [];
    for (const entry of entries) {
      if (entry.index <= this.machine.applied) continue;
      this.env.monitor.onApply(this.id, entry);
      let confState: ConfState | undefined;
      if (entry.type === 'confChange') {
        const change = decodeConfChange(entry.data);
        confState = this.raw.applyConfChange(change);
        this.env.trace?.(`n${this.id} applied conf change ${change.type} n${change.nodeId} at ${entry.index}: voters ${confState.voters.join(',')} learners ${confState.learners.join(',')}`);
      }
      const outcome = this.machine.applyEntry(entry, confState);
      applied.push(confState === undefined ? { entry } : { entry, confState });
      if (confState !== undefined) this.env.onConfChange(this, confState);
      if (outcome === undefined) continue;
      const key = waiterKey(outcome.request.client, outcome.request.seq);
      const waiting = this.waiters.get(key);
      if (waiting === undefined) continue;
      this.waiters.delete(key);
      for (const reply of waiting) reply({ ok: true, result: outcome.result });
    }
    if (applied.length > 0) this.disk.write({ type: 'apply', applied });
  }

  private releaseReads(): void {
    for (const [context, read] of this.reads) {
      if (read.index === undefined || read.index > this.machine.applied) continue;
      this.reads.delete(context);
      read.reply({ ok: true, result: { type: 'get', value: this.machine.get(read.key) } });
    }
  }

  /** Every snapshotEveryEntries applied entries: a durable snapshot, then log compaction. */
  private maybeSnapshot(): void {
    const applied = this.machine.applied;
    if (applied - this.snapshotIndex < this.env.snapshotEveryEntries) return;
    if (applied <= this.storage.snapshot().metadata.index || applied > this.storage.lastIndex()) return;
    const snapshot = this.storage.createSnapshot(applied, this.machine.confState, this.machine.serialize());
    const compactIndex = applied - this.env.keepEntries;
    this.disk.write({ type: 'compact', snapshot, compactIndex });
    this.disk.sync();
    if (compactIndex >= this.storage.firstIndex()) this.storage.compact(compactIndex);
    this.snapshotIndex = applied;
    this.env.trace?.(`n${this.id} snapshot at ${applied}, log compacted through ${compactIndex}`);
  }

  private onSoftState(role: string, leader: NodeId): void {
    const wasLeader = this.role === 'leader';
    this.role = role;
    this.lead = leader;
    if (role === 'leader' && !wasLeader) {
      const term = this.raw.status().term;
      this.env.trace?.(`n${this.id} became leader of term ${term}`);
      this.env.monitor.onLeader({ id: this.id, log: this.raw.internals.raft.log }, term);
      this.env.onLeader(this);
    }
  }

  /** Current term (for traces and checks). */
  term(): number {
    return this.raw.internals.raft.term;
  }

  pendingRequests(): number {
    return this.waiters.size + this.reads.size;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function waiterKey(client: number, seq: number): string {
  return `${client}:${seq}`;
}
