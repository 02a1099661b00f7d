/**
 * Soak benchmark (figures, never pass/fail; issue #17 item 6): a 3-member cluster of gavel, or of
 * etcd 3.4 with --target etcd, under a lock workload for --duration seconds with auto-compaction
 * on. --clients workers (default 16), each with a session of its own, repeat lock + unlock on one
 * of --locks lock names (worker i uses lock i mod locks) with the project's client Mutex
 * (--lock mutex, the KV recipe) or the server's v3lock service (--lock v3lock); --watchers
 * clients watch the lock prefix. Every --interval seconds (default 60) a row: elapsed time,
 * lock cycles per second, p50/p99/max lock-cycle latency in that interval, errors, watch events
 * per second, each member's RSS (VmRSS) and data dir size on disk, the store revision (Status)
 * and the compacted revision (the oldest revision a serializable Range still answers). At the
 * end a summary table.
 *
 *   npm run bench:soak -- [--target gavel|etcd] [--duration SECONDS] [--interval SECONDS]
 *       [--clients 16] [--locks 4] [--watchers 2] [--lock mutex|v3lock]
 *       [--auto-compaction-mode periodic|revision] [--auto-compaction-retention 5m]
 *       [--pause-member SECONDS]
 *   the real run: npm run bench:soak -- --duration 3600
 *
 * Both targets get the same auto-compaction flags: gavel's default (periodic, 5m) unless given;
 * etcd's own default is off. --pause-member stops one follower with SIGSTOP for that many
 * seconds at a third of the run, to show the workload and the sampling survive a slow member.
 * Every call has a deadline, every loop ends by --duration plus bounded grace, and every
 * process started is stopped at the end (and on SIGINT, through the harness's hooks).
 */
import { Client, type Session } from '../../client/index.js';
import { integer, oneOf, parseFlags, positive, target } from './args.js';
import { diskUsageBytes, megabytes, memoryOf, sleep, type MemoryFigures } from './process-stats.js';
import { count, loadAverage, milliseconds, printColumns, printPreamble, progress } from './report.js';
import { percentile } from './table.js';
import { withGrace } from './loop.js';
import { startCluster, stopAllClusters, type Cluster, type ClusterMember } from '../helpers/cluster.js';
import type { Target } from '../helpers/gavel.js';
import { EtcdGrpcClient } from '../helpers/grpc.js';

interface Options {
  target: Target;
  durationSeconds: number;
  intervalSeconds: number;
  clients: number;
  locks: number;
  watchers: number;
  lock: 'mutex' | 'v3lock';
  compactionMode: string;
  compactionRetention: string;
  pauseMemberSeconds: number;
}

/** What the workers report for one interval; swapped out at each sample. */
interface Interval {
  latenciesMs: number[];
  errors: number;
  watchEvents: number;
  firstError?: string;
}

interface MemberSample {
  memory: MemoryFigures | undefined;
  diskBytes: number;
  revision: number | undefined;
}

interface Sample {
  elapsedSeconds: number;
  seconds: number;
  cycles: number;
  latenciesMs: number[];
  errors: number;
  watchEvents: number;
  members: MemberSample[];
  revision: number | undefined;
  compacted: number | undefined;
}

const LOCK_PREFIX = 'soak/lock/';
const SESSION_TTL_SECONDS = 10;
/** Bound on one lock or unlock; a worker whose call fails backs off ERROR_PAUSE_MS and goes on. */
const CALL_TIMEOUT_MS = 30_000;
const ERROR_PAUSE_MS = 200;
/** Bounds of one sample: each Status, and the whole compacted-revision search. */
const STATUS_DEADLINE_MS = 2_000;
const COMPACTED_SEARCH_MS = 5_000;

function parseOptions(argv: readonly string[]): Options {
  const options: Options = {
    target: 'gavel', durationSeconds: 180, intervalSeconds: 60, clients: 16, locks: 4, watchers: 2, lock: 'mutex',
    compactionMode: 'periodic', compactionRetention: '5m', pauseMemberSeconds: 0,
  };
  parseFlags(
    argv,
    {
      '--target': (value) => (options.target = target(value())),
      '--duration': (value) => (options.durationSeconds = positive('--duration', value())),
      '--interval': (value) => (options.intervalSeconds = positive('--interval', value())),
      '--clients': (value) => (options.clients = integer('--clients', value())),
      '--locks': (value) => (options.locks = integer('--locks', value())),
      '--watchers': (value) => (options.watchers = Number(value())),
      '--lock': (value) => (options.lock = oneOf('--lock', value(), ['mutex', 'v3lock'] as const)),
      '--auto-compaction-mode': (value) => (options.compactionMode = oneOf('--auto-compaction-mode', value(), ['periodic', 'revision'] as const)),
      '--auto-compaction-retention': (value) => (options.compactionRetention = value()),
      '--pause-member': (value) => (options.pauseMemberSeconds = positive('--pause-member', value())),
    },
    'usage: node dist/test/bench/soak.js [--target gavel|etcd] [--duration SECONDS] [--interval SECONDS] [--clients N] [--locks N] [--watchers N] [--lock mutex|v3lock] [--auto-compaction-mode periodic|revision] [--auto-compaction-retention R] [--pause-member SECONDS]',
  );
  if (!Number.isInteger(options.watchers) || options.watchers < 0) throw new Error('--watchers must be a non-negative integer');
  return options;
}

