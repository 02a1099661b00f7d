/**
 * Benchmark with etcd's own Go client (figures, never pass/fail): a 3-member cluster of etcd
 * 3.4 and one of gavel, default timing flags, one after the other, each driven by
 * `dist/go/etcdbench` (test/bench/go/etcdbench: clientv3 and clientv3/concurrency, built offline
 * by test/bench/go/build.sh) with the client endpoints of all three members. Prints one
 * Markdown table: each workload for both targets, the ratio gavel / etcd, and the CPU the
 * members burned per operation.
 *
 *   npm run bench:go -- [--target gavel|etcd|both] [--duration SECONDS] [--only put-1,txn-16,...]
 *                       [--repeat N] [--bin PATH] [-- etcdbench flags, e.g. --conns 8]
 *
 * --repeat N runs the targets N times, alternating (etcd, gavel, etcd, gavel, ...), and shows
 * for each workload the run with the median figure (throughput; latency for the paced rows),
 * listing every run's figure below the table: on a 2-core VM one 10-second window can be a third
 * off its neighbour.
 *
 * CPU: utime+stime of every member from /proc/<pid>/stat, summed, sampled when etcdbench says a
 * measured window begins and ends (its JSON `begin`/`end` lines); divided by the operations of
 * that window. etcdbench itself runs on the same cores, so the figures are lower bounds; the
 * load average before and after each target is printed with them.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseFlags, positive, target as parseTarget } from './args.js';
import { markdownTable } from './table.js';
import { startCluster, stopAllClusters, type Cluster } from '../helpers/cluster.js';
import { ETCD_BIN, repoRoot, trackChildProcess, type Target } from '../helpers/gavel.js';
import { asNumber, asObject, type Json } from '../helpers/json.js';

interface Options {
  targets: Target[];
  durationSeconds: number;
  /** Rounds over the targets; the table shows each workload's median run. */
  repeat: number;
  only: string[];
  bin: string;
  /** Passed to etcdbench as they are (everything after `--`). */
  goFlags: string[];
}

type Kind = 'throughput' | 'handoff' | 'paced' | 'watch' | 'watch-paced';

/** One workload's figures as etcdbench prints them (its `result` line). */
interface GoResult {
  workload: string;
  title: string;
  kind: Kind;
  unit: string;
  clients: number;
  seconds: number;
  operations: number;
  errors: number;
  firstError: string;
  p50Ms: number;
  p99Ms: number;
  expected: number;
  undelivered: number;
  failed: string;
  note: string;
}

/** A result with the members' CPU over its measured window. */
interface Measured extends GoResult {
  /** CPU seconds of all members together over the window; NaN when a member was gone. */
  clusterCpuSeconds: number;
  /** CPU seconds of etcdbench itself over the window. */
  clientCpuSeconds: number;
  windowSeconds: number;
}

interface TargetRun {
  target: Target;
  version: string;
  results: Map<string, Measured>;
  loadBefore: string;
  loadAfter: string;
  /** The members' CPU seconds over the whole etcdbench run (setup included), and its wall seconds. */
  totalCpuSeconds: number;
  totalSeconds: number;
  /** The leader before and after the run ("n2", or "n2 -> n3" when it changed: worth a look). */
  leaders: string;
  /** etcdbench's account of itself: clientv3 and Go versions. */
  client: string;
  /** Why the run ended early, if it did. */
  failure: string | undefined;
}

const WORKLOADS = [
  'put-1', 'put-16', 'put-256', 'txn-16', 'range-linearizable-16', 'range-serializable-16', 'mutex-1', 'mutex-64',
  'mutex-contended-8', 'keepalive-paced', 'keepalive-flood', 'watch-100', 'watch-1000',
] as const;
/** Bound on one workload beyond its window: setup (10,000 lease grants), drains, teardown. */
const WORKLOAD_SLACK_MS = 180_000;
const USAGE = 'usage: node dist/test/bench/go-compare.js [--target gavel|etcd|both] [--duration SECONDS] [--only put-1,txn-16,...] [--repeat N] [--bin PATH] [-- etcdbench flags]';

