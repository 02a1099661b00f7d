/**
 * The deterministic simulator (DESIGN.md §4; in the spirit of TigerBeetle's VOPR): N members
 * running the real Raft core behind a simulated shell, network, disk and clock, plus clients,
 * all driven by one seed. A run is a fault phase (crashes and restarts, partitions, lossy,
 * duplicating and slow links, clocks at different rates, leader transfers, membership changes)
 * followed by a heal phase in which the cluster must elect a stable leader, finish every
 * request and converge, within tick budgets. Safety invariants are checked throughout (see
 * monitor.ts), linearizability of the client history at the end. The same seed and options
 * replay the same run exactly.
 */
import {
  NONE, bootstrapStorage, describeMessage, type ConfChange, type ConfState, type Message, type NodeId,
} from '../../server/raft/index.js';
import { checkKvHistory, type KvOp, type Operation } from '../checker/linearizability.js';
import { SimClient, type ClientSettings } from './client.js';
import type { DurableState } from './disk.js';
import { EventQueue } from './event-queue.js';
import { KvStateMachine } from './kv.js';
import { SafetyMonitor, type Violation } from './monitor.js';
import { IDEAL_NETWORK, SimNetwork } from './network.js';
import { SimNode, type NodeRequest, type NodeResponse } from './node.js';
import { Prng } from './prng.js';
import {
  TICK_UNITS, defaultProfile, describeSchedule, drawSchedule, type FaultVariant, type ProfileName, type Schedule,
} from './schedule.js';

export interface SimOptions {
  readonly seed: number;
  readonly members: number;
  /** Switch on one deliberately broken core variant. */
  readonly faults?: FaultVariant;
  /** Fault schedule profile; defaults to defaultProfile(faults). */
  readonly profile?: ProfileName;
  /** 0: quiet; 1: trace events; 2: also every message. */
  readonly verbose?: number;
  /** Where trace lines go (default console.log). */
  readonly log?: (line: string) => void;
  /** Budget of the linearizability search per key. */
  readonly checkerMaxStates?: number;
}

export interface SimStats {
  ticks: number;
  messages: number;
  dropped: number;
  crashes: number;
  partitions: number;
  elections: number;
  confChanges: number;
  operations: number;
  indeterminate: number;
  checkerStates: number;
  /** True when the linearizability search ran out of budget (result unknown). */
  checkerUnknown: boolean;
}

export interface SimResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly violation?: Violation;
  /** The one command that replays this run exactly. */
  readonly replay: string;
  readonly schedule: Schedule;
  readonly stats: SimStats;
  /** The client history (all keys), as checked. */
  readonly history: readonly Operation<KvOp>[];
}

export function replayCommand(options: SimOptions): string {
  const parts = ['npm run test:sim --', `--seed ${options.seed}`, `--members ${options.members}`];
  if (options.faults !== undefined) parts.push(`--faults ${options.faults}`);
  if (options.profile !== undefined && options.profile !== defaultProfile(options.faults)) parts.push(`--profile ${options.profile}`);
  return parts.join(' ');
}

export function runSimulation(options: SimOptions): SimResult {
  const sim = new Simulation(options);
  return sim.run();
}

const KEYS = ['x', 'y', 'z'];

class Simulation {
  private readonly queue = new EventQueue();
  private readonly random: Prng;
  private readonly schedule: Schedule;
  private readonly monitor: SafetyMonitor;
  private readonly network: SimNetwork;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly clients: SimClient[] = [];
  private readonly trace: ((line: string) => void) | undefined;
  private readonly traceMessages: boolean;
  private stampCounter = 0;
  private healed = false;
  private healStart = 0;
  private stableLeaderSeen = false;
  private readonly stats: SimStats = {
    ticks: 0, messages: 0, dropped: 0, crashes: 0, partitions: 0, elections: 0, confChanges: 0,
    operations: 0, indeterminate: 0, checkerStates: 0, checkerUnknown: false,
  };
  // Randomness streams, one per concern, so that changing one kind of fault leaves the others'
  // draws alone.
  private readonly faultRandom: Prng;
  private readonly nodeRandom: Prng;
  private readonly clientRandom: Prng;
  private membership: MembershipPlan | undefined;

