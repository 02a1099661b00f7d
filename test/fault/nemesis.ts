/**
 * The nemesis: kill -9 and restart on the same data dir, SIGSTOP/SIGCONT pauses, up to a
 * minority of members at once, then heal.
 *
 * The schedule is a pure function of (seed, members, duration, profile): `planNemesis` draws
 * every choice up front (kind, target rule, timing, and a number that picks the member when the
 * rule leaves a choice), so a seed replays the schedule. Which member "the leader" is, and how
 * long a restart takes, are facts of the run, resolved by `runNemesis` as it executes.
 *
 * Concurrency is by lanes: lane k runs its faults one after another, and there are
 * floor((members-1)/2) lanes, so at most a minority of members is faulty at any moment even when
 * a restart runs late; a fault never picks a member another lane holds.
 */
import type { Cluster, ClusterMember } from '../helpers/cluster.js';
import { Prng } from '../sim/prng.js';
import { FaultClient, errorText } from './client.js';
import { sleep, type RunClock, type Verdict } from './workload.js';

export const NEMESIS_PROFILES = ['mixed', 'pause-followers', 'none'] as const;
export type NemesisProfile = (typeof NEMESIS_PROFILES)[number];

export type FaultKind = 'kill' | 'pause';
/** Who to hit: the current leader, a member other than the leader, or any member. */
export type FaultTarget = 'leader' | 'follower' | 'random';

export interface PlannedFault {
  readonly lane: number;
  readonly kind: FaultKind;
  readonly target: FaultTarget;
  /** In [0, 1): chooses among the eligible members (sorted by name) where the rule leaves a choice. */
  readonly pick: number;
  /** Planned start, ms after the nemesis starts; a lane starts a fault no earlier, maybe later. */
  readonly atMs: number;
  /** kill: downtime before the restart; pause: SIGSTOP to SIGCONT. */
  readonly durationMs: number;
}

export interface NemesisPlan {
  readonly seed: number;
  readonly members: number;
  readonly durationMs: number;
  readonly profile: NemesisProfile;
  readonly lanes: number;
  /** Sorted by atMs, then lane. */
  readonly faults: readonly PlannedFault[];
}

export interface PlanOptions {
  readonly seed: number;
  readonly members: number;
  readonly durationMs: number;
  readonly profile?: NemesisProfile;
}

const PAUSE_MS = { min: 3_000, max: 10_000 } as const;
const DOWNTIME_MS = { min: 500, max: 4_000 } as const;
const GAP_MS = { min: 1_000, max: 4_000 } as const;
/** Profile pause-followers: short pauses, back to back, to produce stale followers often. */
const SHORT_PAUSE_MS = { min: 3_000, max: 4_000 } as const;
const SHORT_GAP_MS = { min: 500, max: 1_500 } as const;

/** Pure: the whole schedule, from the seed alone. */
export function planNemesis(options: PlanOptions): NemesisPlan {
  const profile = options.profile ?? 'mixed';
  const lanes = Math.floor((options.members - 1) / 2);
  const root = new Prng(options.seed);
  const faults: PlannedFault[] = [];
  for (let lane = 0; lane < lanes; lane += 1) {
    const prng = root.fork(); // one stream per lane: lanes never shift each other's draws
    if (profile !== 'none') faults.push(...planLane(prng, lane, profile, options.durationMs));
  }
  faults.sort((a, b) => a.atMs - b.atMs || a.lane - b.lane);
  return { seed: options.seed, members: options.members, durationMs: options.durationMs, profile, lanes, faults };
}

function planLane(prng: Prng, lane: number, profile: Exclude<NemesisProfile, 'none'>, durationMs: number): PlannedFault[] {
  const faults: PlannedFault[] = [];
  let at = prng.range(500, 2_500) + lane * prng.range(0, 3_000);
  // Bounded: every iteration advances `at` by at least a gap.
  while (faults.length < 1_000) {
    const fault = profile === 'mixed' ? mixedFault(prng, lane, at) : followerPause(prng, lane, at);
    if (fault.atMs + fault.durationMs > durationMs) break;
    faults.push(fault);
    const gap = profile === 'mixed' ? GAP_MS : SHORT_GAP_MS;
    at = fault.atMs + fault.durationMs + prng.range(gap.min, gap.max);
  }
  return faults;
}

