/**
 * Workload (c), election: a few candidates, each connected to every member, campaign
 * (client/election.ts), hold the leadership a short random time, maybe proclaim a new value,
 * then resign, in a loop; one observer per member follows `observe()` on that member alone and
 * records every leader change. Checked by checkElection (election-checker.ts): at most one
 * leader per term (the term is the leader key's create revision) over claims and observations,
 * and every observer's sequence is consistent with one global order.
 *
 * A leader's value is its candidate name (`c1`), with `#n` appended by its n-th proclaim, so an
 * observation names the candidate whatever was proclaimed. Sessions have short TTLs, so faults
 * expire them; a candidate whose campaign or resign fails revokes its session (its queue key
 * goes with it) and campaigns again on a new one.
 *
 * The end is arranged so that observers can be compared: when the run stops, the leader keeps
 * its leadership (the others stop campaigning), a linearizable read fixes the final leader (one
 * more campaign supplies one if there is none), every observer gets a bounded time to see it,
 * and only then do observers stop and sessions close. Observers and that final read must then
 * end on the same leadership.
 */
import type { Client, Election, KeyValue, Session } from '../../client/index.js';
import { Prng } from '../sim/prng.js';
import { classifyClientError, clientErrorText, libraryClient, openSession, type FaultClient } from './client.js';
import { checkElection, type LeaderClaim, type Leadership, type Observer } from './election-checker.js';
import { sleep, type RecordedOp, type RunClock, type Verdict, type Workload, type WorkloadHistory } from './workload.js';

export interface ElectionWorkloadOptions {
  readonly seed: number;
  readonly clock: RunClock;
  readonly prefix: string;
  /** Default 3. */
  readonly candidates?: number;
  /** Session (lease) TTL; default 3 s. */
  readonly sessionTtlSeconds?: number;
  /** How long a leader holds before resigning; default 100..1000 ms. */
  readonly holdMs?: { readonly min: number; readonly max: number };
  /** Bound on one campaign; default 8 s. */
  readonly campaignTimeoutMs?: number;
  /** Bound on one proclaim, resign, session or read call (retries included); default 2 s. */
  readonly deadlineMs?: number;
  /** How long observers get to catch up with the final leader; default 10 s. */
  readonly convergeTimeoutMs?: number;
}

export type ElectionDetail =
  | { readonly type: 'campaign'; readonly term?: number }
  | { readonly type: 'proclaim'; readonly term: number; readonly value: string }
  | { readonly type: 'resign'; readonly term: number };

/** A leadership as an observer saw it, with the store revision of the change. */
export interface ObservedLeadership extends Leadership {
  readonly revision: number;
}

export interface ElectionHistory extends WorkloadHistory<ElectionDetail> {
  readonly claims: readonly LeaderClaim[];
  /** The observers, then the final linearizable read as one more (named "final read"). */
  readonly observers: readonly Observer[];
}

interface ElectionSettings {
  readonly candidates: number;
  readonly sessionTtlSeconds: number;
  readonly holdMs: { readonly min: number; readonly max: number };
  readonly campaignTimeoutMs: number;
  readonly deadlineMs: number;
  readonly convergeTimeoutMs: number;
}

/** A candidate's state across rounds; `session` survives the run when it ends as the leader. */
interface Candidate {
  readonly name: string;
  readonly client: Client;
  session: Session | undefined;
}

/** An observer's record; `last` is the latest change (leader or none), for the final wait. */
interface ObserverRecord {
  readonly name: string;
  readonly seen: ObservedLeadership[];
  last: { key: string; modRevision: bigint } | null | undefined;
  errors: number;
}

const FINAL_READ = 'final read';

export class ElectionWorkload implements Workload<ElectionHistory> {
  readonly name = 'election';
  /** One per member: the observers' members, and the candidates' endpoints. */
  readonly clientsPerMember = 1;
  private readonly settings: ElectionSettings;

  constructor(private readonly options: ElectionWorkloadOptions) {
    this.settings = {
      candidates: options.candidates ?? 3,
      sessionTtlSeconds: options.sessionTtlSeconds ?? 3,
      holdMs: options.holdMs ?? { min: 100, max: 1_000 },
      campaignTimeoutMs: options.campaignTimeoutMs ?? 8_000,
      deadlineMs: options.deadlineMs ?? 2_000,
      convergeTimeoutMs: options.convergeTimeoutMs ?? 10_000,
    };
  }

  private get electionName(): string {
    return `${this.options.prefix}/election`;
  }

