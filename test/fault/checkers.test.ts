// Goal: the fault test's pure parts — checkers, nemesis planning, error classification, report
// figures — give the right answers on small synthetic histories, with no cluster.
import { describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import type { KvOp } from '../checker/linearizability.js';
import { DeadlineExceededError, ElectionNotLeaderError, LeaderChangedError, LockLostError, NoLeaderError, SessionExpiredError, UnavailableError } from '../../client/index.js';
import { classifyClientError, classifyError } from './client.js';
import { leadershipOf } from './election.js';
import { checkElection, type Leadership } from './election-checker.js';
import { checkFencing, type AppendAttempt, type FencedAppend } from './fencing-checker.js';
import { parseAppend } from './lock.js';
import { planNemesis } from './nemesis.js';
import { checkRegisterHistory } from './register.js';
import { longestNoWriteWindow, summarizeWarnings } from './report.js';
import { checkSet, type SetAttempt } from './set.js';
import type { RecordedOp } from './workload.js';

function serviceError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(`${code} ${details}`), { code, details, metadata: new grpc.Metadata() });
}

describe('fencing checker', () => {
  const append = (id: string, client: string, token: number, revision: number): FencedAppend => ({ id, client, token, revision });

  it('accepts rising tokens, with several appends per holder', () => {
    const log = [append('a1', 'a', 5, 10), append('a2', 'a', 5, 11), append('b1', 'b', 9, 14), append('c1', 'c', 12, 20)];
    const attempts: AppendAttempt[] = [...log.map((l) => ({ id: l.id, client: l.client, token: l.token, outcome: 'ok' as const })), { id: 'd1', client: 'd', token: 15, outcome: 'indeterminate' }];
    expect(checkFencing({ log, attempts, grants: [{ client: 'b', token: 9, revision: 12 }] }).valid).toBe(true);
  });

  it('catches a stale holder whose append commits after a higher token', () => {
    const verdict = checkFencing({ log: [append('a1', 'a', 5, 10), append('b1', 'b', 9, 14), append('a2', 'a', 5, 15)] });
    expect(verdict.valid).toBe(false);
    expect(verdict.details.join('\n')).toMatch(/stale append committed: a token 5 at rev 15/);
  });

  it('sorts by revision, not by the order the log was given in', () => {
    expect(checkFencing({ log: [append('b1', 'b', 9, 14), append('a1', 'a', 5, 10)] }).valid).toBe(true);
  });

  it('catches two holders with one token', () => {
    const verdict = checkFencing({ log: [append('a1', 'a', 5, 10), append('b1', 'b', 5, 11)] });
    expect(verdict.valid).toBe(false);
    expect(verdict.details.join('\n')).toMatch(/token 5 used by two holders/);
  });

  it('catches an append after a higher token was granted, before that holder appended', () => {
    const verdict = checkFencing({ log: [append('a1', 'a', 5, 10), append('a2', 'a', 5, 13), append('b1', 'b', 9, 14)], grants: [{ client: 'b', token: 9, revision: 12 }] });
    expect(verdict.valid).toBe(false);
    expect(verdict.details.join('\n')).toMatch(/after b was granted token 9 at rev 12/);
  });

  it('catches lost, failed-but-present, unknown and duplicated appends', () => {
    const log = [append('a1', 'a', 5, 10), append('a1', 'a', 5, 11), append('x', 'x', 6, 12), append('f', 'a', 5, 13)];
    const attempts: AppendAttempt[] = [
      { id: 'a1', client: 'a', token: 5, outcome: 'ok' },
      { id: 'lost', client: 'a', token: 5, outcome: 'ok' },
      { id: 'f', client: 'a', token: 5, outcome: 'fail' },
    ];
    const details = checkFencing({ log, attempts }).details.join('\n');
    expect(details).toMatch(/committed twice/);
    expect(details).toMatch(/1 acknowledged appends missing from the log: lost/);
    expect(details).toMatch(/append x in the log was never attempted/);
    expect(details).toMatch(/append f failed for its client but is in the log/);
  });
});