  constructor(private readonly options: SimOptions) {
    this.random = new Prng(options.seed);
    const profile = options.profile ?? defaultProfile(options.faults);
    this.schedule = drawSchedule(this.random.fork(), profile, options.members);
    this.faultRandom = this.random.fork();
    this.nodeRandom = this.random.fork();
    this.clientRandom = this.random.fork();
    const log = options.log ?? ((line: string) => console.log(line));
    const verbose = options.verbose ?? 0;
    this.trace = verbose > 0 ? (line) => log(`[${(this.queue.now / TICK_UNITS).toFixed(1).padStart(6)}] ${line}`) : undefined;
    this.traceMessages = verbose > 1;
    this.monitor = new SafetyMonitor(() => this.queue.now);
    this.network = new SimNetwork(this.queue, this.random.fork(), {
      deliver: (m) => this.deliver(m),
      lost: (m, reason) => this.lost(m, reason),
      delivered: (m) => this.delivered(m),
      incarnation: (id) => this.nodes.get(id)?.incarnation ?? 0,
    });
  }

  run(): SimResult {
    this.trace?.(`seed ${this.options.seed}, ${this.options.members} members${this.options.faults ? `, broken core: ${this.options.faults}` : ''}\n  ${describeSchedule(this.schedule)}`);
    try {
      this.setUp();
      this.runFaultPhase();
      if (!this.monitor.failed) this.runHealPhase();
      if (!this.monitor.failed) this.finalChecks();
    } catch (error) {
      const text = error instanceof Error ? error.stack ?? error.message : String(error);
      this.monitor.fail('crash', `exception: ${text}`);
    }
    this.stats.ticks = Math.round(this.queue.now / TICK_UNITS);
    this.stats.messages = this.network.sent;
    this.stats.dropped = this.network.dropped;
    this.stats.elections = this.monitor.leaderElections;
    const violation = this.monitor.violation;
    if (violation !== undefined) this.trace?.(`VIOLATION ${violation.kind}: ${violation.message}`);
    return {
      seed: this.options.seed,
      ok: violation === undefined,
      ...(violation === undefined ? {} : { violation }),
      replay: replayCommand(this.options),
      schedule: this.schedule,
      stats: this.stats,
      history: this.clients.flatMap((client) => client.history),
    };
  }

  // ---- set-up ----

  private setUp(): void {
    const voters: NodeId[] = [];
    for (let i = 1; i <= this.options.members; i++) voters.push(BigInt(i));
    const confState: ConfState = { voters, learners: [] };
    for (const id of voters) this.addNode(id, initialDurable(confState));
    for (const node of this.nodes.values()) node.start();
    const settings: ClientSettings = {
      attemptTimeoutUnits: this.schedule.attemptTimeoutTicks * TICK_UNITS,
      giveUpUnits: this.schedule.giveUpTicks * TICK_UNITS,
      thinkMaxUnits: this.schedule.thinkMaxUnits,
      logReadShare: this.schedule.logReadShare,
      issuing: true,
    };
    const keys = KEYS.slice(0, this.schedule.keys);
    for (let i = 1; i <= this.schedule.clients; i++) {
      const client = new SimClient(i, {
        queue: this.queue,
        stamp: () => ++this.stampCounter,
        members: () => this.clientTargets(),
        send: (to, request, reply) => this.clientSend(to, request, reply),
        trace: this.trace,
        keys,
      }, this.clientRandom.fork(), { ...settings });
      this.clients.push(client);
      client.start();
    }
    if (this.schedule.confChanges) {
      const victims = [...voters];
      this.membership = {
        newId: BigInt(this.options.members + 1),
        victim: this.faultRandom.pick(victims),
        step: 0,
        nextTryAt: this.faultRandom.range(10, Math.max(11, this.schedule.faultTicks - 50)) * TICK_UNITS,
      };
    }
  }

