/**
 * Auto-compaction policy with etcd 3.4's meaning of `--auto-compaction-mode` and
 * `--auto-compaction-retention` (etcd's etcdserver/api/v3compactor/periodic.go, revision.go and
 * embed's parseCompactionRetention). Pure: time comes from the injected Clock, revisions are
 * passed in; the shell (server/node/auto-compactor.ts) calls `due()` every `checkIntervalMs`
 * on every member, proposes the compaction it answers, and reports the outcome with `done()`.
 *
 *   revision  every 5 minutes, compact to (current revision - retention); never to the same
 *             revision twice in a row, never to a revision <= 0.
 *   periodic  retention P (a Go duration, or a bare number of hours). Every min(P, 1h)/10 the
 *             current revision is sampled; the oldest of the last P/interval+1 samples is the
 *             revision from P ago. The first compaction happens P after start, later ones every
 *             min(P, 1h) after the last success, each to the revision sampled P earlier; a
 *             failure retries at the next sample.
 *
 * Only the leader compacts (etcd pauses the compactor on followers), but followers keep
 * sampling, so a new leader knows the revision from P ago at once.
 */
import type { Clock } from '../clock.js';
import { assert } from '../errors.js';

export type AutoCompactionSettings =
  | { readonly mode: 'periodic'; readonly retentionMs: number }
  | { readonly mode: 'revision'; readonly retentionRevisions: number };

/** What the policy sees of the member at each check. */
export interface CompactionView {
  readonly currentRevision: number;
  readonly compactedRevision: number;
  readonly isLeader: boolean;
}

export interface CompactionPolicy {
  readonly settings: AutoCompactionSettings;
  /** How often the shell calls due(). */
  readonly checkIntervalMs: number;
  /** The revision to compact to now, or undefined. Call every checkIntervalMs, not while a compaction is in flight. */
  due(view: CompactionView): number | undefined;
  /** The outcome of the compaction due() asked for; an already-compacted answer counts as success (as etcd's). */
  done(revision: number, succeeded: boolean): void;
}

const HOUR_MS = 60 * 60 * 1000;
/** etcd's revInterval: revision mode checks every 5 minutes. */
export const REVISION_CHECK_INTERVAL_MS = 5 * 60 * 1000;
/** etcd's retryDivisor: periodic mode samples 10 times per compaction interval. */
const SAMPLES_PER_INTERVAL = 10;

export function createCompactionPolicy(settings: AutoCompactionSettings, clock: Clock, startRevision: number): CompactionPolicy {
  switch (settings.mode) {
    case 'periodic':
      return new PeriodicPolicy(settings, clock, startRevision);
    case 'revision':
      return new RevisionPolicy(settings);
  }
}

class RevisionPolicy implements CompactionPolicy {
  readonly checkIntervalMs = REVISION_CHECK_INTERVAL_MS;
  /** The last revision compacted to (etcd's `prev`): an idle member proposes nothing. */
  private previous = 0;

  constructor(readonly settings: Extract<AutoCompactionSettings, { mode: 'revision' }>) {
    assert(Number.isSafeInteger(settings.retentionRevisions) && settings.retentionRevisions > 0, 'revision retention must be a positive integer');
  }

  due(view: CompactionView): number | undefined {
    if (!view.isLeader) return undefined;
    const revision = view.currentRevision - this.settings.retentionRevisions;
    if (revision <= 0 || revision === this.previous) return undefined;
    // etcd would propose it and take ErrCompacted as success: same outcome, no log entry.
    if (revision <= view.compactedRevision) {
      this.previous = revision;
      return undefined;
    }
    return revision;
  }

  done(revision: number, succeeded: boolean): void {
    if (succeeded) this.previous = revision;
  }
}

class PeriodicPolicy implements CompactionPolicy {
  readonly checkIntervalMs: number;
  /** Compactions after the first are this far apart: min(P, 1h). */
  private readonly compactIntervalMs: number;
  /** Samples kept: samples[0] is the revision from P ago once the window is full. */
  private readonly windowLength: number;
  private readonly samples: number[] = [];
  private lastSuccessMs: number;
  /** P until the first compaction, then min(P, 1h) (etcd's baseInterval). */
  private waitMs: number;

  constructor(
    readonly settings: Extract<AutoCompactionSettings, { mode: 'periodic' }>,
    private readonly clock: Clock,
    startRevision: number,
  ) {
    assert(Number.isFinite(settings.retentionMs) && settings.retentionMs > 0, 'periodic retention must be a positive duration');
    this.compactIntervalMs = Math.min(settings.retentionMs, HOUR_MS);
    this.checkIntervalMs = this.compactIntervalMs / SAMPLES_PER_INTERVAL;
    this.windowLength = Math.floor(settings.retentionMs / this.checkIntervalMs) + 1;
    this.lastSuccessMs = clock.now();
    this.waitMs = settings.retentionMs;
    this.sample(startRevision);
  }

