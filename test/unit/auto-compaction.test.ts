// Goal: auto-compaction decides what etcd 3.4's compactors decide (periodic and revision mode, leader only, retries), proved on a ManualClock without sleeps, and the shell proposes, logs and retries those compactions.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../server/clock.js';
import { GavelError } from '../../server/errors.js';
import type { Logger } from '../../server/log.js';
import type { ApplyResult } from '../../server/apply/state-machine.js';
import { createCompactionPolicy, formatGoDuration, parseAutoCompaction, parseGoDuration, type AutoCompactionSettings, type CompactionPolicy } from '../../server/mvcc/auto-compaction.js';
import { AutoCompactor } from '../../server/node/auto-compactor.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
/** The member's write rate in these tests: 100 revisions a minute, revision 1 at time 0. */
const revisionAt = (ms: number): number => 1 + Math.floor(ms / MINUTE_MS) * 100;

interface Member {
  clock: ManualClock;
  policy: CompactionPolicy;
  compacted: number;
  leader: boolean;
}

function member(settings: AutoCompactionSettings): Member {
  const clock = new ManualClock(0);
  return { clock, policy: createCompactionPolicy(settings, clock, revisionAt(0)), compacted: 0, leader: true };
}

/** Runs the policy's checks until `untilMs`, applying every compaction it asks for; returns [time, revision] of each. */
function run(m: Member, untilMs: number, outcome: (revision: number) => boolean = () => true): [number, number][] {
  const compactions: [number, number][] = [];
  while (m.clock.now() + m.policy.checkIntervalMs <= untilMs) {
    m.clock.advance(m.policy.checkIntervalMs);
    const revision = m.policy.due({ currentRevision: revisionAt(m.clock.now()), compactedRevision: m.compacted, isLeader: m.leader });
    if (revision === undefined) continue;
    const ok = outcome(revision);
    if (ok) m.compacted = revision;
    m.policy.done(revision, ok);
    compactions.push([m.clock.now(), revision]);
  }
  return compactions;
}

describe('periodic mode (etcd v3compactor/periodic.go)', () => {
  it('retention 1h: checks every 6 min, first compacts after 1h to the revision of start, then hourly to the oldest of 11 samples', () => {
    const m = member({ mode: 'periodic', retentionMs: HOUR_MS });
    expect(m.policy.checkIntervalMs).toBe(6 * MINUTE_MS);
    const compactions = run(m, 3 * HOUR_MS);
    // etcd samples before each wait, so after the first compaction revs[0] is P + P/10 old.
    expect(compactions).toEqual([
      [HOUR_MS, revisionAt(0)],
      [2 * HOUR_MS, revisionAt(54 * MINUTE_MS)],
      [3 * HOUR_MS, revisionAt(114 * MINUTE_MS)],
    ]);
  });

  it('never compacts history younger than the retention', () => {
    for (const retentionMs of [2_000, 5 * MINUTE_MS, 59 * MINUTE_MS, HOUR_MS, 2 * HOUR_MS, 24 * HOUR_MS]) {
      const m = member({ mode: 'periodic', retentionMs });
      for (const [atMs, revision] of run(m, 4 * Math.max(retentionMs, HOUR_MS))) {
        expect(revision, `retention ${retentionMs} ms at ${atMs} ms`).toBeLessThanOrEqual(revisionAt(atMs - retentionMs));
      }
    }
  });

  it('retention 2h: samples every 6 min, first compaction after 2h, then every hour (the interval is capped at 1h)', () => {
    const m = member({ mode: 'periodic', retentionMs: 2 * HOUR_MS });
    expect(m.policy.checkIntervalMs).toBe(6 * MINUTE_MS);
    const compactions = run(m, 4 * HOUR_MS);
    expect(compactions.map(([atMs]) => atMs / MINUTE_MS)).toEqual([120, 180, 240]);
    expect(compactions[0]![1]).toBe(revisionAt(0));
    // 21 samples 6 minutes apart: the oldest is 2h6m before each later compaction.
    expect(compactions[1]![1]).toBe(revisionAt(54 * MINUTE_MS));
  });

  it('retention 5m (gavel\'s default): checks every 30 s and compacts every 5 minutes', () => {
    const m = member({ mode: 'periodic', retentionMs: 5 * MINUTE_MS });
    expect(m.policy.checkIntervalMs).toBe(30_000);
    expect(run(m, 20 * MINUTE_MS).map(([atMs]) => atMs / MINUTE_MS)).toEqual([5, 10, 15, 20]);
  });

  it('only the leader compacts; a follower keeps sampling, so a new leader compacts at once to the revision from P ago', () => {
    const m = member({ mode: 'periodic', retentionMs: HOUR_MS });
    m.leader = false;
    expect(run(m, 3 * HOUR_MS)).toEqual([]);
    m.leader = true;
    // Overdue since the member started: the next check compacts, to the oldest sample (66 min old).
    expect(run(m, 3 * HOUR_MS + 6 * MINUTE_MS)).toEqual([[3 * HOUR_MS + 6 * MINUTE_MS, revisionAt(3 * HOUR_MS - 60 * MINUTE_MS)]]);
  });

  it('a failed compaction is retried at the next check, with the then-oldest sample', () => {
    const m = member({ mode: 'periodic', retentionMs: HOUR_MS });
    let failures = 2;
    const compactions = run(m, HOUR_MS + 3 * 6 * MINUTE_MS, () => failures-- <= 0);
    expect(compactions).toEqual([
      [HOUR_MS, revisionAt(0)],
      [HOUR_MS + 6 * MINUTE_MS, revisionAt(0)],
      [HOUR_MS + 12 * MINUTE_MS, revisionAt(6 * MINUTE_MS)],
    ]);
  });

  it('a revision already compacted (by a client) counts as done and proposes nothing', () => {
    const m = member({ mode: 'periodic', retentionMs: HOUR_MS });
    m.compacted = revisionAt(2 * HOUR_MS);
    expect(run(m, 2 * HOUR_MS)).toEqual([]);
  });
});