/** A client whose endpoint list starts at member i mod n, so clients spread over members and fail over to the rest. */
function clientFor(cluster: Cluster, index: number): Client {
  const endpoints = cluster.members.map((member) => member.endpoint);
  const start = index % endpoints.length;
  return new Client({ endpoints: [...endpoints.slice(start), ...endpoints.slice(0, start)], defaultTimeoutMs: CALL_TIMEOUT_MS });
}

/** The load: lock workers and watchers, all ending at `deadline` (performance.now() ms). */
class Workload {
  current: Interval = { latenciesMs: [], errors: 0, watchEvents: 0 };
  private readonly clients: Client[] = [];
  private readonly abort = new AbortController();
  private readonly watchAbort = new AbortController();
  private readonly tasks: Promise<void>[] = [];

  constructor(private readonly cluster: Cluster, private readonly options: Options, private readonly deadline: number) {}

  start(): void {
    for (let worker = 0; worker < this.options.clients; worker += 1) this.tasks.push(this.lockWorker(worker));
    for (let watcher = 0; watcher < this.options.watchers; watcher += 1) this.tasks.push(this.watcher(watcher));
  }

  /** Returns the interval so far and starts a new one. */
  take(): Interval {
    const interval = this.current;
    this.current = { latenciesMs: [], errors: 0, watchEvents: 0 };
    return interval;
  }

  private error(error: unknown): void {
    this.current.errors += 1;
    this.current.firstError ??= error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  }

  private async lockWorker(worker: number): Promise<void> {
    const client = clientFor(this.cluster, worker);
    this.clients.push(client);
    const name = `${LOCK_PREFIX}${worker % this.options.locks}`;
    let session: Session | undefined;
    while (performance.now() < this.deadline && !this.abort.signal.aborted) {
      try {
        if (session === undefined || session.state === 'expired' || session.state === 'closed') {
          session = await client.session({ ttlSeconds: SESSION_TTL_SECONDS, timeoutMs: CALL_TIMEOUT_MS });
        }
        const begin = performance.now();
        await this.cycle(client, session, name);
        this.current.latenciesMs.push(performance.now() - begin);
      } catch (error) {
        this.error(error);
        await sleep(ERROR_PAUSE_MS);
      }
    }
    await session?.close({ timeoutMs: 5_000 }).catch(() => undefined);
  }

  private async cycle(client: Client, session: Session, name: string): Promise<void> {
    if (this.options.lock === 'mutex') {
      const mutex = await client.mutex(name, { session }).lock({ timeoutMs: CALL_TIMEOUT_MS });
      await mutex.unlock({ timeoutMs: CALL_TIMEOUT_MS });
      return;
    }
    const held = await client.lockService.lock(name, { lease: session.leaseId, timeoutMs: CALL_TIMEOUT_MS });
    await client.lockService.unlock(held.key, { timeoutMs: CALL_TIMEOUT_MS });
  }

  /** Watches the lock prefix from now; a watch that ends (compacted, failed) is started again. */
  private async watcher(index: number): Promise<void> {
    const client = clientFor(this.cluster, index + 1);
    this.clients.push(client);
    while (performance.now() < this.deadline && !this.watchAbort.signal.aborted) {
      try {
        for await (const batch of client.watch(LOCK_PREFIX, { prefix: true, signal: this.watchAbort.signal })) this.current.watchEvents += batch.events.length;
      } catch (error) {
        this.error(error);
      }
      await sleep(ERROR_PAUSE_MS);
    }
  }

  /** Ends the watches, waits (bounded) for the lock workers to finish their cycle, then closes everything. */
  async stop(): Promise<void> {
    this.watchAbort.abort();
    const tasks = Promise.all(this.tasks);
    await withGrace(tasks, CALL_TIMEOUT_MS * 2 + 5_000);
    this.abort.abort();
    await withGrace(tasks, 10_000);
    for (const client of this.clients) client.close();
  }
}

/** One member's Status revision, or undefined if it does not answer in time (paused, slow, dead). */
async function statusRevision(probe: EtcdGrpcClient): Promise<number | undefined> {
  try {
    const status = await probe.unary<{ header: { revision: string } }>('Maintenance', 'Status', {}, STATUS_DEADLINE_MS);
    return Number(status.header.revision);
  } catch {
    return undefined;
  }
}

