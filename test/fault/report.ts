/**
 * A run's report: operations by outcome per workload, the faults injected, throughput, the
 * longest stretch without an acknowledged write, each checker's verdict, the seed and the
 * command that replays the nemesis schedule. Built as an object, printed as text.
 */
import { describePlannedFault, type InjectedFault, type NemesisPlan } from './nemesis.js';
import { countOutcomes, type Outcome, type RecordedOp, type Verdict, type WorkloadHistory } from './workload.js';

export interface WorkloadReport {
  readonly name: string;
  readonly total: number;
  readonly outcomes: Record<Outcome, number>;
  /** Per op kind ("read", "write", "cas", "add"), by outcome. */
  readonly byKind: Readonly<Record<string, Record<Outcome, number>>>;
  readonly opsPerSecond: number;
}

export interface Window {
  readonly ms: number;
  /** RunClock ms. */
  readonly from: number;
  readonly to: number;
}

export interface FaultReport {
  readonly seed: number;
  readonly members: number;
  readonly durationMs: number;
  readonly profile: string;
  readonly replayCommand: string;
  /** How long the workloads ran (ms), from their start to the stop after the heal. */
  readonly workloadMs: number;
  readonly workloads: readonly WorkloadReport[];
  readonly plannedFaults: number;
  readonly faults: readonly InjectedFault[];
  readonly skippedFaults: number;
  readonly opsPerSecond: number;
  readonly okOpsPerSecond: number;
  readonly longestNoWriteWindow: Window;
  readonly verdicts: readonly Verdict[];
  /** Verdicts with valid === false. */
  readonly violations: number;
  /** Verdicts with valid === null. */
  readonly unknown: number;
  /** Warnings and errors the members logged, by message: context for stalls (a slow disk). */
  readonly serverWarnings: readonly ServerWarning[];
}

export interface ServerWarning {
  readonly level: string;
  readonly msg: string;
  readonly count: number;
  /** The largest `tookMs` among them, for "slow fsync" and "slow apply". */
  readonly maxTookMs?: number;
}

export interface ReportInput {
  readonly plan: NemesisPlan;
  readonly replayCommand: string;
  readonly histories: readonly WorkloadHistory[];
  readonly faults: readonly InjectedFault[];
  readonly skippedFaults: number;
  readonly verdicts: readonly Verdict[];
  /** Each member's output (JSON log lines), all incarnations. */
  readonly memberLogs: readonly string[];
}

export function buildReport(input: ReportInput): FaultReport {
  const from = Math.min(...input.histories.map((h) => h.startedAt));
  const to = Math.max(...input.histories.map((h) => h.stoppedAt));
  const seconds = Math.max(to - from, 1) / 1000;
  const workloads = input.histories.map((history) => workloadReport(history));
  const all = input.histories.flatMap((history) => history.ops);
  return {
    seed: input.plan.seed,
    members: input.plan.members,
    durationMs: input.plan.durationMs,
    profile: input.plan.profile,
    replayCommand: input.replayCommand,
    workloadMs: to - from,
    workloads,
    plannedFaults: input.plan.faults.length,
    faults: input.faults,
    skippedFaults: input.skippedFaults,
    opsPerSecond: all.length / seconds,
    okOpsPerSecond: all.filter((op) => op.outcome === 'ok').length / seconds,
    longestNoWriteWindow: longestNoWriteWindow(all, from, to),
    verdicts: input.verdicts,
    violations: input.verdicts.filter((v) => v.valid === false).length,
    unknown: input.verdicts.filter((v) => v.valid === null).length,
    serverWarnings: summarizeWarnings(input.memberLogs),
  };
}

/** Pure: warn and error lines of the members' JSON logs, counted by level and message. */
export function summarizeWarnings(logs: readonly string[]): ServerWarning[] {
  const byMessage = new Map<string, { level: string; msg: string; count: number; maxTookMs?: number }>();
  for (const text of logs) {
    for (const line of text.split('\n')) {
      if (!line.startsWith('{') || !/"level":"(warn|error)"/.test(line)) continue;
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch {
        continue;
      }
      if (typeof record !== 'object' || record === null) continue;
      const { level, msg, tookMs } = record as { level?: unknown; msg?: unknown; tookMs?: unknown };
      if (typeof level !== 'string' || typeof msg !== 'string') continue;
      const key = `${level} ${msg}`;
      const entry = byMessage.get(key) ?? { level, msg, count: 0 };
      entry.count += 1;
      if (typeof tookMs === 'number') entry.maxTookMs = Math.max(entry.maxTookMs ?? 0, tookMs);
      byMessage.set(key, entry);
    }
  }
  return [...byMessage.values()].sort((a, b) => b.count - a.count);
}