function mixedFault(prng: Prng, lane: number, atMs: number): PlannedFault {
  const roll = prng.float();
  const kind: FaultKind = roll < 0.5 ? 'kill' : 'pause';
  const target: FaultTarget = prng.chance(0.5) ? 'leader' : 'random';
  const durationMs = kind === 'kill' ? prng.range(DOWNTIME_MS.min, DOWNTIME_MS.max) : prng.range(PAUSE_MS.min, PAUSE_MS.max);
  return { lane, kind, target, pick: prng.float(), atMs, durationMs };
}

function followerPause(prng: Prng, lane: number, atMs: number): PlannedFault {
  return { lane, kind: 'pause', target: 'follower', pick: prng.float(), atMs, durationMs: prng.range(SHORT_PAUSE_MS.min, SHORT_PAUSE_MS.max) };
}

export function describePlannedFault(fault: PlannedFault): string {
  const what = fault.kind === 'kill' ? `kill -9 ${fault.target}, restart after ${fault.durationMs} ms` : `pause ${fault.target} for ${fault.durationMs} ms`;
  return `+${(fault.atMs / 1000).toFixed(1)}s lane ${fault.lane}: ${what}`;
}

// ---------------------------------------------------------------------------------------------
// Execution.

/** A fault as it happened. Times are RunClock ms. */
export interface InjectedFault {
  readonly planned: PlannedFault;
  readonly member: string;
  /** Whether the member was the leader when hit (as far as the live members said). */
  readonly wasLeader: boolean;
  readonly startedAt: number;
  /** After SIGCONT, or after the restarted member's ready line. */
  readonly endedAt: number;
  /** Set when ending the fault failed (a restart that did not come up): a finding. */
  readonly error?: string;
}

export interface NemesisResult {
  readonly faults: readonly InjectedFault[];
  /** Planned faults that did not run (the window ended, or no member was eligible). */
  readonly skipped: number;
  /** Whether every member ended up running, unpaused, under one agreed leader. */
  readonly healed: boolean;
  readonly healError?: string;
  /** RunClock time at which the cluster was healed (or the heal gave up). */
  readonly healedAt: number;
}

const STATUS_DEADLINE_MS = 1_000;
const LEADER_LOOKUP_ATTEMPTS = 3;
const HEAL_LEADER_TIMEOUT_MS = 30_000;

export interface NemesisRun {
  readonly cluster: Cluster;
  readonly plan: NemesisPlan;
  readonly clock: RunClock;
  /** Progress lines (fault start and end), e.g. console.log; default silent. */
  readonly log?: (line: string) => void;
}

/** Executes the plan, bounded by plan.durationMs, then heals. Never leaves a member down or paused. */
export async function runNemesis(run: NemesisRun): Promise<NemesisResult> {
  const executor = new Executor(run);
  try {
    await executor.runLanes();
  } finally {
    await executor.heal();
  }
  return executor.result();
}

class Executor {
  private readonly busy = new Set<string>();
  private readonly faults: InjectedFault[] = [];
  private readonly statusClients = new Map<string, FaultClient>();
  /** Serializes claim(). */
  private claiming: Promise<void> = Promise.resolve();
  private readonly origin: number;
  private skipped = 0;
  private healed = false;
  private healError: string | undefined;
  private healedAt = 0;

  constructor(private readonly run: NemesisRun) {
    this.origin = run.clock.now();
  }

  private elapsed(): number {
    return this.run.clock.now() - this.origin;
  }

  async runLanes(): Promise<void> {
    const lanes = Array.from({ length: this.run.plan.lanes }, (_, lane) => this.runLane(this.run.plan.faults.filter((fault) => fault.lane === lane)));
    await Promise.all(lanes);
  }