  private addNode(id: NodeId, durable: DurableState): SimNode {
    const node = new SimNode(id, durable, {
      queue: this.queue,
      monitor: this.monitor,
      send: (messages) => this.send(messages),
      trace: this.trace,
      electionTicks: this.schedule.electionTicks,
      heartbeatTicks: this.schedule.heartbeatTicks,
      maxSizePerMsg: this.schedule.maxSizePerMsg,
      faults: this.options.faults === undefined ? undefined : { [this.options.faults]: true },
      snapshotEveryEntries: this.schedule.snapshotEveryEntries,
      keepEntries: this.schedule.keepEntries,
      onConfChange: (member, confState) => this.onConfChange(member, confState),
      onLeader: (member) => this.onNewLeader(member),
      onFsync: (member, ready, units) => {
        // A crash in the middle of a synced write; writes with a snapshot are the riskiest.
        const rate = this.schedule.crashDuringFsyncRate * (ready.snapshot === undefined ? 1 : 20);
        if (this.healed || !this.faultRandom.chance(rate)) return;
        const incarnation = member.incarnation;
        this.queue.after(this.faultRandom.range(0, Math.max(0, units - 2)), () => this.crashSoon(member, 'in the middle of an fsync', [0, 5], incarnation));
      },
      onLeaderCommit: (member) => {
        if (!this.healed && this.faultRandom.chance(this.schedule.crashAfterCommitRate)) this.crashSoon(member, 'right after committing', [1, 20]);
      },
    }, this.nodeRandom.fork(), TICK_UNITS);
    node.fsyncUnits = this.schedule.fsyncMaxUnits === 0 ? 0 : this.nodeRandom.range(0, this.schedule.fsyncMaxUnits);
    this.nodes.set(id, node);
    return node;
  }

  // ---- network plumbing ----

  private send(messages: readonly Message[]): void {
    if (messages.length === 0) return;
    if (this.traceMessages) for (const m of messages) this.trace?.(`send ${describeMessage(m)}`);
    else if (this.trace !== undefined) {
      for (const m of messages) if (m.type === 'voteResp' && !m.reject) this.trace(`n${m.from} votes for n${m.to} in term ${m.term}`);
    }
    this.network.send(messages);
    if (this.healed || this.schedule.crashAfterVoteRate === 0) return;
    for (const m of messages) {
      if (m.type === 'voteResp' && !m.reject && this.faultRandom.chance(this.schedule.crashAfterVoteRate)) this.crashAfterVote(m.from);
    }
  }

  /** A targeted fault: a new leader crashes within its first ticks, with entries in flight. */
  private onNewLeader(node: SimNode): void {
    if (this.healed || !this.faultRandom.chance(this.schedule.crashNewLeaderRate)) return;
    const incarnation = node.incarnation;
    this.queue.after(this.faultRandom.range(0, 3 * TICK_UNITS), () => this.crashSoon(node, 'as a new leader', [1, 20], incarnation));
  }

  /**
   * Crashes `node` one unit from now unless it crashed or restarted since `incarnation`, and
   * restarts it after downTicks.
   */
  private crashSoon(node: SimNode, why: string, downTicks: readonly [number, number], incarnation = node.incarnation): void {
    this.queue.after(1, () => {
      if (node.incarnation !== incarnation || !node.alive || this.healed) return;
      node.crash();
      this.stats.crashes++;
      this.trace?.(`fault: n${node.id} crashes ${why}`);
      const crashed = node.incarnation;
      this.queue.after(this.faultRandom.range(downTicks[0], downTicks[1]) * TICK_UNITS, () => {
        if (!node.alive && node.incarnation === crashed && !node.decommissioned) node.start();
      });
    });
  }

  /** A targeted fault: the voter crashes just after its vote left, and restarts soon. */
  private crashAfterVote(id: NodeId): void {
    const node = this.nodes.get(id);
    if (node !== undefined) this.crashSoon(node, 'right after granting a vote', [0, 2]);
  }

  private deliver(message: Message): boolean {
    const node = this.nodes.get(message.to);
    if (node === undefined || !node.alive) return false;
    if (this.traceMessages) this.trace?.(`recv ${describeMessage(message)}`);
    return node.receive(message);
  }

  private delivered(message: Message): void {
    if (message.type === 'snap') this.reportSnapshot(message, 'finish');
  }

  private lost(message: Message, reason: 'dropped' | 'partitioned' | 'down'): void {
    if (this.traceMessages) this.trace?.(`lost (${reason}) ${describeMessage(message)}`);
    if (message.type === 'snap') this.reportSnapshot(message, 'failure');
    if (reason !== 'dropped') {
      const sender = this.nodes.get(message.from);
      if (sender?.alive) sender.raw.reportUnreachable(message.to);
    }
  }

  private reportSnapshot(message: Message, status: 'finish' | 'failure'): void {
    const sender = this.nodes.get(message.from);
    if (sender === undefined || !sender.alive) return;
    // The transport reports a snapshot's fate when the stream ends (here: after delivery).
    this.queue.after(1, () => {
      if (sender.alive) sender.raw.reportSnapshot(message.to, status);
    });
  }

  private clientTargets(): readonly NodeId[] {
    const targets: NodeId[] = [];
    for (const node of this.nodes.values()) if (!node.decommissioned) targets.push(node.id);
    return targets;
  }