function workloadReport(history: WorkloadHistory): WorkloadReport {
  const byKind: Record<string, Record<Outcome, number>> = {};
  for (const op of history.ops) {
    const counts = (byKind[op.kind] ??= { ok: 0, fail: 0, indeterminate: 0 });
    counts[op.outcome] += 1;
  }
  const seconds = Math.max(history.stoppedAt - history.startedAt, 1) / 1000;
  return { name: history.workload, total: history.ops.length, outcomes: countOutcomes(history.ops), byKind, opsPerSecond: history.ops.length / seconds };
}

/**
 * Pure: the longest interval within [from, to] in which no acknowledged write completed
 * (an op with wrote = true and outcome ok), measured between completion times.
 */
export function longestNoWriteWindow(ops: readonly RecordedOp[], from: number, to: number): Window {
  const times = ops.filter((op) => op.outcome === 'ok' && op.wrote).map((op) => op.completeTime).filter((t) => t >= from && t <= to).sort((a, b) => a - b);
  let best: Window = { ms: 0, from, to: from };
  let previous = from;
  for (const time of [...times, to]) {
    if (time - previous > best.ms) best = { ms: time - previous, from: previous, to: time };
    previous = time;
  }
  return best;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;

function outcomesText(outcomes: Record<Outcome, number>): string {
  return `ok ${outcomes.ok}, fail ${outcomes.fail}, indeterminate ${outcomes.indeterminate}`;
}

function faultText(fault: InjectedFault): string {
  const what = fault.planned.kind === 'kill' ? 'kill -9' : 'SIGSTOP';
  const end = fault.planned.kind === 'kill' ? 'restarted' : 'SIGCONT';
  const leader = fault.wasLeader ? ' (leader)' : '';
  const error = fault.error === undefined ? '' : `  ERROR: ${fault.error}`;
  return `+${seconds(fault.startedAt)} ${what} ${fault.member}${leader} [${fault.planned.target}], ${end} at +${seconds(fault.endedAt)} (${Math.round(fault.endedAt - fault.startedAt)} ms)${error}`;
}

const VERDICT_WORD = (valid: boolean | null): string => (valid === true ? 'PASS' : valid === false ? 'FAIL' : 'UNKNOWN');

export function formatReport(report: FaultReport, options: { plan?: NemesisPlan } = {}): string {
  const lines: string[] = [];
  lines.push(`gavel fault test: seed ${report.seed}, ${report.members} members, nemesis ${seconds(report.durationMs)} (${report.profile}), workloads ran ${seconds(report.workloadMs)}`);
  lines.push(`replay: ${report.replayCommand}`);
  lines.push(`faults injected: ${report.faults.length} of ${report.plannedFaults} planned (${report.skippedFaults} skipped)`);
  for (const fault of report.faults) lines.push(`  ${faultText(fault)}`);
  if (options.plan !== undefined && report.faults.length === 0) for (const fault of options.plan.faults) lines.push(`  planned: ${describePlannedFault(fault)}`);
  lines.push('operations:');
  for (const workload of report.workloads) {
    lines.push(`  ${workload.name}: ${workload.total} ops (${outcomesText(workload.outcomes)}), ${workload.opsPerSecond.toFixed(1)} ops/s`);
    for (const [kind, outcomes] of Object.entries(workload.byKind)) lines.push(`    ${kind}: ${outcomesText(outcomes)}`);
  }
  lines.push(`throughput: ${report.opsPerSecond.toFixed(1)} ops/s (${report.okOpsPerSecond.toFixed(1)} ok ops/s)`);
  const window = report.longestNoWriteWindow;
  lines.push(`longest window with no successful write: ${Math.round(window.ms)} ms (+${seconds(window.from)} to +${seconds(window.to)})`);
  if (report.serverWarnings.length > 0) {
    const shown = report.serverWarnings.slice(0, 8).map((w) => `${w.msg} ×${w.count}${w.maxTookMs === undefined ? '' : ` (max ${w.maxTookMs} ms)`}`);
    lines.push(`server warnings: ${shown.join(', ')}${report.serverWarnings.length > 8 ? ', …' : ''}`);
  }
  lines.push('checkers:');
  for (const verdict of report.verdicts) {
    lines.push(`  ${VERDICT_WORD(verdict.valid)}  ${verdict.checker}: ${verdict.summary}`);
    for (const detail of verdict.details.slice(0, 10)) lines.push(...detail.split('\n').map((line) => `      ${line}`));
    if (verdict.details.length > 10) lines.push(`      … ${verdict.details.length - 10} more`);
  }
  const result = report.violations > 0 ? `VIOLATION (${report.violations} checker(s) failed)` : report.unknown > 0 ? `UNKNOWN (${report.unknown} checker(s) undecided)` : 'OK: no violation';
  lines.push(`result: ${result}; seed ${report.seed}`);
  return lines.join('\n');
}
