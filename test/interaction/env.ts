/**
 * A tiny, synchronous, deterministic in-test cluster: several RawNodes, each with a
 * MemoryStorage "disk" and a toy state machine (a list of applied strings), connected by a
 * message queue that can drop messages and partition members. Used by the interaction-script
 * runner and the raft unit tests. Every action can describe itself into `out`.
 */
import {
  MemoryStorage, NONE, RawNode, bootstrapStorage, decodeConfChange, describeMessage, describeReady,
  type ConfChange, type ConfState, type Entry, type Message, type NodeId, type RaftFaults, type ReadState,
  type Ready,
} from '../../server/raft/index.js';

export interface NodeOptions {
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  readonly electionTicks?: number;
  readonly heartbeatTicks?: number;
  readonly maxSizePerMsg?: number;
  readonly maxInflightMsgs?: number;
  readonly maxUncommittedEntriesSize?: number;
  readonly faults?: RaftFaults;
}

/** A seeded PRNG (mulberry32): the same seed always yields the same election timeouts. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

export class TestNode {
  raw!: RawNode;
  /** Applied normal entries (non-empty data), as text: the toy state machine. */
  applied: string[] = [];
  appliedIndex = 0;
  confState: ConfState;
  readStates: ReadState[] = [];
  /** ConfState and applied-string count after each applied index, so compaction can snapshot. */
  private readonly confAt = new Map<number, ConfState>();
  private readonly countAt = new Map<number, number>();

  constructor(readonly id: NodeId, readonly storage: MemoryStorage, readonly options: NodeOptions) {
    const snapshot = storage.snapshot();
    this.confState = snapshot.metadata.confState;
    this.appliedIndex = snapshot.metadata.index;
    this.confAt.set(this.appliedIndex, this.confState);
    this.countAt.set(this.appliedIndex, 0);
    this.start();
  }

  /** (Re)creates the RawNode from what is durable: storage plus the applied state machine. */
  start(): void {
    this.storage.setConfState(this.confState);
    this.raw = new RawNode({
      id: this.id,
      storage: this.storage,
      random: seededRandom(Number(this.id) * 7919),
      electionTicks: this.options.electionTicks ?? 10,
      heartbeatTicks: this.options.heartbeatTicks ?? 1,
      applied: this.appliedIndex,
      preVote: this.options.preVote ?? true,
      checkQuorum: this.options.checkQuorum ?? true,
      ...(this.options.maxSizePerMsg === undefined ? {} : { maxSizePerMsg: this.options.maxSizePerMsg }),
      ...(this.options.maxInflightMsgs === undefined ? {} : { maxInflightMsgs: this.options.maxInflightMsgs }),
      ...(this.options.maxUncommittedEntriesSize === undefined ? {} : { maxUncommittedEntriesSize: this.options.maxUncommittedEntriesSize }),
      ...(this.options.faults === undefined ? {} : { faults: this.options.faults }),
    });
  }

  /** Persists, applies and advances one Ready; returns it (undefined if none) and the messages. */
  handleReady(): { ready: Ready; messages: Message[] } | undefined {
    if (!this.raw.hasReady()) return undefined;
    const rd = this.raw.ready();
    // Persist first: snapshot, entries, hardState (the MemoryStorage is our "disk").
    if (rd.snapshot !== undefined) this.storage.applySnapshot(rd.snapshot);
    this.storage.append(rd.entries);
    if (rd.hardState !== undefined) this.storage.setHardState(rd.hardState);
    if (rd.snapshot !== undefined) this.applySnapshot(rd.snapshot.metadata.index, rd.snapshot.metadata.confState, rd.snapshot.data);
    for (const entry of rd.committedEntries) this.applyEntry(entry);
    this.readStates.push(...rd.readStates);
    this.raw.advance();
    return { ready: rd, messages: [...rd.messages, ...rd.messagesAfterPersist] };
  }

  private applySnapshot(index: number, confState: ConfState, data: Uint8Array): void {
    this.applied = data.byteLength === 0 ? [] : (JSON.parse(decoder.decode(data)) as string[]);
    this.appliedIndex = index;
    this.confState = confState;
    this.confAt.set(index, confState);
    this.countAt.set(index, this.applied.length);
  }

  private applyEntry(entry: Entry): void {
    if (entry.type === 'confChange') {
      this.confState = this.raw.applyConfChange(decodeConfChange(entry.data));
    } else if (entry.data.byteLength > 0) {
      this.applied.push(decoder.decode(entry.data));
    }
    this.appliedIndex = entry.index;
    this.confAt.set(entry.index, this.confState);
    this.countAt.set(entry.index, this.applied.length);
  }

  /** Snapshots the applied state at `index` and compacts the log up to it. */
  compact(index: number): void {
    if (index > this.appliedIndex) throw new Error(`compact ${index} beyond applied ${this.appliedIndex}`);
    const confState = this.confAt.get(index);
    const count = this.countAt.get(index);
    if (confState === undefined || count === undefined) throw new Error(`nothing recorded at ${index}`);
    const prefix = this.applied.slice(0, count);
    this.storage.createSnapshot(index, confState, encoder.encode(JSON.stringify(prefix)));
    this.storage.compact(index);
  }
}