function parseOptions(argv: readonly string[]): Options {
  const split = argv.indexOf('--');
  const own = split < 0 ? argv : argv.slice(0, split);
  const options: Options = {
    targets: ['etcd', 'gavel'],
    durationSeconds: 10,
    repeat: 1,
    only: [...WORKLOADS],
    bin: join(repoRoot(), 'dist', 'go', 'etcdbench'),
    goFlags: split < 0 ? [] : argv.slice(split + 1),
  };
  parseFlags(
    own,
    {
      '--target': (value) => {
        const text = value();
        options.targets = text === 'both' ? ['etcd', 'gavel'] : [parseTarget(text)];
      },
      '--duration': (value) => (options.durationSeconds = positive('--duration', value())),
      '--repeat': (value) => {
        const text = value();
        const repeat = positive('--repeat', text);
        if (!Number.isSafeInteger(repeat)) throw new Error(`--repeat must be a whole number, got ${text}`);
        options.repeat = repeat;
      },
      '--only': (value) => (options.only = workloadList(value())),
      '--bin': (value) => (options.bin = value()),
    },
    USAGE,
  );
  return options;
}

function workloadList(text: string): string[] {
  const names = text.split(',').map((name) => name.trim()).filter((name) => name !== '');
  const known: readonly string[] = WORKLOADS;
  const unknown = names.filter((name) => !known.includes(name));
  if (names.length === 0 || unknown.length > 0) throw new Error(`--only: unknown workload(s) ${unknown.join(', ')}; known: ${WORKLOADS.join(', ')}`);
  return names;
}

// ---------------------------------------------------------------------------------------------
// CPU from /proc.

const CLOCK_TICKS_PER_SECOND = clockTicks();

function clockTicks(): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
}

/** utime+stime of one process in seconds (fields 14 and 15 of /proc/<pid>/stat); NaN once it is gone. */
function cpuSecondsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; the fields after its closing ')' start at field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

interface CpuSample {
  clusterSeconds: number;
  clientSeconds: number;
  atMs: number;
}

/** CPU seconds of all the cluster's members together; NaN when one of them is gone. */
function clusterCpuSeconds(cluster: Cluster): number {
  return cluster.members.reduce((sum, member) => sum + (member.running ? cpuSecondsOf(member.pid) : Number.NaN), 0);
}

function sample(cluster: Cluster, clientPid: number): CpuSample {
  return { clusterSeconds: clusterCpuSeconds(cluster), clientSeconds: cpuSecondsOf(clientPid), atMs: performance.now() };
}

// ---------------------------------------------------------------------------------------------
// Running etcdbench against one cluster.

function goResult(record: { [key: string]: Json }): GoResult {
  const text = (key: string): string => (typeof record[key] === 'string' ? (record[key] as string) : '');
  const number = (key: string): number => (record[key] === undefined ? 0 : asNumber(record[key], key));
  const kind = text('kind');
  if (kind !== 'throughput' && kind !== 'handoff' && kind !== 'paced' && kind !== 'watch' && kind !== 'watch-paced') {
    throw new Error(`etcdbench printed an unknown kind ${JSON.stringify(kind)}`);
  }
  return {
    workload: text('workload'), title: text('title'), kind, unit: text('unit'), clients: number('clients'),
    seconds: number('seconds'), operations: number('operations'), errors: number('errors'), firstError: text('firstError'),
    p50Ms: number('p50Ms'), p99Ms: number('p99Ms'), expected: number('expected'), undelivered: number('undelivered'),
    failed: text('failed'), note: text('note'),
  };
}

/** Runs etcdbench against the cluster, bounded; samples the CPU at each window's markers. */
function runEtcdbench(options: Options, cluster: Cluster, run: TargetRun): Promise<void> {
  const results = run.results;
  const endpoints = cluster.members.map((member) => member.endpoint).join(',');
  const args = ['--json', '--endpoints', endpoints, '--duration', String(options.durationSeconds), '--only', options.only.join(','), ...options.goFlags];
  const child = spawn(options.bin, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  trackChildProcess(child);
  const boundMs = options.only.length * (options.durationSeconds * 1000 + WORKLOAD_SLACK_MS);
  const begins = new Map<string, CpuSample>();
  const ends = new Map<string, CpuSample>();
  const lines = createInterface({ input: child.stdout });
  let parseError: Error | undefined;
  lines.on('line', (line) => {
    try {
      const record = asObject(JSON.parse(line) as Json, 'etcdbench line');
      const workload = String(record['workload']);
      if (record['type'] === 'begin') begins.set(workload, sample(cluster, child.pid ?? 0));
      else if (record['type'] === 'end') ends.set(workload, sample(cluster, child.pid ?? 0));
      else if (record['type'] === 'result') results.set(workload, measured(goResult(record), begins.get(workload), ends.get(workload)));
      else if (record['type'] === 'client') run.client = `etcd clientv3 ${String(record['clientVersion'])}, ${String(record['goVersion'])}`;
    } catch (error) {
      parseError ??= new Error(`cannot read etcdbench's line ${JSON.stringify(line)}: ${error instanceof Error ? error.message : String(error)}`);
    }
  });
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`etcdbench did not finish within ${boundMs} ms; killed`));
    }, boundMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${options.bin}: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      // Exit 1: a workload failed (its result says why); the others still count.
      if (parseError !== undefined) reject(parseError);
      else if (code === 0 || (code === 1 && results.size > 0)) resolve();
      else reject(new Error(`etcdbench exited with code ${code} signal ${signal}`));
    });
  });
}