  due(view: CompactionView): number | undefined {
    const revision = this.decide(view);
    // etcd samples at the top of each loop, right after the compaction attempt: same instant here.
    this.sample(view.currentRevision);
    return revision;
  }

  private decide(view: CompactionView): number | undefined {
    if (!view.isLeader) return undefined;
    if (this.clock.now() - this.lastSuccessMs < this.waitMs) return undefined;
    this.waitMs = this.compactIntervalMs;
    const revision = this.samples[0];
    assert(revision !== undefined, 'periodic compaction has no sample');
    if (revision <= view.compactedRevision) {
      this.done(revision, true); // etcd: ErrCompacted counts as success
      return undefined;
    }
    return revision;
  }

  done(_revision: number, succeeded: boolean): void {
    if (succeeded) this.lastSuccessMs = this.clock.now();
  }

  private sample(revision: number): void {
    this.samples.push(revision);
    if (this.samples.length > this.windowLength) this.samples.shift();
  }
}

// ---- flags ----

const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  'μs': 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: HOUR_MS,
};

/**
 * Parses `--auto-compaction-retention` as etcd 3.4 does: a whole number is hours (periodic) or
 * revisions (revision); anything else is a Go duration ("30m", "1h30m", "2.5h"). Returns
 * undefined for 0, which turns auto-compaction off. Throws etcd's message for a bad value.
 *
 * Two refusals etcd does not make, because etcd silently does something useless: a negative
 * duration, and a duration in revision mode (etcd reads "1h" there as 3.6e12 revisions).
 */
export function parseAutoCompaction(mode: string, retention: string): AutoCompactionSettings | undefined {
  if (mode !== 'periodic' && mode !== 'revision') throw new Error(`unknown auto-compaction-mode ${JSON.stringify(mode)}`);
  if (/^[+]?\d+$/.test(retention)) {
    const count = Number(retention);
    if (!Number.isSafeInteger(count)) throw new Error(`error parsing CompactionRetention: ${JSON.stringify(retention)} is too large`);
    if (count === 0) return undefined;
    return mode === 'revision' ? { mode, retentionRevisions: count } : { mode, retentionMs: count * HOUR_MS };
  }
  const durationMs = parseGoDuration(retention);
  if (durationMs < 0) throw new Error(`error parsing CompactionRetention: ${JSON.stringify(retention)} is negative`);
  if (mode === 'revision') {
    throw new Error(`--auto-compaction-retention ${JSON.stringify(retention)} is a duration, but --auto-compaction-mode revision keeps a number of revisions`);
  }
  return durationMs === 0 ? undefined : { mode, retentionMs: durationMs };
}

/** Go's time.ParseDuration, in milliseconds, with Go's error texts. */
export function parseGoDuration(text: string): number {
  const fail = (why: string): Error => new Error(`error parsing CompactionRetention: time: ${why}`);
  const quoted = JSON.stringify(text);
  let rest = text;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    sign = rest.startsWith('-') ? -1 : 1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') throw fail(`invalid duration ${quoted}`);
  let totalMs = 0;
  while (rest.length > 0) {
    const number = /^(\d*)(?:\.(\d*))?/.exec(rest);
    const whole = number?.[1] ?? '';
    const fraction = number?.[2] ?? '';
    if (number === null || (whole === '' && fraction === '')) throw fail(`invalid duration ${quoted}`);
    rest = rest.slice(number[0].length);
    const unit = /^[^\d.]*/.exec(rest)?.[0] ?? '';
    if (unit === '') throw fail(`missing unit in duration ${quoted}`);
    const scale = DURATION_UNITS_MS[unit];
    if (scale === undefined) throw fail(`unknown unit ${JSON.stringify(unit)} in duration ${quoted}`);
    rest = rest.slice(unit.length);
    totalMs += Number(`${whole === '' ? '0' : whole}.${fraction === '' ? '0' : fraction}`) * scale;
  }
  return sign * totalMs;
}

/** A duration as Go prints one ("5m0s", "1h0m0s", "2.5s", "300ms"), as etcd's log lines show the period. */
export function formatGoDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const hours = Math.floor(ms / HOUR_MS);
  const minutes = Math.floor((ms % HOUR_MS) / 60_000);
  const seconds = (ms % 60_000) / 1000;
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}

/** The settings in one phrase, for log lines. */
export function describeAutoCompaction(settings: AutoCompactionSettings | undefined): string {
  if (settings === undefined) return 'off';
  return settings.mode === 'revision' ? `revision mode, keeping ${settings.retentionRevisions} revisions` : `periodic mode, keeping ${formatGoDuration(settings.retentionMs)}`;
}