  private async runLane(faults: readonly PlannedFault[]): Promise<void> {
    const end = this.run.plan.durationMs;
    for (const fault of faults) {
      const wait = fault.atMs - this.elapsed();
      if (wait > 0) await sleep(Math.min(wait, end));
      if (this.elapsed() >= end) {
        this.skipped += 1;
        continue;
      }
      await this.inject(fault);
    }
    const rest = end - this.elapsed();
    if (rest > 0) await sleep(rest);
  }

  /** One fault: choose the member, hit it, hold for the duration (cut at the window's end), end it. */
  private async inject(fault: PlannedFault): Promise<void> {
    const choice = await this.claim(fault);
    if (choice === undefined) {
      this.skipped += 1;
      return;
    }
    const { member, wasLeader } = choice;
    const startedAt = this.run.clock.now();
    this.log(`nemesis: ${fault.kind === 'kill' ? 'kill -9' : 'SIGSTOP'} ${member.name}${wasLeader ? ' (leader)' : ''}`);
    let error: string | undefined;
    try {
      await this.run.cluster.kill(member, fault.kind === 'kill' ? 'SIGKILL' : 'SIGSTOP');
      const hold = Math.min(fault.durationMs, this.run.plan.durationMs - this.elapsed());
      if (hold > 0) await sleep(hold);
      if (fault.kind === 'pause') await this.run.cluster.kill(member, 'SIGCONT');
      else await this.restart(member);
    } catch (caught) {
      error = longError(caught);
      this.log(`nemesis: ending the fault on ${member.name} failed: ${error}`);
    } finally {
      this.busy.delete(member.name);
    }
    const endedAt = this.run.clock.now();
    this.log(`nemesis: ${fault.kind === 'kill' ? 'restarted' : 'SIGCONT'} ${member.name}`);
    this.faults.push({ planned: fault, member: member.name, wasLeader, startedAt, endedAt, ...(error === undefined ? {} : { error }) });
  }

  /**
   * Chooses the member and marks it busy, one lane at a time (two lanes must not both pick the
   * leader). Undefined when no member is eligible or when a minority is down already: a member
   * that stayed down (a failed restart) counts against the minority too.
   */
  private claim(fault: PlannedFault): Promise<{ member: ClusterMember; wasLeader: boolean } | undefined> {
    const claimed = this.claiming.then(async () => {
      const unhealthy = this.run.cluster.members.filter((other) => this.busy.has(other.name) || !other.running || other.paused).length;
      if (unhealthy + 1 > this.run.plan.lanes) {
        this.log(`nemesis: skipping a ${fault.kind}: ${unhealthy} member(s) already down or paused`);
        return undefined;
      }
      const choice = await this.choose(fault);
      if (choice !== undefined) this.busy.add(choice.member.name);
      return choice;
    });
    this.claiming = claimed.then(() => undefined, () => undefined);
    return claimed;
  }

  /** A restart, tried once more if the member does not come up: the first failure is a finding either way. */
  private async restart(member: ClusterMember): Promise<void> {
    try {
      await this.run.cluster.restart(member);
    } catch (caught) {
      this.log(`nemesis: restart of ${member.name} failed, trying once more: ${errorText(caught)}`);
      try {
        await this.run.cluster.restart(member);
      } catch (again) {
        throw new Error(`${longError(caught)}\nsecond attempt: ${longError(again)}`);
      }
      throw caught;
    }
  }

  /** The member the fault's rule names among the healthy ones not held by another lane. */
  private async choose(fault: PlannedFault): Promise<{ member: ClusterMember; wasLeader: boolean } | undefined> {
    const eligible = this.run.cluster.members
      .filter((member) => member.running && !member.paused && !this.busy.has(member.name))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    if (eligible.length === 0) return undefined;
    // A random target needs no leader; one quick look still tells the report whether it hit one.
    const leader = await this.findLeader(fault.target === 'random' ? 1 : LEADER_LOOKUP_ATTEMPTS);
    const pickFrom = (members: readonly ClusterMember[]): ClusterMember | undefined => members[Math.floor(fault.pick * members.length)];
    if (fault.target === 'leader' && leader !== undefined && eligible.includes(leader)) return { member: leader, wasLeader: true };
    const candidates = fault.target === 'follower' && leader !== undefined ? eligible.filter((member) => member !== leader) : eligible;
    const member = pickFrom(candidates);
    return member === undefined ? undefined : { member, wasLeader: member === leader };
  }