function measured(result: GoResult, begin: CpuSample | undefined, end: CpuSample | undefined): Measured {
  if (begin === undefined || end === undefined) return { ...result, clusterCpuSeconds: Number.NaN, clientCpuSeconds: Number.NaN, windowSeconds: Number.NaN };
  return {
    ...result,
    clusterCpuSeconds: end.clusterSeconds - begin.clusterSeconds,
    clientCpuSeconds: end.clientSeconds - begin.clientSeconds,
    windowSeconds: (end.atMs - begin.atMs) / 1000,
  };
}

async function runTarget(options: Options, target: Target): Promise<TargetRun> {
  const run: TargetRun = { target, version: serverVersion(target), results: new Map(), loadBefore: loadAverage(), loadAfter: '', leaders: '', client: '', totalCpuSeconds: Number.NaN, totalSeconds: Number.NaN, failure: undefined };
  process.stderr.write(`[bench:go] ${target}: starting 3 members (load average ${run.loadBefore})\n`);
  const cluster = await startCluster({ members: 3, target });
  try {
    const leader = await cluster.waitForLeader();
    process.stderr.write(`[bench:go] ${target}: members at ${cluster.endpoints()}, leader ${leader.name}\n`);
    const cpuBefore = clusterCpuSeconds(cluster);
    const startedMs = performance.now();
    await runEtcdbench(options, cluster, run);
    run.totalCpuSeconds = clusterCpuSeconds(cluster) - cpuBefore;
    run.totalSeconds = (performance.now() - startedMs) / 1000;
    const leaderAfter = await cluster.leader().then((member) => member.name, () => 'none agreed');
    run.leaders = leaderAfter === leader.name ? leader.name : `${leader.name} -> ${leaderAfter}`;
    const gone = cluster.members.filter((member) => !member.running);
    if (gone.length > 0) run.failure = `member(s) ${gone.map((member) => `${member.name} (${JSON.stringify(member.exitInfo)})`).join(', ')} exited during the run`;
  } catch (error) {
    run.failure = error instanceof Error ? error.message : String(error);
    process.stderr.write(`[bench:go] ${target}: ${run.failure}\n`);
  } finally {
    run.loadAfter = loadAverage();
    await cluster.stop();
  }
  return run;
}

// ---------------------------------------------------------------------------------------------
// The table.

function grouped(value: number): string {
  if (!Number.isFinite(value)) return '-';
  if (value >= 100) return Math.round(value).toLocaleString('en-US');
  return value.toFixed(1);
}

