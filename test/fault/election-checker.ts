/**
 * The election checker, for the election workload (c): candidates campaign and resign, observers
 * follow the leader. Pure; no cluster.
 *
 * A leadership is (term, leader): the term (or epoch) is what orders leaderships, e.g. the
 * create revision of the leader's key in etcd's election recipe.
 * - At most one leader per term, over every claim (a campaign that returned elected) and every
 *   observation.
 * - Observers agree on the order: the union of their sequences (consecutive repeats collapsed)
 *   must have a single global order, which must also rise in term; each observer's sequence is
 *   then a subsequence of it (an observer may start late, stop early, or miss a short-lived
 *   leader, but never sees two leaderships in the other order, nor one twice).
 * - Observers that watched until the end (after the heal) end on the same leadership.
 */
import type { Verdict } from './workload.js';

export interface Leadership {
  readonly term: number;
  readonly leader: string;
}

export interface Observer {
  readonly name: string;
  /** What it saw, in the order it saw it. */
  readonly seen: readonly Leadership[];
  /** True when it kept observing until after the heal: its last leadership is the final one. */
  readonly untilEnd?: boolean;
}

/** A campaign that returned: `candidate` believes it leads in `term`. */
export interface LeaderClaim {
  readonly candidate: string;
  readonly term: number;
}

export interface ElectionInput {
  readonly claims: readonly LeaderClaim[];
  readonly observers: readonly Observer[];
}

const identity = (l: Leadership): string => `${l.term}:${l.leader}`;

export function checkElection(input: ElectionInput): Verdict {
  const sequences = input.observers.map((observer) => ({ name: observer.name, seen: collapse(observer.seen), untilEnd: observer.untilEnd === true }));
  const problems = [
    ...onePerTerm(input.claims, sequences),
    ...observerOrder(sequences),
    ...finalAgreement(sequences),
  ];
  const order = problems.length === 0 ? globalOrder(sequences) : null;
  const terms = new Set([...input.claims.map((claim) => claim.term), ...sequences.flatMap((s) => s.seen.map((l) => l.term))]).size;
  return {
    checker: 'election (one leader per term, observers agree on the order)',
    valid: problems.length === 0,
    summary: problems.length === 0 ? `${terms} terms, ${input.observers.length} observers in one order of ${order?.length ?? 0} leaderships` : `${problems.length} violation(s)`,
    details: problems.slice(0, 50),
  };
}

/** Drops consecutive repeats (a re-delivered or re-read leadership). */
function collapse(seen: readonly Leadership[]): Leadership[] {
  const out: Leadership[] = [];
  for (const leadership of seen) {
    const last = out[out.length - 1];
    if (last === undefined || identity(last) !== identity(leadership)) out.push(leadership);
  }
  return out;
}

function onePerTerm(claims: readonly LeaderClaim[], sequences: readonly { name: string; seen: readonly Leadership[] }[]): string[] {
  const leaders = new Map<number, Map<string, string>>(); // term -> leader -> who said so
  const note = (term: number, leader: string, source: string): void => {
    let byLeader = leaders.get(term);
    if (byLeader === undefined) leaders.set(term, (byLeader = new Map()));
    if (!byLeader.has(leader)) byLeader.set(leader, source);
  };
  for (const claim of claims) note(claim.term, claim.candidate, `claim of ${claim.candidate}`);
  for (const sequence of sequences) for (const l of sequence.seen) note(l.term, l.leader, `observer ${sequence.name}`);
  const problems: string[] = [];
  for (const [term, byLeader] of leaders) {
    if (byLeader.size > 1) problems.push(`term ${term} has ${byLeader.size} leaders: ${[...byLeader].map(([leader, source]) => `${leader} (${source})`).join(', ')}`);
  }
  return problems;
}

/** Each sequence rises in term and never returns to a leadership; the union has no cycle. */
function observerOrder(sequences: readonly { name: string; seen: readonly Leadership[] }[]): string[] {
  const problems: string[] = [];
  for (const { name, seen } of sequences) {
    const visited = new Set<string>();
    for (const [index, l] of seen.entries()) {
      const previous = seen[index - 1];
      if (visited.has(identity(l))) problems.push(`observer ${name} saw term ${l.term} (${l.leader}) again after another leader`);
      else if (previous !== undefined && l.term <= previous.term) problems.push(`observer ${name} saw term ${l.term} (${l.leader}) after term ${previous.term} (${previous.leader})`);
      visited.add(identity(l));
    }
  }
  if (problems.length === 0 && globalOrder(sequences) === null) problems.push('observers saw leaderships in orders that no single order reconciles');
  return problems;
}

/**
 * Kahn's topological sort of the "seen before" edges between consecutive observations; null
 * when they form a cycle (two observers disagree on the order).
 */
export function globalOrder(sequences: readonly { seen: readonly Leadership[] }[]): Leadership[] | null {
  const nodes = new Map<string, Leadership>();
  const edges = new Map<string, Set<string>>();
  const indegree = new Map<string, number>();
  for (const { seen } of sequences) {
    for (const l of seen) {
      if (!nodes.has(identity(l))) {
        nodes.set(identity(l), l);
        edges.set(identity(l), new Set());
        indegree.set(identity(l), 0);
      }
    }
    for (let index = 1; index < seen.length; index += 1) {
      const from = identity(seen[index - 1] as Leadership);
      const to = identity(seen[index] as Leadership);
      const out = edges.get(from) as Set<string>;
      if (from !== to && !out.has(to)) {
        out.add(to);
        indegree.set(to, (indegree.get(to) ?? 0) + 1);
      }
    }
  }
  // Among ready nodes take the lowest term first, so the order is deterministic.
  const ready = [...nodes.keys()].filter((key) => indegree.get(key) === 0);
  const order: Leadership[] = [];
  while (ready.length > 0) {
    ready.sort((a, b) => (nodes.get(a) as Leadership).term - (nodes.get(b) as Leadership).term);
    const key = ready.shift() as string;
    order.push(nodes.get(key) as Leadership);
    for (const next of edges.get(key) ?? []) {
      const left = (indegree.get(next) ?? 0) - 1;
      indegree.set(next, left);
      if (left === 0) ready.push(next);
    }
  }
  return order.length === nodes.size ? order : null;
}

function finalAgreement(sequences: readonly { name: string; seen: readonly Leadership[]; untilEnd: boolean }[]): string[] {
  const finals = sequences.filter((s) => s.untilEnd && s.seen.length > 0).map((s) => ({ name: s.name, last: s.seen[s.seen.length - 1] as Leadership }));
  const distinct = new Set(finals.map((f) => identity(f.last)));
  if (distinct.size <= 1) return [];
  return [`observers that watched until the end disagree on the final leader: ${finals.map((f) => `${f.name}: term ${f.last.term} ${f.last.leader}`).join('; ')}`];
}