describe('election checker', () => {
  const l = (term: number, leader: string): Leadership => ({ term, leader });

  it('accepts observers that see subsequences of one order', () => {
    const verdict = checkElection({
      claims: [{ candidate: 'a', term: 3 }, { candidate: 'b', term: 7 }, { candidate: 'c', term: 9 }],
      observers: [
        { name: 'o1', seen: [l(3, 'a'), l(3, 'a'), l(7, 'b'), l(9, 'c')], untilEnd: true },
        { name: 'o2', seen: [l(3, 'a'), l(9, 'c')], untilEnd: true }, // missed the short term 7
        { name: 'o3', seen: [l(7, 'b')] }, // stopped early
      ],
    });
    expect(verdict.valid).toBe(true);
    expect(verdict.summary).toMatch(/3 leaderships/);
  });

  it('catches two leaders in one term', () => {
    const verdict = checkElection({ claims: [{ candidate: 'a', term: 3 }], observers: [{ name: 'o1', seen: [l(3, 'b')] }] });
    expect(verdict.valid).toBe(false);
    expect(verdict.details.join('\n')).toMatch(/term 3 has 2 leaders/);
  });

  it('catches observers that disagree on the order', () => {
    const verdict = checkElection({ claims: [], observers: [{ name: 'o1', seen: [l(3, 'a'), l(7, 'b')] }, { name: 'o2', seen: [l(7, 'b'), l(3, 'a')] }] });
    expect(verdict.valid).toBe(false);
    expect(verdict.details.join('\n')).toMatch(/observer o2 saw term 3 \(a\) after term 7 \(b\)/);
  });

  it('catches an observer that returns to an earlier leader', () => {
    const verdict = checkElection({ claims: [], observers: [{ name: 'o1', seen: [l(3, 'a'), l(7, 'b'), l(3, 'a')] }] });
    expect(verdict.valid).toBe(false);
    expect(verdict.details.join('\n')).toMatch(/saw term 3 \(a\) again/);
  });

  it('catches observers that end on different leaders', () => {
    const verdict = checkElection({ claims: [], observers: [{ name: 'o1', seen: [l(3, 'a'), l(7, 'b')], untilEnd: true }, { name: 'o2', seen: [l(3, 'a')], untilEnd: true }] });
    expect(verdict.valid).toBe(false);
    expect(verdict.details.join('\n')).toMatch(/disagree on the final leader/);
  });
});

describe('set checker', () => {
  const attempts: SetAttempt[] = [
    { element: 'a', outcome: 'ok', created: true },
    { element: 'b', outcome: 'ok', created: true },
    { element: 'm', outcome: 'indeterminate' },
    { element: 'n', outcome: 'indeterminate' },
    { element: 'f', outcome: 'fail' },
  ];

  it('accepts every acknowledged add present, indeterminate ones either way', () => {
    const verdict = checkSet(attempts, [{ member: 'n1', elements: ['a', 'b', 'm'] }, { member: 'n2', elements: ['a', 'b', 'm'] }]);
    expect(verdict.valid).toBe(true);
    expect(verdict.summary).toMatch(/2 acknowledged adds present at 2 member\(s\); 2 indeterminate \(1 present\)/);
  });

  it('catches a lost add, a failed add present and a stranger', () => {
    const verdict = checkSet(attempts, [{ member: 'n1', elements: ['a', 'f', 'zz'] }]);
    expect(verdict.valid).toBe(false);
    const details = verdict.details.join('\n');
    expect(details).toMatch(/n1: 1 acknowledged adds missing: b/);
    expect(details).toMatch(/n1: 1 adds that failed are present: f/);
    expect(details).toMatch(/n1: 1 elements never added are present: zz/);
  });

  it('catches an add that found its unique key present', () => {
    expect(checkSet([{ element: 'a', outcome: 'ok', created: false }], [{ member: 'n1', elements: ['a'] }]).valid).toBe(false);
  });

  it('is undecided without a final read', () => {
    expect(checkSet(attempts, [{ member: 'n1', elements: null, error: 'timeout' }]).valid).toBe(null);
  });
});

