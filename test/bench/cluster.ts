/**
 * Cluster benchmark (not a test; figures, never pass/fail): for a 1-member and a 3-member
 * cluster, put throughput with 1, 16 and 256 concurrent clients, linearizable and serializable
 * range throughput with the same client counts, and failover time — kill -9 of the leader to the
 * first acknowledged write through a survivor — as the median of 5 runs.
 *
 *   node dist/test/bench/cluster.js [--target gavel|etcd] [--duration SECONDS] [--members 1,3]
 *                                   [--clients 1,16,256] [--failover-runs N] [--value-bytes N]
 *
 * Clients are spread round-robin over every member (as etcd's own benchmark does with several
 * endpoints), so a follower forwards the writes it receives. Concurrent clients share at most
 * CONNECTIONS_MAX gRPC connections (HTTP/2 multiplexes them). Each measurement runs for
 * --duration seconds (default 5) and then waits, bounded, for the requests still in flight.
 */
import type { Row as TableRow } from './table.js';
import { runClosedLoop, type Operation } from './loop.js';
import { parseFlags, positive, target } from './args.js';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, platform, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { startCluster, stopAllClusters, type Cluster, type ClusterMember } from '../helpers/cluster.js';
import { ETCD_BIN, repoRoot, waitUntil, type Target } from '../helpers/gavel.js';
import { EtcdGrpcClient } from '../helpers/grpc.js';

interface Options {
  target: Target;
  durationSeconds: number;
  memberCounts: number[];
  clientCounts: number[];
  failoverRuns: number;
  valueBytes: number;
}

interface Row extends TableRow {
  members: number;
}

interface FailoverRow {
  members: number;
  runsMs: number[];
  failures: string[];
}

const CONNECTIONS_MAX = 16;
const FAILOVER_BOUND_MS = 30_000;
const FAILOVER_PROBE_DEADLINE_MS = 500;

function parseOptions(argv: readonly string[]): Options {
  const options: Options = { target: 'gavel', durationSeconds: 5, memberCounts: [1, 3], clientCounts: [1, 16, 256], failoverRuns: 5, valueBytes: 256 };
  parseFlags(
    argv,
    {
      '--target': (value) => (options.target = target(value())),
      '--duration': (value) => (options.durationSeconds = positive('--duration', value())),
      '--members': (value) => (options.memberCounts = list('--members', value())),
      '--clients': (value) => (options.clientCounts = list('--clients', value())),
      '--failover-runs': (value) => (options.failoverRuns = positive('--failover-runs', value())),
      '--value-bytes': (value) => (options.valueBytes = positive('--value-bytes', value())),
    },
    'usage: node dist/test/bench/cluster.js [--target gavel|etcd] [--duration SECONDS] [--members 1,3] [--clients 1,16,256] [--failover-runs N] [--value-bytes N]',
  );
  return options;
}


function list(flag: string, text: string): number[] {
  const values = text.split(',').map((part) => Number(part));
  if (values.length === 0 || values.some((value) => !Number.isInteger(value) || value <= 0)) throw new Error(`${flag} must be a comma-separated list of positive integers, got ${text}`);
  return values;
}

/** Runs `operation` in `clients` closed loops spread over `endpoints` for durationMs; in-flight requests get a bounded grace. */
async function closedLoop(members: number, name: string, endpoints: readonly string[], clients: number, durationMs: number, operation: Operation): Promise<Row> {
  // Concurrent clients share at most CONNECTIONS_MAX connections, spread over every member.
  const connections = Array.from({ length: Math.min(clients, CONNECTIONS_MAX) }, (_, index) => new EtcdGrpcClient(endpoints[index % endpoints.length] as string));
  return { members, name, clients, ...(await runClosedLoop(connections, clients, durationMs, operation)) };
}

/** Milliseconds from SIGKILL of the leader to the first acknowledged put through any survivor. */
async function failoverOnce(cluster: Cluster): Promise<number> {
  const leader = await cluster.waitForLeader();
  const survivors = cluster.live().filter((member) => member !== leader);
  const clients = survivors.map((member) => new EtcdGrpcClient(member.endpoint));
  try {
    const killedAt = performance.now();
    await cluster.kill(leader, 'SIGKILL');
    let acceptedAt: number | undefined;
    // One probe loop per survivor, back to back, each put with a short deadline.
    await Promise.all(clients.map(async (client, index) => {
      for (let sequence = 0; acceptedAt === undefined && performance.now() - killedAt < FAILOVER_BOUND_MS; sequence += 1) {
        try {
          await client.unary('KV', 'Put', { key: Buffer.from(`bench/failover/${index}`), value: Buffer.from(String(sequence)) }, FAILOVER_PROBE_DEADLINE_MS);
          acceptedAt ??= performance.now();
        } catch {
          // no leader yet, or the put hit the dead leader: try again
        }
      }
    }));
    if (acceptedAt === undefined) throw new Error(`no write accepted within ${FAILOVER_BOUND_MS} ms of the leader kill`);
    return acceptedAt - killedAt;
  } finally {
    for (const client of clients) client.close();
    await cluster.restart(leader);
    await waitForSameAppliedIndex(cluster, leader);
  }
}

