/**
 * SimNetwork: the peer network between members. Each message is dropped, delayed (random
 * delays reorder messages), or duplicated according to the current settings, and dropped when a
 * (symmetric or one-way) partition separates sender and receiver at send or delivery time.
 */
import type { Message, NodeId } from '../../server/raft/index.js';
import type { EventQueue } from './event-queue.js';
import type { Prng } from './prng.js';

export interface NetworkSettings {
  /** Probability that a message is lost. */
  dropRate: number;
  /** Probability that a message is delivered twice. */
  duplicateRate: number;
  /** Delay range in time units (a tick is TICK_UNITS, see simulator.ts). */
  delayMin: number;
  delayMax: number;
  /** Probability of a long delay (up to spikeMax units): a stalled connection. */
  spikeRate: number;
  spikeMax: number;
}

export const IDEAL_NETWORK: NetworkSettings = { dropRate: 0, duplicateRate: 0, delayMin: 1, delayMax: 4, spikeRate: 0, spikeMax: 0 };

export interface NetworkHooks {
  /** Delivers a message to its receiver if that member is up; false if it is not. */
  deliver(message: Message): boolean;
  /** Called when a message cannot arrive (for snapshot status and unreachable reports). */
  lost(message: Message, reason: 'dropped' | 'partitioned' | 'down'): void;
  /** Called after a message was delivered. */
  delivered(message: Message): void;
  /** The sender's incarnation (bumped at each crash and restart). */
  incarnation(id: NodeId): number;
}

/** Probability that a message still in flight when its sender crashes is lost with it. */
const CRASH_LOSES_IN_FLIGHT = 0.5;

export class SimNetwork {
  settings: NetworkSettings = IDEAL_NETWORK;
  /** Directed links that are cut, as `${from}>${to}`. */
  private readonly cut = new Set<string>();
  /** Members cut off from everyone (decommissioned): their traffic is refused. */
  private readonly banned = new Set<NodeId>();
  sent = 0;
  dropped = 0;
  duplicated = 0;

  constructor(
    private readonly queue: EventQueue,
    private readonly random: Prng,
    private readonly hooks: NetworkHooks,
  ) {}

  send(messages: readonly Message[]): void {
    for (const message of messages) this.sendOne(message);
  }

  private sendOne(message: Message): void {
    this.sent++;
    if (this.isCut(message.from, message.to)) {
      this.dropped++;
      this.hooks.lost(message, 'partitioned');
      return;
    }
    const s = this.settings;
    if (this.random.chance(s.dropRate)) {
      this.dropped++;
      this.hooks.lost(message, 'dropped');
      return;
    }
    const incarnation = this.hooks.incarnation(message.from);
    this.queue.after(this.delay(), () => this.arrive(message, incarnation));
    // A snapshot is a stream, not a datagram: never duplicated (its status is reported once).
    if (message.type !== 'snap' && this.random.chance(s.duplicateRate)) {
      this.duplicated++;
      this.queue.after(this.delay(), () => this.arrive(message, incarnation));
    }
  }

  private delay(): number {
    const s = this.settings;
    if (this.random.chance(s.spikeRate)) return this.random.range(s.delayMax, Math.max(s.delayMax, s.spikeMax));
    return this.random.range(s.delayMin, s.delayMax);
  }

  private arrive(message: Message, senderIncarnation: number): void {
    if (senderIncarnation !== this.hooks.incarnation(message.from) && this.random.chance(CRASH_LOSES_IN_FLIGHT)) {
      // The sender crashed since: what sat in its unflushed socket buffers is gone.
      this.dropped++;
      this.hooks.lost(message, 'dropped');
      return;
    }
    if (this.isCut(message.from, message.to)) {
      this.dropped++;
      this.hooks.lost(message, 'partitioned');
      return;
    }
    if (!this.hooks.deliver(message)) {
      this.hooks.lost(message, 'down');
      return;
    }
    this.hooks.delivered(message);
  }

  isCut(from: NodeId, to: NodeId): boolean {
    return this.banned.has(from) || this.banned.has(to) || this.cut.has(`${from}>${to}`);
  }

  /** Cuts every link between the groups (symmetric partition). */
  partition(groups: readonly (readonly NodeId[])[]): void {
    for (const a of groups) {
      for (const b of groups) {
        if (a === b) continue;
        for (const from of a) for (const to of b) this.cut.add(`${from}>${to}`);
      }
    }
  }

  /** Cuts one direction only: `from` can no longer reach `to` (asymmetric partition). */
  cutOneWay(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`);
  }

  heal(): void {
    this.cut.clear();
  }

  ban(id: NodeId): void {
    this.banned.add(id);
  }

  describeCuts(): string {
    return [...this.cut].sort().join(' ');
  }
}