describe('register checker', () => {
  const op = (client: string, detail: KvOp, invokeTime: number, completeTime: number, outcome: RecordedOp['outcome'] = 'ok'): RecordedOp<KvOp> => ({
    client, kind: detail.type, invokeTime, completeTime: outcome === 'indeterminate' ? Infinity : completeTime, outcome, wrote: detail.type !== 'read', detail,
  });

  it('accepts a history with cas and an indeterminate write that a read observed', () => {
    const verdict = checkRegisterHistory([
      op('a', { key: 'k', type: 'write', value: 'v1' }, 0, 10),
      op('b', { key: 'k', type: 'cas', expected: 'v1', value: 'v2', succeeded: true }, 11, 20),
      op('a', { key: 'k', type: 'write', value: 'v3' }, 21, 0, 'indeterminate'),
      op('c', { key: 'k', type: 'read', value: 'v3' }, 30, 40),
      op('c', { key: 'j', type: 'cas', expected: null, value: 'w', succeeded: true }, 0, 5),
    ]);
    expect(verdict.valid).toBe(true);
  });

  it('catches a stale read', () => {
    const verdict = checkRegisterHistory([
      op('a', { key: 'k', type: 'write', value: 'v1' }, 0, 10),
      op('a', { key: 'k', type: 'write', value: 'v2' }, 11, 20),
      op('b', { key: 'k', type: 'read', value: 'v1' }, 21, 30),
    ]);
    expect(verdict.valid).toBe(false);
    expect(verdict.details.join('\n')).toMatch(/key k: not linearizable/);
  });

  it('catches a cas that succeeded against a value that was gone', () => {
    const verdict = checkRegisterHistory([
      op('a', { key: 'k', type: 'write', value: 'v1' }, 0, 10),
      op('a', { key: 'k', type: 'write', value: 'v2' }, 11, 20),
      op('b', { key: 'k', type: 'cas', expected: 'v1', value: 'v3', succeeded: true }, 21, 30),
    ]);
    expect(verdict.valid).toBe(false);
  });
});

describe('nemesis plan', () => {
  it('is a pure function of the seed', () => {
    const a = planNemesis({ seed: 42, members: 5, durationMs: 60_000 });
    const b = planNemesis({ seed: 42, members: 5, durationMs: 60_000 });
    const c = planNemesis({ seed: 43, members: 5, durationMs: 60_000 });
    expect(b).toEqual(a);
    expect(c.faults).not.toEqual(a.faults);
  });

  it('keeps to a minority, to the window, and to the pause and downtime bounds', () => {
    for (const members of [3, 5] as const) {
      for (let seed = 1; seed <= 50; seed += 1) {
        const plan = planNemesis({ seed, members, durationMs: 60_000 });
        expect(plan.lanes).toBe(members === 3 ? 1 : 2);
        expect(plan.faults.length).toBeGreaterThan(0);
        for (let lane = 0; lane < plan.lanes; lane += 1) {
          const faults = plan.faults.filter((fault) => fault.lane === lane);
          for (const [index, fault] of faults.entries()) {
            expect(fault.atMs + fault.durationMs).toBeLessThanOrEqual(60_000);
            if (fault.kind === 'pause') expect(fault.durationMs).toBeGreaterThanOrEqual(3_000);
            if (fault.kind === 'pause') expect(fault.durationMs).toBeLessThanOrEqual(10_000);
            const next = faults[index + 1];
            if (next !== undefined) expect(next.atMs).toBeGreaterThan(fault.atMs + fault.durationMs);
          }
        }
      }
    }
  });

  it('has both kinds and both target rules over a few seeds, and nothing for profile none', () => {
    const faults = [1, 2, 3, 4, 5].flatMap((seed) => planNemesis({ seed, members: 3, durationMs: 60_000 }).faults);
    expect(new Set(faults.map((f) => f.kind))).toEqual(new Set(['kill', 'pause']));
    expect(new Set(faults.map((f) => f.target))).toEqual(new Set(['leader', 'random']));
    expect(planNemesis({ seed: 1, members: 3, durationMs: 60_000, profile: 'none' }).faults).toEqual([]);
  });
});