/**
 * The compacted revision: the smallest revision a serializable Range still answers (both etcd and
 * gavel refuse revisions below the compacted one). A binary search between the last answer and
 * the current revision, bounded by COMPACTED_SEARCH_MS; undefined if it runs out.
 */
async function compactedRevision(probe: EtcdGrpcClient, from: number, current: number): Promise<number | undefined> {
  const deadline = performance.now() + COMPACTED_SEARCH_MS;
  let low = Math.max(1, from);
  let high = current;
  while (low < high) {
    const remaining = deadline - performance.now();
    if (remaining <= 0) return undefined;
    const middle = Math.floor((low + high) / 2);
    try {
      await probe.unary('KV', 'Range', { key: Buffer.from('soak/none'), revision: middle, serializable: true, count_only: true }, Math.min(STATUS_DEADLINE_MS, remaining));
      high = middle;
    } catch (error) {
      if (!(error instanceof Error && error.message.includes('compacted'))) return undefined;
      low = middle + 1;
    }
  }
  return low <= 1 ? 0 : low;
}

async function sample(cluster: Cluster, probes: Map<ClusterMember, EtcdGrpcClient>, last: Sample | undefined): Promise<Omit<Sample, 'elapsedSeconds' | 'seconds' | 'cycles' | 'latenciesMs' | 'errors' | 'watchEvents'>> {
  const members = await Promise.all(cluster.members.map(async (member) => ({
    memory: member.running ? memoryOf(member.pid) : undefined,
    diskBytes: diskUsageBytes(member.dataDir),
    revision: member.paused ? undefined : await statusRevision(probes.get(member) as EtcdGrpcClient),
  })));
  const answered = cluster.members.map((member, index) => ({ member, revision: members[index]?.revision })).filter((entry) => entry.revision !== undefined);
  const newest = answered.reduce<{ member: ClusterMember; revision: number } | undefined>((best, entry) => (best === undefined || (entry.revision ?? 0) > best.revision ? { member: entry.member, revision: entry.revision ?? 0 } : best), undefined);
  const compacted = newest === undefined ? undefined : await compactedRevision(probes.get(newest.member) as EtcdGrpcClient, last?.compacted ?? 1, newest.revision);
  return { members, revision: newest?.revision, compacted };
}

const ROW_HEADER = ['elapsed s', 'cycles/s', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'watch ev/s', 'RSS MB n1/n2/n3', 'disk MB n1/n2/n3', 'revision', 'compacted'];
const ROW_WIDTHS = [9, 8, 7, 8, 8, 6, 10, 15, 16, 10, 10];

function formatRow(cells: readonly string[]): string {
  return cells.map((cell, column) => cell.padStart(ROW_WIDTHS[column] ?? 0)).join('  ');
}

function rowOf(entry: Sample): string[] {
  const sorted = [...entry.latenciesMs].sort((a, b) => a - b);
  return [
    entry.elapsedSeconds.toFixed(0), (entry.cycles / entry.seconds).toFixed(1), milliseconds(percentile(sorted, 0.5)), milliseconds(percentile(sorted, 0.99)), milliseconds(sorted.at(-1)),
    String(entry.errors), (entry.watchEvents / entry.seconds).toFixed(1),
    entry.members.map((member) => megabytes(member.memory?.rssBytes)).join('/'), entry.members.map((member) => megabytes(member.diskBytes)).join('/'),
    entry.revision === undefined ? '-' : String(entry.revision), entry.compacted === undefined ? '-' : String(entry.compacted),
  ];
}

/** SIGSTOP one follower for `seconds` at a third of the run (--pause-member). */
async function pauseFollower(cluster: Cluster, options: Options, started: number): Promise<void> {
  await sleep(Math.max(0, started + (options.durationSeconds * 1000) / 3 - performance.now()));
  const leader = await cluster.leader().catch(() => undefined);
  const follower = cluster.members.find((member) => member !== leader && member.running);
  if (follower === undefined) return;
  progress(`pausing ${follower.name} (SIGSTOP) for ${options.pauseMemberSeconds} s`);
  await cluster.kill(follower, 'SIGSTOP');
  await sleep(options.pauseMemberSeconds * 1000);
  await cluster.kill(follower, 'SIGCONT');
  progress(`resumed ${follower.name}`);
}