describe('revision mode (etcd v3compactor/revision.go)', () => {
  it('every 5 minutes compacts to current - retention, never twice to the same revision, never to 0 or below', () => {
    const m = member({ mode: 'revision', retentionRevisions: 1000 });
    expect(m.policy.checkIntervalMs).toBe(5 * MINUTE_MS);
    // 100 revisions a minute: current - 1000 > 0 from minute 10 on.
    expect(run(m, 20 * MINUTE_MS)).toEqual([
      [10 * MINUTE_MS, revisionAt(10 * MINUTE_MS) - 1000],
      [15 * MINUTE_MS, revisionAt(15 * MINUTE_MS) - 1000],
      [20 * MINUTE_MS, revisionAt(20 * MINUTE_MS) - 1000],
    ]);
    // An idle member: the same target again proposes nothing.
    expect(m.policy.due({ currentRevision: revisionAt(20 * MINUTE_MS), compactedRevision: m.compacted, isLeader: true })).toBeUndefined();
  });

  it('only the leader compacts, and a failure is retried at the next check', () => {
    const m = member({ mode: 'revision', retentionRevisions: 100 });
    m.leader = false;
    expect(run(m, 30 * MINUTE_MS)).toEqual([]);
    m.leader = true;
    let failures = 1;
    expect(run(m, 40 * MINUTE_MS, () => failures-- <= 0)).toEqual([
      [35 * MINUTE_MS, revisionAt(35 * MINUTE_MS) - 100],
      [40 * MINUTE_MS, revisionAt(40 * MINUTE_MS) - 100],
    ]);
  });
});

describe('--auto-compaction-retention (etcd embed parseCompactionRetention)', () => {
  it('reads a bare number as hours (periodic) or revisions (revision), anything else as a Go duration, 0 as off', () => {
    expect(parseAutoCompaction('periodic', '1')).toEqual({ mode: 'periodic', retentionMs: HOUR_MS });
    expect(parseAutoCompaction('periodic', '30m')).toEqual({ mode: 'periodic', retentionMs: 30 * MINUTE_MS });
    expect(parseAutoCompaction('periodic', '1h30m')).toEqual({ mode: 'periodic', retentionMs: 90 * MINUTE_MS });
    expect(parseAutoCompaction('periodic', '2.5h')).toEqual({ mode: 'periodic', retentionMs: 150 * MINUTE_MS });
    expect(parseAutoCompaction('periodic', '1500ms')).toEqual({ mode: 'periodic', retentionMs: 1500 });
    expect(parseAutoCompaction('revision', '1000')).toEqual({ mode: 'revision', retentionRevisions: 1000 });
    expect(parseAutoCompaction('periodic', '0')).toBeUndefined();
    expect(parseAutoCompaction('revision', '0')).toBeUndefined();
  });

  it("refuses what etcd refuses, with etcd's messages", () => {
    expect(() => parseAutoCompaction('periodic', 'abc')).toThrow('error parsing CompactionRetention: time: invalid duration "abc"');
    expect(() => parseAutoCompaction('periodic', '-1')).toThrow('error parsing CompactionRetention: time: missing unit in duration "-1"');
    expect(() => parseAutoCompaction('periodic', '0.5')).toThrow('error parsing CompactionRetention: time: missing unit in duration "0.5"');
    expect(() => parseAutoCompaction('periodic', '5x')).toThrow('error parsing CompactionRetention: time: unknown unit "x" in duration "5x"');
    expect(() => parseAutoCompaction('hourly', '1')).toThrow('unknown auto-compaction-mode "hourly"');
  });

  it('also refuses a negative duration, and a duration in revision mode (etcd would read 1h as 3.6e12 revisions)', () => {
    expect(() => parseAutoCompaction('periodic', '-1h')).toThrow(/negative/);
    expect(() => parseAutoCompaction('revision', '1h')).toThrow(/revision keeps a number of revisions/);
  });

  it("parses and prints durations as Go's time package does", () => {
    expect(parseGoDuration('1h2m3.5s')).toBe(HOUR_MS + 2 * MINUTE_MS + 3500);
    expect(parseGoDuration('.5s')).toBe(500);
    expect(formatGoDuration(5 * MINUTE_MS)).toBe('5m0s');
    expect(formatGoDuration(HOUR_MS)).toBe('1h0m0s');
    expect(formatGoDuration(2500)).toBe('2.5s');
    expect(formatGoDuration(300)).toBe('300ms');
  });
});