describe('error classification', () => {
  it('calls refusals and unsent calls fail, everything after a send indeterminate', () => {
    expect(classifyError(serviceError(grpc.status.INVALID_ARGUMENT, 'etcdserver: key is not provided'))).toBe('fail');
    expect(classifyError(serviceError(grpc.status.RESOURCE_EXHAUSTED, 'etcdserver: too many requests'))).toBe('fail');
    expect(classifyError(serviceError(grpc.status.UNAVAILABLE, 'etcdserver: no leader'))).toBe('fail');
    expect(classifyError(serviceError(grpc.status.UNAVAILABLE, 'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1'))).toBe('fail');
    expect(classifyError(serviceError(grpc.status.UNAVAILABLE, 'etcdserver: leader changed'))).toBe('indeterminate');
    expect(classifyError(serviceError(grpc.status.UNAVAILABLE, 'etcdserver: request timed out'))).toBe('indeterminate');
    expect(classifyError(serviceError(grpc.status.UNAVAILABLE, 'Connection dropped'))).toBe('indeterminate');
    expect(classifyError(serviceError(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded'))).toBe('indeterminate');
    expect(classifyError(new Error('something else'))).toBe('indeterminate');
  });

  it('does the same for client-library errors; a given-up wait was not granted', () => {
    expect(classifyClientError(new LockLostError('fenced write refused'))).toBe('fail');
    expect(classifyClientError(new ElectionNotLeaderError('election: not leader'))).toBe('fail');
    expect(classifyClientError(new NoLeaderError('etcdserver: no leader'))).toBe('fail');
    expect(classifyClientError(new UnavailableError('No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1'))).toBe('fail');
    expect(classifyClientError(new UnavailableError('Connection dropped'))).toBe('indeterminate');
    expect(classifyClientError(new LeaderChangedError('etcdserver: leader changed'))).toBe('indeterminate');
    expect(classifyClientError(new DeadlineExceededError('Txn: deadline exceeded'))).toBe('indeterminate');
    expect(classifyClientError(new DeadlineExceededError('lock x not acquired within 6000 ms'), { wait: true })).toBe('fail');
    expect(classifyClientError(new SessionExpiredError('session lease 1 expired'), { wait: true })).toBe('fail');
    expect(classifyClientError(new Error('something else'), { wait: true })).toBe('indeterminate');
  });
});

describe('lock and election histories', () => {
  it('reads a log key written twice as a duplicate append', () => {
    expect(parseAppend('w0-1.0', '{"client":"lock/w0","token":7}', 10, 10)).toEqual([{ id: 'w0-1.0', client: 'lock/w0', token: 7, revision: 10 }]);
    const twice = parseAppend('w0-1.0', '{"client":"lock/w0","token":7}', 10, 12);
    expect(checkFencing({ log: twice }).details.join('\n')).toMatch(/committed twice/);
    expect(parseAppend('x', 'not json', 5, 5)).toEqual([{ id: 'x', client: '?', token: -1, revision: 5 }]);
  });

  it('names the candidate of a leader key whatever it proclaimed', () => {
    expect(leadershipOf({ createRevision: 42n, value: Buffer.from('c1#981') })).toEqual({ term: 42, leader: 'c1' });
    expect(leadershipOf({ createRevision: 43n, value: Buffer.from('c2') })).toEqual({ term: 43, leader: 'c2' });
  });
});

describe('report figures', () => {
  it('finds the longest window without an acknowledged write, edges included', () => {
    const write = (completeTime: number, outcome: RecordedOp['outcome'] = 'ok', wrote = true): RecordedOp => ({ client: 'c', kind: 'write', invokeTime: completeTime - 1, completeTime, outcome, wrote, detail: null });
    const ops = [write(100), write(300), write(350, 'fail', false), write(2_000, 'ok', false), write(1_200)];
    expect(longestNoWriteWindow(ops, 0, 1_500)).toEqual({ ms: 900, from: 300, to: 1_200 });
    expect(longestNoWriteWindow(ops, 0, 3_000)).toEqual({ ms: 1_800, from: 1_200, to: 3_000 });
    expect(longestNoWriteWindow([], 0, 500)).toEqual({ ms: 500, from: 0, to: 500 });
  });

  it('counts the members\' warnings by message, with the slowest fsync', () => {
    const logs = [
      '{"level":"warn","msg":"slow fsync","tookMs":312}\n{"level":"info","msg":"snapshot taken"}\n--- n1 #1 exited\n',
      '{"level":"warn","msg":"slow fsync","tookMs":4004}\n{"level":"warn","msg":"peer unreachable"}\nnot json {"level":"warn"\n',
    ];
    expect(summarizeWarnings(logs)).toEqual([
      { level: 'warn', msg: 'slow fsync', count: 2, maxTookMs: 4004 },
      { level: 'warn', msg: 'peer unreachable', count: 1 },
    ]);
  });
});