  async start(clients: readonly FaultClient[], signal: AbortSignal): Promise<ElectionHistory> {
    const startedAt = this.options.clock.now();
    const endpoints = clients.map((client) => client.endpoint);
    const candidates: Candidate[] = Array.from({ length: this.settings.candidates }, (_, index) => ({ name: `c${index}`, client: libraryClient(endpoints, index, this.settings.deadlineMs), session: undefined }));
    // An observer talks to its member only: each member's watch must tell the same story.
    const observerClients = clients.map((client) => libraryClient([client.endpoint], 0, this.settings.deadlineMs));
    const records: ObserverRecord[] = clients.map((client) => ({ name: `${this.name}/observer@${client.member}`, seen: [], last: undefined, errors: 0 }));
    const observing = new AbortController();
    try {
      const observers = observerClients.map((client, index) => this.observe(client, records[index] as ObserverRecord, observing.signal));
      const root = new Prng(this.options.seed);
      const ops: RecordedOp<ElectionDetail>[] = [];
      const claims: LeaderClaim[] = [];
      await Promise.all(candidates.map((candidate) => this.candidate(candidate, root.fork(), ops, claims, signal)));
      const stoppedAt = this.options.clock.now();
      const final = await this.finalLeader(candidates, ops, claims);
      const caughtUp = await this.converge(records, final);
      observing.abort();
      await Promise.all(observers);
      return { workload: this.name, ops, startedAt, stoppedAt, claims, observers: observerList(records, final, caughtUp) };
    } finally {
      observing.abort();
      await Promise.all(candidates.map((candidate) => candidate.session?.close({ timeoutMs: this.settings.deadlineMs }).catch(() => undefined)));
      for (const client of [...candidates.map((candidate) => candidate.client), ...observerClients]) client.close();
    }
  }