describe('the auto-compactor shell', () => {
  function capturingLogger(lines: string[]): Logger {
    const log = (level: string) => (msg: string, fields?: Record<string, unknown>) => lines.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
    const logger: Logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), child: () => logger };
    return logger;
  }

  function shell(answer: (revision: number) => ApplyResult, leader: () => boolean) {
    const clock = new ManualClock(0);
    const lines: string[] = [];
    const proposed: number[] = [];
    let current = 1;
    let compacted = 0;
    const compactor = new AutoCompactor({
      policy: createCompactionPolicy({ mode: 'revision', retentionRevisions: 10 }, clock, current),
      view: () => ({ currentRevision: current, compactedRevision: compacted, isLeader: leader() }),
      propose: async (revision) => {
        proposed.push(revision);
        const result = answer(revision);
        if (result.type === 'compaction') compacted = revision;
        return result;
      },
      logger: capturingLogger(lines),
      clock,
    });
    return {
      clock,
      lines,
      proposed,
      compactor,
      write: (revisions: number) => (current += revisions),
      step: async () => {
        clock.advance(5 * MINUTE_MS);
        await compactor.check();
      },
    };
  }

  it('proposes on the leader only and logs the start and the end of each compaction', async () => {
    let leader = false;
    const s = shell((revision) => ({ type: 'compaction', revision }), () => leader);
    s.write(50);
    await s.step();
    expect(s.proposed).toEqual([]);
    leader = true;
    await s.step();
    expect(s.proposed).toEqual([41]);
    expect(s.lines.filter((l) => l.includes('auto compaction'))).toEqual([
      'info starting auto compaction {"revision":41,"mode":"revision","revisionCompactionRetention":10}',
      'info completed auto compaction {"revision":41,"mode":"revision","revisionCompactionRetention":10,"took":"0ms"}',
    ]);
  });

  it('takes "already compacted" as success, and retries another failure at the next check with a warning', async () => {
    const answers: ApplyResult[] = [
      { type: 'error', revision: 0, error: new GavelError('Timeout') },
      { type: 'error', revision: 0, error: new GavelError('Compacted') },
    ];
    const s = shell(() => answers.shift() ?? { type: 'compaction', revision: 0 }, () => true);
    s.write(50);
    await s.step();
    expect(s.lines.at(-1)).toMatch(/^warn failed auto compaction \{"revision":41,.*"retryInterval":"5m0s"/);
    await s.step();
    expect(s.lines.at(-1)).toMatch(/^info completed auto compaction \{"revision":41/);
    // Success recorded: the same revision is not proposed a third time.
    await s.step();
    expect(s.proposed).toEqual([41, 41]);
  });

  it('runs one compaction at a time', async () => {
    const clock = new ManualClock(0);
    const releases: (() => void)[] = [];
    const slow = new AutoCompactor({
      policy: createCompactionPolicy({ mode: 'revision', retentionRevisions: 1 }, clock, 1),
      view: () => ({ currentRevision: 100 + releases.length, compactedRevision: 0, isLeader: true }),
      propose: (revision) => new Promise((resolve) => releases.push(() => resolve({ type: 'compaction', revision }))),
      logger: capturingLogger([]),
      clock,
    });
    clock.advance(5 * MINUTE_MS);
    const first = slow.check();
    clock.advance(5 * MINUTE_MS);
    await slow.check(); // one in flight: proposes nothing
    expect(releases).toHaveLength(1);
    releases[0]!();
    await first;
    clock.advance(5 * MINUTE_MS);
    const second = slow.check();
    expect(releases).toHaveLength(2);
    releases[1]!();
    await second;
  });
});