  /** Client links: a small delay each way; lossy in the fault phase like peer links. */
  private clientSend(to: NodeId, request: NodeRequest, reply: (response: NodeResponse) => void): void {
    const node = this.nodes.get(to);
    if (node === undefined) return;
    const lossy = (): boolean => !this.healed && this.faultRandom.chance(this.schedule.network.dropRate / 2);
    if (lossy()) return;
    this.queue.after(this.faultRandom.range(1, 5), () => {
      node.request(request, (response) => {
        if (lossy()) return;
        this.queue.after(this.faultRandom.range(1, 5), () => reply(response));
      });
    });
  }

  // ---- phases ----

  private runFaultPhase(): void {
    this.network.settings = this.schedule.network;
    const end = this.schedule.faultTicks * TICK_UNITS;
    for (let tick = 1; tick * TICK_UNITS <= end; tick++) {
      this.queue.runUntil(tick * TICK_UNITS, () => this.monitor.failed);
      if (this.monitor.failed) return;
      this.injectFaults(tick);
      this.driveMembership();
      if (tick % 50 === 0) this.checkLogs();
    }
  }

  private runHealPhase(): void {
    this.heal();
    const s = this.schedule;
    const start = this.queue.now;
    for (let tick = 1; tick <= s.healTicks; tick++) {
      this.queue.runUntil(start + tick * TICK_UNITS, () => this.monitor.failed);
      if (this.monitor.failed) return;
      this.driveMembership();
      if (!this.stableLeaderSeen && this.stableLeader() !== undefined) {
        this.stableLeaderSeen = true;
        this.trace?.(`heal: stable leader after ${tick} ticks`);
      }
      if (!this.stableLeaderSeen && tick === s.leaderWithinTicks) {
        this.monitor.fail('liveness', `no stable leader ${s.leaderWithinTicks} ticks after healing (${this.describeNodes()})`);
        return;
      }
      if (tick === s.healIssueTicks) for (const client of this.clients) client.settings.issuing = false;
      if (tick > s.healIssueTicks && this.quiescent()) return;
    }
    const busy = this.clients.filter((c) => c.busy).map((c) => `client ${c.id}: ${c.describeCurrent()}`);
    this.monitor.fail('liveness', busy.length > 0
      ? `requests still pending ${s.healTicks} ticks after healing: ${busy.join('; ')} (${this.describeNodes()})`
      : `members did not converge ${s.healTicks} ticks after healing (${this.describeNodes()})`);
  }

  private heal(): void {
    this.healed = true;
    this.healStart = this.queue.now;
    this.trace?.('heal: network healed, crashed members restart, clocks normal');
    this.network.settings = IDEAL_NETWORK;
    this.network.heal();
    for (const node of this.nodes.values()) {
      node.tickUnits = TICK_UNITS;
      if (!node.alive && !node.decommissioned) node.start();
    }
    for (const client of this.clients) client.settings.giveUpUnits = Infinity;
  }

  /** A leader that every live voter of its configuration follows. */
  private stableLeader(): SimNode | undefined {
    for (const node of this.nodes.values()) {
      if (!node.alive || node.decommissioned || node.role !== 'leader') continue;
      const voters = node.machine.confState.voters;
      const followed = voters.every((id) => {
        const other = this.nodes.get(id);
        return other === undefined || !other.alive || other.decommissioned || other.lead === node.id;
      });
      if (followed) return node;
    }
    return undefined;
  }

  /** Every client is idle and every live member has applied the leader's commit index. */
  private quiescent(): boolean {
    if (this.clients.some((c) => c.busy)) return false;
    const leader = this.stableLeader();
    if (leader === undefined) return false;
    const commit = leader.raw.status().commit;
    const members = [...leader.machine.confState.voters, ...leader.machine.confState.learners];
    return members.every((id) => {
      const node = this.nodes.get(id);
      return node === undefined || node.decommissioned || (node.alive && node.machine.applied === commit);
    });
  }

  // ---- faults ----

  private injectFaults(tick: number): void {
    const s = this.schedule;
    const r = this.faultRandom;
    if (r.chance(s.crashPerTick)) this.crashOne();
    if (r.chance(s.partitionPerTick)) this.partitionOnce();
    if (r.chance(s.skewPerTick)) {
      const node = r.pick([...this.nodes.values()]);
      node.tickUnits = r.range(s.tickUnitsRange[0], s.tickUnitsRange[1]);
      this.trace?.(`fault: n${node.id} clock now ${node.tickUnits} units per tick`);
    }
    if (r.chance(s.transferPerTick)) {
      const leader = this.currentLeader();
      if (leader !== undefined) {
        const to = r.pick(leader.machine.confState.voters);
        if (to !== leader.id) {
          this.trace?.(`fault: leader n${leader.id} transfers to n${to}`);
          leader.raw.transferLeader(to);
          leader.poke();
        }
      }
    }
    void tick;
  }