async function soak(cluster: Cluster, options: Options): Promise<Sample[]> {
  const probes = new Map(cluster.members.map((member) => [member, new EtcdGrpcClient(member.endpoint)] as const));
  const samples: Sample[] = [];
  const started = performance.now();
  const deadline = started + options.durationSeconds * 1000;
  const workload = new Workload(cluster, options, deadline);
  workload.start();
  const pause = options.pauseMemberSeconds > 0 ? pauseFollower(cluster, options, started) : Promise.resolve();
  process.stdout.write(`${formatRow(ROW_HEADER)}\n`);
  try {
    let intervalStart = started;
    while (intervalStart < deadline - 1) {
      await sleep(Math.max(0, Math.min(deadline, intervalStart + options.intervalSeconds * 1000) - performance.now()));
      const interval = workload.take();
      const now = performance.now();
      const measured = await sample(cluster, probes, samples.at(-1));
      const entry: Sample = { elapsedSeconds: (now - started) / 1000, seconds: (now - intervalStart) / 1000, cycles: interval.latenciesMs.length, latenciesMs: interval.latenciesMs, errors: interval.errors, watchEvents: interval.watchEvents, ...measured };
      samples.push(entry);
      process.stdout.write(`${formatRow(rowOf(entry))}${interval.firstError === undefined ? '' : `   first error: ${interval.firstError.slice(0, 160)}`}\n`);
      intervalStart = now;
    }
  } finally {
    await workload.stop();
    await withGrace(pause, options.pauseMemberSeconds * 1000 + 10_000);
    for (const probe of probes.values()) probe.close();
  }
  return samples;
}

function summary(cluster: Cluster, samples: readonly Sample[], options: Options): void {
  const latencies = samples.flatMap((entry) => entry.latenciesMs).sort((a, b) => a - b);
  const seconds = samples.reduce((total, entry) => total + entry.seconds, 0);
  const first = samples[0];
  const last = samples.at(-1);
  const compactions = new Set(samples.map((entry) => entry.compacted).filter((value) => value !== undefined && value > 0)).size;
  process.stdout.write('\nsummary\n');
  printColumns(['', 'value'], [
    ['lock cycles (errors)', `${count(latencies.length)} (${samples.reduce((total, entry) => total + entry.errors, 0)})`],
    ['cycles/s', (latencies.length / seconds).toFixed(1)],
    ['lock cycle p50 / p99 / max ms', `${milliseconds(percentile(latencies, 0.5))} / ${milliseconds(percentile(latencies, 0.99))} / ${milliseconds(latencies.at(-1))}`],
    ['worst interval p99 ms', milliseconds(samples.map((entry) => percentile([...entry.latenciesMs].sort((a, b) => a - b), 0.99)).filter((value) => !Number.isNaN(value)).reduce((a, b) => Math.max(a, b), Number.NEGATIVE_INFINITY))],
    ['watch events', count(samples.reduce((total, entry) => total + entry.watchEvents, 0))],
    ['revision first / last sample', `${first?.revision ?? '-'} / ${last?.revision ?? '-'}`],
    ['compacted revision at the end (distinct values seen)', `${last?.compacted ?? '-'} (${compactions})`],
  ]);
  process.stdout.write('\n');
  printColumns(['member', 'RSS MB first / last / max', 'peak (VmHWM) MB', 'disk MB first / last / max'], cluster.members.map((member, index) => {
    const rss = samples.map((entry) => entry.members[index]?.memory?.rssBytes).filter((value): value is number => value !== undefined);
    const disk = samples.map((entry) => entry.members[index]?.diskBytes ?? Number.NaN);
    return [
      member.name,
      `${megabytes(rss[0])} / ${megabytes(rss.at(-1))} / ${megabytes(Math.max(...rss))}`,
      megabytes(last?.members[index]?.memory?.peakBytes),
      `${megabytes(disk[0])} / ${megabytes(disk.at(-1))} / ${megabytes(Math.max(...disk))}`,
    ];
  }));
  process.stdout.write(`\nfinished: ${loadAverage()}; ${options.pauseMemberSeconds > 0 ? `one follower was paused ${options.pauseMemberSeconds} s at a third of the run` : 'no member paused'}\n`);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  printPreamble([options.target]);
  const args = ['--auto-compaction-mode', options.compactionMode, '--auto-compaction-retention', options.compactionRetention];
  process.stdout.write(
    `workload: 3 members of ${options.target} (${args.join(' ')}); ${options.clients} clients on ${options.locks} lock(s) with ${options.lock === 'mutex' ? 'the client Mutex (KV recipe)' : 'the v3lock service'}, ` +
      `sessions of ${SESSION_TTL_SECONDS} s, clients spread over the members; ${options.watchers} watcher(s) on the lock prefix; ${options.durationSeconds} s, a row every ${options.intervalSeconds} s\n\n`,
  );
  const cluster = await startCluster({ members: 3, target: options.target, args });
  try {
    summary(cluster, await soak(cluster, options), options);
  } finally {
    await stopAllClusters();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    void stopAllClusters().finally(() => process.exit(1));
  },
);