function ms(value: number): string {
  if (!Number.isFinite(value)) return '-';
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

function perSecond(result: GoResult): number {
  return result.seconds > 0 ? result.operations / result.seconds : Number.NaN;
}

/** The cell of one target: what the row measures, in the issue's words. */
function cell(result: Measured | undefined): string {
  if (result === undefined) return 'not run';
  if (result.failed !== '') return `failed: ${result.failed}`;
  const errors = result.errors > 0 ? `, ${result.errors.toLocaleString('en-US')} errors` : '';
  const rate = perSecond(result);
  switch (result.kind) {
    case 'throughput':
      return `${grouped(rate)}/s, p50 ${ms(result.p50Ms)} ms, p99 ${ms(result.p99Ms)} ms${errors}`;
    case 'handoff':
      return `${grouped(rate)}/s, hand-off p50 ${ms(result.p50Ms)} ms, p99 ${ms(result.p99Ms)} ms${errors}`;
    case 'paced':
      return `p50 ${ms(result.p50Ms)} ms, p99 ${ms(result.p99Ms)} ms at ${grouped(rate)}/s${errors}`;
    case 'watch':
      return `${grouped(rate)} events/s, p99 ${ms(result.p99Ms)} ms${errors}`;
    case 'watch-paced': {
      const expected = result.seconds > 0 ? result.expected / result.seconds : Number.NaN;
      const pace = keepsPace(result) ? `keeps pace (${grouped(rate)} events/s)` : `falls behind (${grouped(rate)} of ${grouped(expected)} events/s)`;
      return `${pace}, p99 ${ms(result.p99Ms)} ms${errors}`;
    }
  }
}

/** Within 5% of what the acknowledged puts should have delivered in the window, and nothing left over after the drain. */
function keepsPace(result: GoResult): boolean {
  return result.operations >= 0.95 * result.expected && result.undelivered === 0;
}

function ratio(gavel: Measured | undefined, etcd: Measured | undefined): string {
  if (gavel === undefined || etcd === undefined || gavel.failed !== '' || etcd.failed !== '') return '-';
  if (gavel.kind === 'paced') return `latency ×${(gavel.p50Ms / etcd.p50Ms).toFixed(1)} / ×${(gavel.p99Ms / etcd.p99Ms).toFixed(1)}`;
  return (perSecond(gavel) / perSecond(etcd)).toFixed(2);
}

/** Milliseconds of the members' CPU per operation, and the cores they kept busy. */
function cpuCell(result: Measured | undefined): string {
  if (result === undefined || result.failed !== '' || !Number.isFinite(result.clusterCpuSeconds) || result.operations === 0) return '-';
  const perOperationMs = (result.clusterCpuSeconds * 1000) / result.operations;
  return `${perOperationMs.toFixed(3)} ms (${(result.clusterCpuSeconds / result.windowSeconds).toFixed(2)} cores)`;
}

function cpuRatio(gavel: Measured | undefined, etcd: Measured | undefined): string {
  if (gavel === undefined || etcd === undefined || gavel.operations === 0 || etcd.operations === 0) return '-';
  const value = (gavel.clusterCpuSeconds / gavel.operations) / (etcd.clusterCpuSeconds / etcd.operations);
  return Number.isFinite(value) ? value.toFixed(2) : '-';
}

function printComparison(options: Options, runs: readonly TargetRun[]): void {
  const etcd = runs.find((run) => run.target === 'etcd');
  const gavel = runs.find((run) => run.target === 'gavel');
  const both = etcd !== undefined && gavel !== undefined;
  const header = ['workload (Go clientv3, 3 members)', ...runs.map((run) => (run.target === 'etcd' ? 'etcd 3.4' : 'gavel')), ...(both ? ['gavel / etcd'] : []),
    ...runs.map((run) => `${run.target} CPU per op`), ...(both ? ['CPU per op gavel / etcd'] : [])];
  const lines = options.only.map((workload) => {
    const title = runs.map((run) => run.results.get(workload)?.title).find((text) => text !== undefined && text !== '') ?? workload;
    const results = runs.map((run) => run.results.get(workload));
    const mine = (run: TargetRun | undefined): Measured | undefined => run?.results.get(workload);
    return [title, ...results.map(cell), ...(both ? [ratio(mine(gavel), mine(etcd))] : []), ...results.map(cpuCell), ...(both ? [cpuRatio(mine(gavel), mine(etcd))] : [])];
  });
  process.stdout.write(`${markdownTable(header, lines)}\n\n`);
  printNotes(options, runs);
}

/** Below the table: failures, first errors, undelivered events, and what etcdbench noted. */
function printNotes(options: Options, runs: readonly TargetRun[]): void {
  for (const run of runs) {
    const total = `members' CPU ${run.totalCpuSeconds.toFixed(1)} s over ${run.totalSeconds.toFixed(1)} s (${(run.totalCpuSeconds / run.totalSeconds).toFixed(2)} cores, setup included)`;
    const failure = run.failure === undefined ? '' : `; FAILED: ${run.failure}`;
    process.stdout.write(`${run.version} (client: ${run.client || 'unknown'}): leader ${run.leaders || '?'}; load average ${run.loadBefore} before, ${run.loadAfter} after; ${total}${failure}\n`);
    for (const workload of options.only) {
      const result = run.results.get(workload);
      if (result === undefined) continue;
      const notes = [
        result.note,
        result.firstError === '' ? '' : `first error: ${result.firstError}`,
        result.undelivered > 0 ? `${result.undelivered} events undelivered after the drain` : '',
        Number.isFinite(result.clientCpuSeconds) ? `etcdbench ${(result.clientCpuSeconds / result.windowSeconds).toFixed(2)} cores` : '',
      ].filter((note) => note !== '');
      process.stdout.write(`  ${workload}: ${result.operations.toLocaleString('en-US')} ${result.unit} in ${result.seconds.toFixed(1)} s; ${notes.join('; ')}\n`);
    }
  }
}

// ---------------------------------------------------------------------------------------------

function serverVersion(target: Target): string {
  try {
    if (target === 'etcd') return execFileSync(ETCD_BIN, ['--version'], { encoding: 'utf8' }).split('\n')[0]?.trim() ?? 'etcd';
    const pkg = asObject(JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as Json, 'package.json');
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot(), encoding: 'utf8' }).trim();
    return `gavel ${String(pkg['version'])} (${commit})`;
  } catch {
    return target;
  }
}