  private crashOne(): void {
    const r = this.faultRandom;
    const alive = [...this.nodes.values()].filter((n) => n.alive);
    if (alive.length === 0) return;
    const leader = alive.find((n) => n.role === 'leader');
    const victim = leader !== undefined && r.chance(this.schedule.leaderBias) ? leader : r.pick(alive);
    const role = victim.role;
    victim.crash();
    this.stats.crashes++;
    const downTicks = r.range(this.schedule.downTicks[0], this.schedule.downTicks[1]);
    this.trace?.(`fault: n${victim.id} (${role}) crashes, down for ${downTicks} ticks`);
    const incarnation = victim.incarnation;
    this.queue.after(Math.max(1, downTicks * TICK_UNITS), () => {
      if (victim.alive || victim.incarnation !== incarnation || victim.decommissioned) return;
      victim.start();
    });
  }

  private partitionOnce(): void {
    const r = this.faultRandom;
    const ids = [...this.nodes.values()].filter((n) => !n.decommissioned).map((n) => n.id);
    this.network.heal();
    const kind = r.int(3);
    const leader = this.currentLeader();
    if (kind === 0 || (leader !== undefined && r.chance(this.schedule.leaderBias))) {
      const isolated = leader !== undefined && r.chance(this.schedule.leaderBias) ? leader.id : r.pick(ids);
      this.network.partition([[isolated], ids.filter((id) => id !== isolated)]);
      if (this.schedule.flavor === 'staleLeader' && leader !== undefined && isolated === leader.id) {
        // Slow the isolated leader's clock: it notices the lost quorum late (CheckQuorum).
        leader.tickUnits = TICK_UNITS * 3;
      }
    } else if (kind === 1) {
      const shuffled = r.shuffle([...ids]);
      const cut = r.range(1, shuffled.length - 1);
      this.network.partition([shuffled.slice(0, cut), shuffled.slice(cut)]);
    } else {
      const links = r.range(1, ids.length);
      for (let i = 0; i < links; i++) {
        const from = r.pick(ids);
        const to = r.pick(ids);
        if (from !== to) this.network.cutOneWay(from, to);
      }
    }
    this.stats.partitions++;
    const ticks = r.range(this.schedule.partitionTicks[0], this.schedule.partitionTicks[1]);
    this.trace?.(`fault: partition for ${ticks} ticks: cut ${this.network.describeCuts()}`);
    const partitions = this.stats.partitions;
    this.queue.after(ticks * TICK_UNITS, () => {
      if (this.healed || this.stats.partitions !== partitions) return;
      this.network.heal();
      for (const node of this.nodes.values()) if (this.schedule.flavor === 'staleLeader') node.tickUnits = TICK_UNITS;
      this.trace?.('fault: partition healed');
    });
  }