  /** The member most live members name as leader, via Maintenance.Status; undefined if none. */
  private async findLeader(attempts: number): Promise<ClusterMember | undefined> {
    for (let attempt = 0; attempt < attempts; attempt += 1) {
      const live = this.run.cluster.members.filter((member) => member.running && !member.paused);
      const answers = await Promise.all(live.map(async (member) => {
        try {
          const status = await this.statusClient(member).unary<{ header: { member_id: string }; leader: string }>('Maintenance', 'Status', {}, STATUS_DEADLINE_MS);
          return { member, id: status.header.member_id, leader: status.leader };
        } catch {
          return undefined;
        }
      }));
      const known = answers.filter((answer) => answer !== undefined);
      const votes = new Map<string, number>();
      for (const answer of known) if (answer.leader !== '0') votes.set(answer.leader, (votes.get(answer.leader) ?? 0) + 1);
      const top = [...votes.entries()].sort((a, b) => b[1] - a[1])[0];
      const leader = top === undefined ? undefined : known.find((answer) => answer.id === top[0])?.member;
      if (leader !== undefined) return leader;
      if (attempt + 1 < attempts) await sleep(300);
    }
    return undefined;
  }

  private statusClient(member: ClusterMember): FaultClient {
    let client = this.statusClients.get(member.name);
    if (client === undefined) {
      client = new FaultClient(`nemesis@${member.name}`, member.name, member.endpoint);
      this.statusClients.set(member.name, client);
    }
    return client;
  }

  /** Every member running and continued, then one leader that all agree on (bounded). */
  async heal(): Promise<void> {
    const errors: string[] = [];
    for (const member of this.run.cluster.members) {
      try {
        if (member.paused) await this.run.cluster.kill(member, 'SIGCONT');
        if (!member.running) await this.run.cluster.restart(member);
      } catch (caught) {
        errors.push(`${member.name}: ${longError(caught)}`);
      }
    }
    try {
      await this.run.cluster.waitForLeader(HEAL_LEADER_TIMEOUT_MS);
    } catch (caught) {
      errors.push(`no agreed leader after the heal: ${caught instanceof Error ? caught.message.slice(0, 2_000) : String(caught)}`);
    }
    for (const client of this.statusClients.values()) client.close();
    this.statusClients.clear();
    this.healed = errors.length === 0;
    this.healError = errors.length === 0 ? undefined : errors.join('\n');
    this.healedAt = this.run.clock.now();
    this.log(`nemesis: healed${this.healed ? '' : ` with errors: ${this.healError}`}`);
  }

  result(): NemesisResult {
    return {
      faults: [...this.faults].sort((a, b) => a.startedAt - b.startedAt),
      skipped: this.skipped,
      healed: this.healed,
      ...(this.healError === undefined ? {} : { healError: this.healError }),
      healedAt: this.healedAt,
    };
  }

  private log(line: string): void {
    this.run.log?.(`[${(this.run.clock.now() / 1000).toFixed(1)}s] ${line}`);
  }
}

/** An error with the member output tails it carries, bounded. */
function longError(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.length > 6_000 ? `${text.slice(0, 6_000)}…` : text;
}

/** The nemesis's own verdict: every fault ended cleanly and the cluster healed. */
export function nemesisVerdict(result: NemesisResult): Verdict {
  const failedEnds = result.faults.filter((fault) => fault.error !== undefined);
  const details = [
    ...failedEnds.map((fault) => `${fault.member}: ${fault.planned.kind} did not end cleanly: ${fault.error}`),
    ...(result.healError === undefined ? [] : [result.healError]),
  ];
  const valid = failedEnds.length === 0 && result.healed;
  return {
    checker: 'nemesis (restarts come up, cluster heals)',
    valid,
    summary: valid ? `${result.faults.length} faults ended cleanly; healed with one agreed leader` : `${details.length} problem(s)`,
    details,
  };
}