/** Before the next run: the restarted member has applied what the others have (bounded). */
async function waitForSameAppliedIndex(cluster: Cluster, member: ClusterMember): Promise<void> {
  await cluster.waitForLeader();
  await waitUntil(`${member.name} to catch up`, async () => {
    const statuses = await Promise.all(cluster.live().map((candidate) => cluster.status(candidate)));
    const applied = statuses.map((status) => status.raftAppliedIndex);
    return Math.min(...applied) === Math.max(...applied) ? true : undefined;
  }, FAILOVER_BOUND_MS, 100);
}


function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? Number.NaN;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

function printTable(header: readonly string[], lines: readonly string[][]): void {
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => (line[column] ?? '').length)));
  const format = (cells: readonly string[]): string => cells.map((cell, column) => (column === 1 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join('  ');
  process.stdout.write(`${format(header)}\n${widths.map((width) => '-'.repeat(width)).join('  ')}\n`);
  for (const line of lines) process.stdout.write(`${format(line)}\n`);
}

function printResults(rows: readonly Row[], failovers: readonly FailoverRow[]): void {
  printTable(
    ['members', 'measurement', 'clients', 'ops', 'errors', 'ops/s', 'p50 ms', 'p99 ms'],
    rows.map((row) => {
      const sorted = [...row.latenciesMs].sort((a, b) => a - b);
      return [String(row.members), row.name, String(row.clients), String(row.operations), String(row.errors), (row.operations / row.seconds).toFixed(0), percentile(sorted, 0.5).toFixed(2), percentile(sorted, 0.99).toFixed(2)];
    }),
  );
  process.stdout.write('\n');
  printTable(
    ['members', 'failover: kill -9 leader -> first acknowledged write', 'runs', 'median ms', 'min ms', 'max ms'],
    failovers.map((row) =>
      row.runsMs.length === 0
        ? [String(row.members), row.failures.length > 0 ? `failed: ${row.failures.join('; ')}` : 'n/a (no other member to take over)', '0', '-', '-', '-']
        : [
            String(row.members),
            `${row.runsMs.map((ms) => ms.toFixed(0)).join(', ')}${row.failures.length > 0 ? ` (${row.failures.length} failed)` : ''}`,
            String(row.runsMs.length),
            median(row.runsMs).toFixed(0),
            Math.min(...row.runsMs).toFixed(0),
            Math.max(...row.runsMs).toFixed(0),
          ],
    ),
  );
}

function serverVersion(target: Target): string {
  try {
    if (target === 'etcd') return execFileSync(ETCD_BIN, ['--version'], { encoding: 'utf8' }).split('\n')[0]?.trim() ?? 'etcd';
    const pkg: unknown = JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8'));
    const version = typeof pkg === 'object' && pkg !== null ? (pkg as { version?: unknown }).version : undefined;
    return `gavel ${typeof version === 'string' ? version : '?'}`;
  } catch {
    return target;
  }
}

async function benchCluster(options: Options, members: number, rows: Row[], failovers: FailoverRow[]): Promise<void> {
  const durationMs = options.durationSeconds * 1000;
  const value = Buffer.alloc(options.valueBytes, 'v');
  const cluster = await startCluster({ members, target: options.target });
  try {
    const endpoints = cluster.members.map((member) => member.endpoint);
    process.stderr.write(`[bench] ${members} member(s) up at ${endpoints.join(',')}\n`);
    for (const clients of options.clientCounts) {
      rows.push(await closedLoop(members, 'put', endpoints, clients, durationMs, (client, worker, sequence) =>
        client.unary('KV', 'Put', { key: Buffer.from(`bench/put/${worker}/${sequence % 1000}`), value })));
    }
    const seed = new EtcdGrpcClient(endpoints[0] as string);
    await seed.unary('KV', 'Put', { key: Buffer.from('bench/range'), value });
    seed.close();
    for (const serializable of [false, true]) {
      for (const clients of options.clientCounts) {
        rows.push(await closedLoop(members, `range (${serializable ? 'serializable' : 'linearizable'})`, endpoints, clients, durationMs, (client) =>
          client.unary('KV', 'Range', { key: Buffer.from('bench/range'), serializable })));
      }
    }
    const failover: FailoverRow = { members, runsMs: [], failures: [] };
    failovers.push(failover);
    if (members >= 3) {
      for (let run = 0; run < options.failoverRuns; run += 1) {
        try {
          failover.runsMs.push(await failoverOnce(cluster));
        } catch (error) {
          failover.failures.push(error instanceof Error ? error.message.split('\n')[0] ?? '' : String(error));
        }
      }
    }
  } finally {
    await cluster.stop();
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const cpuList = cpus();
  process.stdout.write(`command: ${process.argv.map((arg) => (/\s/.test(arg) ? JSON.stringify(arg) : arg)).join(' ')}\n`);
  process.stdout.write(`machine: ${cpuList.length} cores (${cpuList[0]?.model.trim() ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${platform()} ${release()}, node ${process.version}\n`);
  process.stdout.write(`server: ${serverVersion(options.target)}; members ${options.memberCounts.join(', ')} on loopback; heartbeat 100 ms, election timeout 1000 ms; ${options.durationSeconds} s per measurement; ${options.valueBytes}-byte values; clients round-robin over all members, at most ${CONNECTIONS_MAX} connections\n\n`);
  const rows: Row[] = [];
  const failovers: FailoverRow[] = [];
  try {
    for (const members of options.memberCounts) await benchCluster(options, members, rows, failovers);
  } finally {
    await stopAllClusters();
  }
  printResults(rows, failovers);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    void stopAllClusters().finally(() => process.exit(1));
  },
);