  /**
   * One candidate: campaign, hold, maybe proclaim, resign, until the signal aborts. A leader
   * when the signal aborts keeps its leadership (and its session) for the final comparison.
   */
  private async candidate(candidate: Candidate, prng: Prng, ops: RecordedOp<ElectionDetail>[], claims: LeaderClaim[], signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      candidate.session ??= await this.openSession(candidate.client, prng, signal);
      const session = candidate.session;
      if (session === undefined) continue;
      const election = candidate.client.election(this.electionName, { session });
      const term = await this.campaign(candidate, election, ops, claims, signal);
      let keep = term !== undefined;
      if (term !== undefined) {
        await sleep(prng.range(this.settings.holdMs.min, this.settings.holdMs.max), signal);
        if (signal.aborted) return;
        if (prng.chance(0.5)) {
          keep = await this.proclaim(candidate, election, term, `${candidate.name}#${prng.int(1_000_000)}`, ops);
          await sleep(prng.int(200), signal);
          if (signal.aborted && keep) return;
        }
        keep = keep && (await this.resign(candidate, election, term, ops));
      }
      if (!keep || session.state === 'expired' || session.state === 'closed') await this.dropSession(candidate);
      await sleep(50 + prng.int(150), signal);
    }
  }

  /** The term when elected, else undefined (recorded either way). */
  private async campaign(candidate: Candidate, election: Election, ops: RecordedOp<ElectionDetail>[], claims: LeaderClaim[], signal: AbortSignal): Promise<number | undefined> {
    const clock = this.options.clock;
    const invokeTime = clock.now();
    const base = { client: `${this.name}/${candidate.name}`, kind: 'campaign', invokeTime };
    try {
      const leadership = await election.campaign(candidate.name, { signal: AbortSignal.any([signal, AbortSignal.timeout(this.settings.campaignTimeoutMs)]) });
      const term = Number(leadership.revision);
      claims.push({ candidate: candidate.name, term });
      ops.push({ ...base, completeTime: clock.now(), outcome: 'ok', wrote: true, detail: { type: 'campaign', term } });
      return term;
    } catch (error) {
      const outcome = classifyClientError(error, { wait: true });
      ops.push({ ...base, completeTime: outcome === 'indeterminate' ? Infinity : clock.now(), outcome, wrote: false, error: clientErrorText(error), detail: { type: 'campaign' } });
      return undefined;
    }
  }

  /** True when the proclaim was acknowledged (the leadership still held). */
  private async proclaim(candidate: Candidate, election: Election, term: number, value: string, ops: RecordedOp<ElectionDetail>[]): Promise<boolean> {
    const clock = this.options.clock;
    const invokeTime = clock.now();
    const base = { client: `${this.name}/${candidate.name}`, kind: 'proclaim', invokeTime };
    try {
      await election.proclaim(value, { timeoutMs: this.settings.deadlineMs });
      ops.push({ ...base, completeTime: clock.now(), outcome: 'ok', wrote: true, detail: { type: 'proclaim', term, value } });
      return true;
    } catch (error) {
      const outcome = classifyClientError(error);
      ops.push({ ...base, completeTime: outcome === 'indeterminate' ? Infinity : clock.now(), outcome, wrote: false, error: clientErrorText(error), detail: { type: 'proclaim', term, value } });
      return false;
    }
  }

  private async resign(candidate: Candidate, election: Election, term: number, ops: RecordedOp<ElectionDetail>[]): Promise<boolean> {
    const clock = this.options.clock;
    const invokeTime = clock.now();
    const base = { client: `${this.name}/${candidate.name}`, kind: 'resign', invokeTime };
    try {
      await election.resign({ timeoutMs: this.settings.deadlineMs });
      ops.push({ ...base, completeTime: clock.now(), outcome: 'ok', wrote: true, detail: { type: 'resign', term } });
      return true;
    } catch (error) {
      const outcome = classifyClientError(error);
      ops.push({ ...base, completeTime: outcome === 'indeterminate' ? Infinity : clock.now(), outcome, wrote: false, error: clientErrorText(error), detail: { type: 'resign', term } });
      return false;
    }
  }

  private openSession(client: Client, prng: Prng, signal: AbortSignal): Promise<Session | undefined> {
    return openSession(client, this.settings, prng, signal);
  }

  /** Revokes the candidate's lease (its queue key goes with it); bounded, best effort: else it expires. */
  private async dropSession(candidate: Candidate): Promise<void> {
    const session = candidate.session;
    candidate.session = undefined;
    await session?.close({ timeoutMs: this.settings.deadlineMs }).catch(() => undefined);
  }

  /** Follows the election on one member until `signal` aborts, starting over after an error. */
  private async observe(client: Client, record: ObserverRecord, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        for await (const change of client.election(this.electionName).observe({ signal })) {
          record.last = change.leader === undefined ? null : { key: change.leader.key.toString('hex'), modRevision: change.leader.modRevision };
          if (change.leader !== undefined) record.seen.push({ ...leadershipOf(change.leader), revision: Number(change.revision) });
        }
      } catch {
        record.errors += 1;
      }
      await sleep(100, signal);
    }
  }

  /**
   * The leader after the candidates stopped, by a linearizable read; when there is none, one
   * more bounded campaign (by the first candidate, on a new session) makes one.
   */
  private async finalLeader(candidates: readonly Candidate[], ops: RecordedOp<ElectionDetail>[], claims: LeaderClaim[]): Promise<KeyValue | undefined> {
    const first = candidates[0];
    if (first === undefined) return undefined;
    const leader = await this.readLeader(first.client);
    if (leader !== null) return leader;
    await this.dropSession(first);
    first.session = await this.openSession(first.client, new Prng(this.options.seed), new AbortController().signal);
    if (first.session === undefined) return undefined;
    const election = first.client.election(this.electionName, { session: first.session });
    if ((await this.campaign(first, election, ops, claims, new AbortController().signal)) === undefined) return undefined;
    return (await this.readLeader(first.client)) ?? undefined;
  }

  /** The leader by a linearizable read, retried within the convergence bound; null when none. */
  private async readLeader(client: Client): Promise<KeyValue | null | undefined> {
    const deadline = Date.now() + this.settings.convergeTimeoutMs;
    while (Date.now() < deadline) {
      try {
        const { kvs } = await client.kv.get(`${this.electionName}/`, { prefix: true, sort: { target: 'create', order: 'ascend' }, limit: 1, timeoutMs: this.settings.deadlineMs });
        return kvs[0] ?? null;
      } catch {
        await sleep(250);
      }
    }
    return undefined;
  }

  /** Waits (bounded) until every observer's latest change is the final leader; which ones did. */
  private async converge(records: readonly ObserverRecord[], final: KeyValue | undefined): Promise<Set<string>> {
    if (final === undefined) return new Set();
    const caughtUp = (record: ObserverRecord): boolean => record.last?.key === final.key.toString('hex') && record.last.modRevision === final.modRevision;
    const deadline = Date.now() + this.settings.convergeTimeoutMs;
    while (Date.now() < deadline && !records.every(caughtUp)) await sleep(100);
    return new Set(records.filter(caughtUp).map((record) => record.name));
  }

  check(history: ElectionHistory): Verdict[] {
    return [checkElection({ claims: history.claims, observers: history.observers })];
  }
}

/** Pure: a leader key as a leadership: its create revision and the candidate named by its value. */
export function leadershipOf(leader: Pick<KeyValue, 'createRevision' | 'value'>): Leadership {
  const value = leader.value.toString('utf8');
  const hash = value.indexOf('#');
  return { term: Number(leader.createRevision), leader: hash < 0 ? value : value.slice(0, hash) };
}

/**
 * The observers for the checker. When a final leader exists, every observer counts as having
 * watched until the end (one that did not catch up within the bound then disagrees, and that
 * is reported), and the final read joins them; without one, no final comparison is made.
 */
function observerList(records: readonly ObserverRecord[], final: KeyValue | undefined, caughtUp: ReadonlySet<string>): Observer[] {
  const observers: Observer[] = records.map((record) => ({ name: caughtUp.has(record.name) || final === undefined ? record.name : `${record.name} (not caught up, ${record.errors} restarts)`, seen: record.seen, untilEnd: final !== undefined }));
  if (final !== undefined) observers.push({ name: FINAL_READ, seen: [leadershipOf(final)], untilEnd: true });
  return observers;
}