/**
 * One target's rounds as one run: per workload the round with the median figure (throughput, or
 * p50 latency for paced rows), its note listing every round's figure; totals summed.
 */
function medianRun(options: Options, rounds: readonly TargetRun[]): TargetRun {
  if (rounds.length === 1) return rounds[0]!;
  const first = rounds[0]!;
  const last = rounds.at(-1)!;
  const results = new Map<string, Measured>();
  for (const workload of options.only) {
    const measured = rounds.map((run) => run.results.get(workload)).filter((result): result is Measured => result !== undefined && result.failed === '');
    if (measured.length === 0) {
      const failed = rounds.map((run) => run.results.get(workload)).find((result) => result !== undefined);
      if (failed !== undefined) results.set(workload, failed);
      continue;
    }
    const paced = measured[0]!.kind === 'paced';
    const figure = (result: Measured): number => (paced ? result.p50Ms : perSecond(result));
    const sorted = [...measured].sort((a, b) => figure(a) - figure(b));
    const median = sorted[Math.floor(sorted.length / 2)]!;
    const each = measured.map((result) => (paced ? `p50 ${ms(result.p50Ms)} ms` : `${grouped(perSecond(result))}/s`)).join(', ');
    const note = `median of ${measured.length} runs (${each})`;
    results.set(workload, { ...median, note: median.note === '' ? note : `${median.note}; ${note}` });
  }
  return {
    ...first,
    results,
    loadAfter: last.loadAfter,
    totalCpuSeconds: rounds.reduce((sum, run) => sum + run.totalCpuSeconds, 0),
    totalSeconds: rounds.reduce((sum, run) => sum + run.totalSeconds, 0),
    leaders: rounds.map((run) => run.leaders).join(', '),
    failure: rounds.map((run) => run.failure).find((failure) => failure !== undefined),
  };
}

function loadAverage(): string {
  return loadavg().map((value) => value.toFixed(2)).join(' ');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (!existsSync(options.bin)) {
    throw new Error(`${options.bin} does not exist: build it with 'bash test/bench/go/build.sh' (needs Go and Debian's golang-etcd-server-dev), or run 'npm run bench:go'`);
  }
  const cpuList = cpus();
  process.stdout.write(`command: ${process.argv.map((arg) => (/\s/.test(arg) ? JSON.stringify(arg) : arg)).join(' ')}\n`);
  process.stdout.write(`machine: ${cpuList.length} cores (${cpuList[0]?.model.trim() ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${platform()} ${release()}, node ${process.version}\n`);
  const goFlags = options.goFlags.length > 0 ? ` ${options.goFlags.join(' ')}` : '';
  process.stdout.write(`client: ${options.bin}${goFlags} (etcd's clientv3 from Debian's golang-etcd-server-dev)\n`);
  process.stdout.write(`servers: 3 members per target on loopback, heartbeat 100 ms, election timeout 1000 ms; ${options.durationSeconds} s per workload; CPU per op = the members' utime+stime over the window / operations\n\n`);
  const rounds = new Map<Target, TargetRun[]>(options.targets.map((target) => [target, []]));
  try {
    for (let round = 1; round <= options.repeat; round++) {
      if (options.repeat > 1) process.stdout.write(`[bench:go] round ${round} of ${options.repeat}\n`);
      for (const target of options.targets) rounds.get(target)!.push(await runTarget(options, target));
    }
  } finally {
    await stopAllClusters();
  }
  printComparison(options, options.targets.map((target) => medianRun(options, rounds.get(target)!)));
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench:go failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    void stopAllClusters().finally(() => process.exit(1));
  },
);