  private currentLeader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const node of this.nodes.values()) {
      if (node.alive && node.role === 'leader' && (best === undefined || node.term() > best.term())) best = node;
    }
    return best;
  }

  // ---- membership changes: add a learner, promote it, remove one original voter ----

  private driveMembership(): void {
    const plan = this.membership;
    if (plan === undefined || plan.step >= 3 || this.queue.now < plan.nextTryAt) return;
    const leader = this.currentLeader();
    plan.nextTryAt = this.queue.now + 10 * TICK_UNITS;
    if (leader === undefined) return;
    const conf = leader.machine.confState;
    const done = [
      conf.learners.includes(plan.newId) || conf.voters.includes(plan.newId),
      conf.voters.includes(plan.newId),
      !conf.voters.includes(plan.victim) && !conf.learners.includes(plan.victim),
    ];
    while (plan.step < 3 && done[plan.step] === true) plan.step++;
    if (plan.step >= 3) return;
    if (plan.step === 0 && !this.nodes.has(plan.newId)) {
      const node = this.addNode(plan.newId, emptyDurable());
      node.start();
    }
    const change: ConfChange = [
      { type: 'addLearner', nodeId: plan.newId, context: new Uint8Array(0) } as const,
      { type: 'addNode', nodeId: plan.newId, context: new Uint8Array(0) } as const,
      { type: 'removeNode', nodeId: plan.victim, context: new Uint8Array(0) } as const,
    ][plan.step]!;
    const result = leader.raw.proposeConfChange(change);
    this.trace?.(`membership: n${leader.id} proposes ${change.type} n${change.nodeId}: ${result.ok ? 'ok' : result.reason}`);
    if (result.ok) this.stats.confChanges++;
    leader.poke();
  }

  private onConfChange(node: SimNode, confState: ConfState): void {
    // Once a member's removal is applied by the leader, it is shut down for good (etcd: a
    // removed member stops, and peers refuse its traffic). It may still hand leadership over.
    if (node.role !== 'leader') return;
    for (const other of this.nodes.values()) {
      const member = confState.voters.includes(other.id) || confState.learners.includes(other.id);
      if (member || other.decommissioned || other.id === this.membership?.newId) continue;
      other.decommissioned = true;
      this.trace?.(`membership: n${other.id} removed; it stops in ${2 * this.schedule.electionTicks} ticks`);
      this.queue.after(2 * this.schedule.electionTicks * TICK_UNITS, () => {
        other.crash();
        this.network.ban(other.id);
      });
    }
  }

  // ---- checks ----

  private checkLogs(): void {
    const views = [...this.nodes.values()].filter((n) => n.alive).map((n) => ({ id: n.id, log: n.raw.internals.raft.log }));
    this.monitor.checkLogMatching(views);
  }

  private finalChecks(): void {
    this.checkLogs();
    if (this.monitor.failed) return;
    this.checkConvergence();
    if (this.monitor.failed) return;
    this.checkHistory();
  }

  private checkConvergence(): void {
    const leader = this.stableLeader();
    if (leader === undefined) return;
    const conf = leader.machine.confState;
    for (const id of [...conf.voters, ...conf.learners]) {
      const node = this.nodes.get(id);
      if (node === undefined || !node.alive || node === leader) continue;
      if (!node.machine.equals(leader.machine)) {
        this.monitor.fail('convergence', `n${node.id} (${node.machine.describe()}) differs from leader n${leader.id} (${leader.machine.describe()})`);
        return;
      }
    }
  }

  private checkHistory(): void {
    const history: Operation<KvOp>[] = [];
    for (const client of this.clients) history.push(...client.history);
    this.stats.operations = history.length;
    this.stats.indeterminate = history.filter((o) => o.outcome === 'indeterminate').length;
    const result = checkKvHistory(history, this.options.checkerMaxStates === undefined ? {} : { maxStates: this.options.checkerMaxStates });
    this.stats.checkerStates = result.exploredStates;
    if (result.linearizable === null) {
      this.stats.checkerUnknown = true;
      this.trace?.('linearizability: unknown (search budget exceeded)');
      return;
    }
    if (result.linearizable) return;
    const [key, failure] = [...result.failures].find(([, r]) => r.linearizable === false)!;
    const explanation = failure.linearizable === false ? failure.explanation : '';
    this.monitor.fail('linearizability', `key ${key}: ${explanation}`);
  }

  private describeNodes(): string {
    return [...this.nodes.values()].map((n) => {
      if (n.decommissioned) return `n${n.id} removed`;
      if (!n.alive) return `n${n.id} down`;
      return `n${n.id} ${n.role} term ${n.term()} lead ${n.lead} applied ${n.machine.applied} commit ${n.raw.status().commit}`;
    }).join(', ');
  }
}

interface MembershipPlan {
  readonly newId: NodeId;
  readonly victim: NodeId;
  /** 0: add the learner; 1: promote it; 2: remove the victim; 3: done. */
  step: number;
  nextTryAt: number;
}

function initialDurable(confState: ConfState): DurableState {
  // The bootstrap snapshot's data is the empty state machine: a member that joins later may
  // be sent exactly this snapshot.
  const storage = bootstrapStorage(confState);
  const machine = new KvStateMachine(storage.snapshot().metadata.index, confState);
  return {
    hardState: storage.initialState().hardState,
    snapshot: { ...storage.snapshot(), data: machine.serialize() },
    entries: [],
    machine,
  };
}

function emptyDurable(): DurableState {
  return {
    hardState: { term: 0, vote: NONE, commit: 0 },
    snapshot: undefined,
    entries: [],
    machine: new KvStateMachine(0, { voters: [], learners: [] }),
  };
}
