/**
 * One fault-test run: a real cluster on loopback, the workloads from clients on every member,
 * the seeded nemesis for `durationMs`, the heal, a quiet tail, then the checkers and the report.
 * The cluster, its temp dirs and every client are cleaned up whatever happens.
 */
import { setMaxListeners } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster, type ClusterMember } from '../helpers/cluster.js';
import { Prng } from '../sim/prng.js';
import { connectClients, type FaultClient } from './client.js';
import { ElectionWorkload, type ElectionWorkloadOptions } from './election.js';
import { LockWorkload, type LockWorkloadOptions } from './lock.js';
import { nemesisVerdict, planNemesis, runNemesis, type NemesisProfile } from './nemesis.js';
import { RegisterWorkload, type RegisterOptions } from './register.js';
import { buildReport, type FaultReport } from './report.js';
import { SetWorkload } from './set.js';
import { RunClock, sleep, type Verdict, type Workload, type WorkloadHistory } from './workload.js';

/** What a workload factory gets: its own seed, the run's clock, a key prefix of its own. */
export interface WorkloadContext {
  readonly seed: number;
  readonly clock: RunClock;
  readonly prefix: string;
}

export type WorkloadFactory = (context: WorkloadContext) => Workload;

export interface FaultRunOptions {
  readonly seed: number;
  /** How long the nemesis runs; the heal follows. */
  readonly durationMs: number;
  readonly members: 3 | 5;
  readonly profile?: NemesisProfile;
  /** Extra environment for the members (GAVEL_UNSAFE_LOCAL_READS=1 or GAVEL_UNSAFE_SKIP_FENCE=1 in the broken tests). */
  readonly env?: Readonly<Record<string, string>>;
  /** How long the workloads keep going on the healed cluster; default 2 s. */
  readonly settleMs?: number;
  /** Default: defaultWorkloads(), the four of issue 8. */
  readonly workloads?: readonly WorkloadFactory[];
  /** Progress lines; default silent. */
  readonly log?: (line: string) => void;
  /** When set, every member's output (all incarnations) is written to `<logDir>/<name>.log` at the end. */
  readonly logDir?: string;
}

export interface FaultRunResult {
  readonly report: FaultReport;
  readonly histories: readonly WorkloadHistory[];
}

/** Options of the default workloads that a caller may override (the broken tests do). */
export interface WorkloadOverrides {
  readonly register?: Partial<RegisterOptions>;
  readonly lock?: Partial<LockWorkloadOptions>;
  readonly election?: Partial<ElectionWorkloadOptions>;
}

/** The default workloads: (a) register, (b) lock with fencing, (c) election, (d) set. */
export function defaultWorkloads(overrides: WorkloadOverrides = {}): WorkloadFactory[] {
  return [
    (context) => new RegisterWorkload({ ...context, ...overrides.register }),
    lockWorkload(overrides.lock),
    (context) => new ElectionWorkload({ ...context, ...overrides.election }),
    (context) => new SetWorkload(context),
  ];
}

/** The lock workload alone (the fencing broken test runs only it). */
export function lockWorkload(options: Partial<LockWorkloadOptions> = {}): WorkloadFactory {
  return (context) => new LockWorkload({ ...context, ...options });
}

/** The command that replays the run's nemesis schedule (and its broken-server switch, if any). */
export function replayCommand(options: Pick<FaultRunOptions, 'seed' | 'durationMs' | 'members' | 'profile' | 'env'>): string {
  const profile = options.profile === undefined || options.profile === 'mixed' ? '' : ` --profile ${options.profile}`;
  const localReads = options.env?.['GAVEL_UNSAFE_LOCAL_READS'] === '1' ? ' --unsafe-local-reads' : '';
  const skipFence = options.env?.['GAVEL_UNSAFE_SKIP_FENCE'] === '1' ? ' --unsafe-skip-fence' : '';
  const unsafe = `${localReads}${skipFence}`;
  return `npm run test:fault -- --seed ${options.seed} --duration ${options.durationMs / 1000} --members ${options.members}${profile}${unsafe}`;
}

export async function runFaultTest(options: FaultRunOptions): Promise<FaultRunResult> {
  const plan = planNemesis({ seed: options.seed, members: options.members, durationMs: options.durationMs, profile: options.profile ?? 'mixed' });
  const log = options.log ?? ((): void => {});
  log(`starting ${options.members} members`);
  const cluster = await startCluster({ members: options.members, target: 'gavel', ...(options.env === undefined ? {} : { env: options.env }) });
  const clients: FaultClient[] = [];
  try {
    const clock = new RunClock();
    const seeds = new Prng(options.seed ^ 0x5eed);
    const workloads = (options.workloads ?? defaultWorkloads()).map((factory, index) => factory({ seed: seeds.next32(), clock, prefix: `fault/${index}` }));
    const stop = new AbortController();
    setMaxListeners(1_000, stop.signal); // every sleeping worker listens on it
    const running = workloads.map((workload) => {
      const own = connectClients(workload.name, cluster.members, workload.clientsPerMember);
      clients.push(...own);
      return workload.start(own, stop.signal);
    });
    // A workload that throws must not leave the others running: stop everything, then rethrow.
    const settled = Promise.allSettled(running);
    let nemesis;
    try {
      nemesis = await runNemesis({ cluster, plan, clock, log });
      await sleep(options.settleMs ?? 2_000);
    } finally {
      stop.abort();
    }
    const outcomes = await settled;
    const histories = outcomes.map((outcome) => {
      if (outcome.status === 'rejected') throw outcome.reason;
      return outcome.value;
    });
    log('checking');
    const verdicts: Verdict[] = [nemesisVerdict(nemesis), ...workloads.flatMap((workload, index) => workload.check(histories[index] as WorkloadHistory))];
    const memberLogs = cluster.members.map((member) => member.logs());
    const report = buildReport({ plan, replayCommand: replayCommand(options), histories, faults: nemesis.faults, skippedFaults: nemesis.skipped, verdicts, memberLogs });
    return { report, histories };
  } finally {
    for (const client of clients) client.close();
    // stop() continues paused members, SIGTERMs, escalates to SIGKILL, removes the temp dir.
    await cluster.stop();
    if (options.logDir !== undefined) writeMemberLogs(options.logDir, cluster.members);
  }
}

function writeMemberLogs(dir: string, members: readonly ClusterMember[]): void {
  mkdirSync(dir, { recursive: true });
  for (const member of members) writeFileSync(join(dir, `${member.name}.log`), member.logs());
}
