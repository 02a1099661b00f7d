/**
 * The fencing checker, for the lock workload (b): lock holders append (client, fencing token)
 * to a log through a fenced Txn, and the log is read back at the end. Pure; no cluster.
 *
 * In log order (by the append's revision):
 * - tokens never go down: an append whose token is below one already in the log came from a
 *   holder that had been superseded, and must not have committed;
 * - a token belongs to one holder: two clients appending with the same token means two holders
 *   were granted one token (one holder may append several times in its critical section, so
 *   equal consecutive tokens of the same client are fine; across holders tokens strictly rise);
 * - given the grants (when a holder's lock became effective, as a revision), no append with a
 *   lower token commits after a higher token was granted;
 * - given the clients' attempts: every acknowledged append is in the log, no append that
 *   definitely failed or was never attempted is, and none is in it twice.
 */
import type { Outcome, Verdict } from './workload.js';

/** One committed append, as read back from the log. */
export interface FencedAppend {
  /** Unique per attempt (client and sequence), so duplicates and strangers are visible. */
  readonly id: string;
  readonly client: string;
  readonly token: number;
  /** The revision at which the append committed: its position in the log. */
  readonly revision: number;
}

/** One append as the client saw it. */
export interface AppendAttempt {
  readonly id: string;
  readonly client: string;
  readonly token: number;
  readonly outcome: Outcome;
}

/** A lock grant: from `revision` on, `client` held the lock with `token`. */
export interface LockGrant {
  readonly client: string;
  readonly token: number;
  readonly revision: number;
}

export interface FencingInput {
  readonly log: readonly FencedAppend[];
  readonly attempts?: readonly AppendAttempt[];
  readonly grants?: readonly LockGrant[];
}

const SHOW = 10;

export function checkFencing(input: FencingInput): Verdict {
  const log = [...input.log].sort((a, b) => a.revision - b.revision);
  const problems = [
    ...duplicates(log),
    ...tokenOrder(log),
    ...staleAfterGrant(log, input.grants ?? []),
    ...(input.attempts === undefined ? [] : againstAttempts(log, input.attempts)),
  ];
  const holders = new Set(log.map((append) => append.token)).size;
  return {
    checker: 'fencing (tokens rise in log order, no stale holder commits)',
    valid: problems.length === 0,
    summary: problems.length === 0 ? `${log.length} appends from ${holders} holders in token order` : `${problems.length} violation(s)`,
    details: problems.slice(0, 50),
  };
}

function duplicates(log: readonly FencedAppend[]): string[] {
  const problems: string[] = [];
  const ids = new Map<string, number>();
  const revisions = new Map<number, string>();
  for (const append of log) {
    const first = ids.get(append.id);
    if (first !== undefined) problems.push(`append ${append.id} committed twice (revisions ${first} and ${append.revision})`);
    else ids.set(append.id, append.revision);
    const other = revisions.get(append.revision);
    if (other !== undefined) problems.push(`appends ${other} and ${append.id} claim one revision ${append.revision}`);
    else revisions.set(append.revision, append.id);
  }
  return problems;
}

/** Log order: tokens never decrease, and each token has one client. */
function tokenOrder(log: readonly FencedAppend[]): string[] {
  const problems: string[] = [];
  const owner = new Map<number, FencedAppend>();
  let highest: FencedAppend | undefined;
  for (const append of log) {
    const first = owner.get(append.token);
    if (first === undefined) owner.set(append.token, append);
    else if (first.client !== append.client) {
      problems.push(`token ${append.token} used by two holders: ${first.client} (rev ${first.revision}) and ${append.client} (rev ${append.revision})`);
    }
    if (highest !== undefined && append.token < highest.token) {
      problems.push(`stale append committed: ${append.client} token ${append.token} at rev ${append.revision}, after ${highest.client} token ${highest.token} at rev ${highest.revision}`);
    }
    if (highest === undefined || append.token > highest.token) highest = append;
  }
  return problems;
}

/** No append with token t commits after a grant of a token above t. */
function staleAfterGrant(log: readonly FencedAppend[], grants: readonly LockGrant[]): string[] {
  const problems: string[] = [];
  const sorted = [...grants].sort((a, b) => a.revision - b.revision);
  for (const append of log) {
    const superseding = sorted.find((grant) => grant.revision < append.revision && grant.token > append.token);
    if (superseding !== undefined) {
      problems.push(`stale append committed: ${append.client} token ${append.token} at rev ${append.revision}, after ${superseding.client} was granted token ${superseding.token} at rev ${superseding.revision}`);
    }
  }
  return problems;
}

function againstAttempts(log: readonly FencedAppend[], attempts: readonly AppendAttempt[]): string[] {
  const problems: string[] = [];
  const inLog = new Map(log.map((append) => [append.id, append]));
  const byId = new Map(attempts.map((attempt) => [attempt.id, attempt]));
  const lost = attempts.filter((attempt) => attempt.outcome === 'ok' && !inLog.has(attempt.id));
  if (lost.length > 0) problems.push(`${lost.length} acknowledged appends missing from the log: ${lost.slice(0, SHOW).map((a) => a.id).join(', ')}`);
  for (const append of log) {
    const attempt = byId.get(append.id);
    if (attempt === undefined) problems.push(`append ${append.id} in the log was never attempted`);
    else if (attempt.outcome === 'fail') problems.push(`append ${append.id} failed for its client but is in the log (rev ${append.revision})`);
    else if (attempt.token !== append.token || attempt.client !== append.client) {
      problems.push(`append ${append.id} in the log says ${append.client}/${append.token}, the client sent ${attempt.client}/${attempt.token}`);
    }
  }
  return problems;
}