interface DropRule {
  readonly from: NodeId | undefined;
  readonly to: NodeId | undefined;
}

export class TestCluster {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent but not yet delivered, in send order. */
  queue: Message[] = [];
  readonly out: string[] = [];
  private dropRules: DropRule[] = [];
  private groups: NodeId[][] | undefined = undefined;
  private nextId = 1n;

  /** Adds `count` members. Unless `join`, they start a new cluster whose voters are exactly them. */
  addNodes(count: number, options: NodeOptions & { join?: boolean; voters?: readonly NodeId[]; learners?: readonly NodeId[] } = {}): NodeId[] {
    const ids: NodeId[] = [];
    for (let i = 0; i < count; i++) ids.push(this.nextId++);
    for (const id of ids) {
      const storage = options.join === true
        ? new MemoryStorage()
        : bootstrapStorage({ voters: options.voters ?? ids, learners: options.learners ?? [] });
      this.nodes.set(id, new TestNode(id, storage, options));
    }
    return ids;
  }

  node(id: NodeId): TestNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  ids(): NodeId[] {
    return [...this.nodes.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Handles one Ready on `id`; its messages join the network queue. */
  processReady(id: NodeId): boolean {
    const handled = this.node(id).handleReady();
    if (handled === undefined) return false;
    this.out.push(`> ${id} handling Ready`);
    for (const line of describeReady(handled.ready)) this.out.push(`  ${line}`);
    this.queue.push(...handled.messages);
    return true;
  }

  isBlocked(m: Message): boolean {
    if (this.dropRules.some((r) => (r.from === undefined || r.from === m.from) && (r.to === undefined || r.to === m.to))) return true;
    if (this.groups === undefined) return false;
    const groupOf = (id: NodeId): number => this.groups!.findIndex((g) => g.includes(id));
    return groupOf(m.from) !== groupOf(m.to);
  }

  drop(from: NodeId | undefined, to: NodeId | undefined): void {
    this.dropRules.push({ from, to });
  }

  partition(groups: NodeId[][]): void {
    this.groups = groups;
  }

  heal(): void {
    this.dropRules = [];
    this.groups = undefined;
  }

  /**
   * Delivers (or, if blocked or `discard`, drops) the queued messages matching `filter`, in
   * order. Messages sent while delivering wait for the next call. Returns how many were taken.
   */
  deliver(filter: (m: Message) => boolean = () => true, discard = false): number {
    const taken: Message[] = [];
    const kept: Message[] = [];
    for (const m of this.queue) (filter(m) ? taken : kept).push(m); // filter runs once per message
    this.queue = kept;
    const byRecipient = new Map<NodeId, Message[]>();
    for (const m of taken) byRecipient.set(m.to, [...(byRecipient.get(m.to) ?? []), m]);
    for (const to of [...byRecipient.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
      this.out.push(`> ${to} receiving messages`);
      for (const m of byRecipient.get(to)!) this.deliverOne(m, discard);
    }
    return taken.length;
  }

  private deliverOne(m: Message, discard: boolean): void {
    const recipient = this.nodes.get(m.to);
    const dropped = discard || recipient === undefined || this.isBlocked(m);
    this.out.push(`  ${describeMessage(m)}${dropped ? ' DROPPED' : ''}`);
    if (!dropped) recipient.raw.step(m);
    // The "transport" tells the leader how a snapshot send went, as a real one would.
    if (m.type === 'snap') {
      const status = dropped ? 'failure' : 'finish';
      this.nodes.get(m.from)?.raw.reportSnapshot(m.to, status);
      this.out.push(`  report snapshot ${m.from}->${m.to} ${status}`);
    }
  }

  /** Ready, then deliver, on every member, until nothing moves (bounded). */
  stabilize(ids: readonly NodeId[] = this.ids(), maxRounds = 1000): void {
    const members = new Set(ids);
    for (let round = 0; round < maxRounds; round++) {
      let moved = false;
      for (const id of ids) moved = this.processReady(id) || moved;
      // Messages to members outside `ids` stay queued, unless the network drops them anyway.
      moved = this.deliver((m) => members.has(m.to) || this.isBlocked(m)) > 0 || moved;
      if (!moved) return;
    }
    throw new Error(`stabilize did not converge in ${maxRounds} rounds`);
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.node(id).raw.tick();
  }

  /** Crash and restart: everything not persisted (unhandled Ready contents) is lost. */
  restart(id: NodeId): void {
    this.dropQueued((m) => m.to === id);
    this.node(id).start();
  }

  /**
   * Loses queued messages silently (no output). Like a real transport, it still tells the
   * sender that a snapshot did not arrive: without reportSnapshot the leader would wait forever.
   */
  dropQueued(filter: (m: Message) => boolean): void {
    const kept: Message[] = [];
    for (const m of this.queue) {
      if (!filter(m)) kept.push(m);
      else if (m.type === 'snap') this.nodes.get(m.from)?.raw.reportSnapshot(m.to, 'failure');
    }
    this.queue = kept;
  }

  leaderIds(): NodeId[] {
    return this.ids().filter((id) => this.node(id).raw.status().role === 'leader');
  }

  /** The only leader among `ids`; throws if there is not exactly one. */
  leader(ids: readonly NodeId[] = this.ids()): NodeId {
    const leaders = ids.filter((id) => this.node(id).raw.status().role === 'leader');
    if (leaders.length !== 1) throw new Error(`expected one leader, got [${leaders.join(' ')}]`);
    return leaders[0]!;
  }

  /** Raft log of `id` as described entries, first..last (stable and unstable). */
  logOf(id: NodeId): Entry[] {
    const log = this.node(id).raw.internals.raft.log;
    const entries = log.slice(log.firstIndex(), log.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
    if (entries === undefined) throw new Error('log compacted under us');
    return [...entries];
  }

  propose(id: NodeId, text: string): ReturnType<RawNode['propose']> {
    return this.node(id).raw.propose(bytes(text));
  }

  proposeConfChange(id: NodeId, cc: Omit<ConfChange, 'context'>): ReturnType<RawNode['proposeConfChange']> {
    return this.node(id).raw.proposeConfChange({ ...cc, context: new Uint8Array(0) });
  }

  /** Elects `id` by ticking it past its election timeout, then stabilizing. */
  elect(id: NodeId): void {
    this.node(id).raw.campaign();
    this.stabilize();
  }
}

export { NONE };
