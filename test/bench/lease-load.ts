/**
 * Benchmark (not a test; figures, never pass/fail): does a well-behaved session survive many idle
 * leases? Issue #20's scenario on one member:
 *
 *   1. grant --leases idle leases (TTL --idle-ttl) from a few pipelined clients;
 *   2. measure the member's CPU for --idle seconds with nothing else happening;
 *   3. grant a --session-ttl lease and keep it alive every --interval ms for --session seconds
 *      over one KeepAlive stream, as a client library would: count the answers that report the
 *      lease gone (TTL 0) and the answer latencies, and the member's CPU meanwhile.
 *
 *   node dist/test/bench/lease-load.js [--target gavel|etcd] [--leases N] [--idle-ttl S] [--idle S]
 *                                      [--session-ttl S] [--interval MS] [--session S]
 */
import { readFileSync } from 'node:fs';
import { parseFlags, positive, target } from './args.js';
import { startMember, stopAllMembers, type Target } from '../helpers/gavel.js';
import { EtcdGrpcClient, type LeaseKeepAliveResponse } from '../helpers/grpc.js';

interface Options {
  target: Target;
  leases: number;
  idleTtlSeconds: number;
  idleSeconds: number;
  sessionTtlSeconds: number;
  intervalMs: number;
  sessionSeconds: number;
}

const GRANT_CLIENTS = 8;
const GRANTS_IN_FLIGHT_PER_CLIENT = 64;
/** Linux reports process CPU time in clock ticks of 1/100 s. */
const CLOCK_TICKS_PER_SECOND = 100;
/** A keep-alive unanswered this long counts as lost (the session would have given up). */
const ANSWER_TIMEOUT_MS = 10_000;

function parseOptions(argv: readonly string[]): Options {
  const options: Options = { target: 'gavel', leases: 200_000, idleTtlSeconds: 3600, idleSeconds: 20, sessionTtlSeconds: 3, intervalMs: 1000, sessionSeconds: 60 };
  parseFlags(
    argv,
    {
      '--target': (value) => (options.target = target(value())),
      '--leases': (value) => (options.leases = positive('--leases', value())),
      '--idle-ttl': (value) => (options.idleTtlSeconds = positive('--idle-ttl', value())),
      '--idle': (value) => (options.idleSeconds = positive('--idle', value())),
      '--session-ttl': (value) => (options.sessionTtlSeconds = positive('--session-ttl', value())),
      '--interval': (value) => (options.intervalMs = positive('--interval', value())),
      '--session': (value) => (options.sessionSeconds = positive('--session', value())),
    },
    'usage: node dist/test/bench/lease-load.js [--target gavel|etcd] [--leases N] [--idle-ttl S] [--idle S] [--session-ttl S] [--interval MS] [--session S]',
  );
  return options;
}

/** The process's user + system CPU time in seconds (Linux /proc). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

async function measureCpu(pid: number, seconds: number, during: Promise<unknown> = sleep(seconds * 1000)): Promise<number> {
  const before = cpuSeconds(pid);
  const started = performance.now();
  await during;
  return (100 * (cpuSeconds(pid) - before)) / ((performance.now() - started) / 1000);
}

async function grantIdleLeases(endpoint: string, count: number, ttlSeconds: number): Promise<number> {
  const clients = Array.from({ length: GRANT_CLIENTS }, () => new EtcdGrpcClient(endpoint));
  let next = 0;
  const started = performance.now();
  const worker = async (client: EtcdGrpcClient): Promise<void> => {
    while (next < count) {
      next += 1;
      await client.unary('Lease', 'LeaseGrant', { TTL: ttlSeconds }, 30_000);
    }
  };
  await Promise.all(clients.flatMap((client) => Array.from({ length: GRANTS_IN_FLIGHT_PER_CLIENT }, () => worker(client))));
  for (const client of clients) client.close();
  return (performance.now() - started) / 1000;
}

interface SessionFigures {
  sent: number;
  answered: number;
  gone: number;
  unanswered: number;
  latenciesMs: number[];
}

/** One lease kept alive on time over one stream; every wait is bounded. */
async function keepSessionAlive(endpoint: string, options: Options): Promise<SessionFigures> {
  const client = new EtcdGrpcClient(endpoint);
  const lease = await client.unary<{ ID: string }>('Lease', 'LeaseGrant', { TTL: options.sessionTtlSeconds });
  const figures: SessionFigures = { sent: 0, answered: 0, gone: 0, unanswered: 0, latenciesMs: [] };
  const stream = client.duplex('Lease', 'LeaseKeepAlive');
  const sentAt: number[] = [];
  stream.on('data', (response: LeaseKeepAliveResponse) => {
    const at = sentAt.shift();
    if (at === undefined) return;
    figures.answered += 1;
    figures.latenciesMs.push(performance.now() - at);
    if (Number(response.TTL) <= 0) figures.gone += 1;
  });
  stream.on('error', () => undefined);
  const rounds = Math.floor((options.sessionSeconds * 1000) / options.intervalMs);
  for (let round = 0; round < rounds; round += 1) {
    sentAt.push(performance.now());
    figures.sent += 1;
    stream.write({ ID: lease.ID });
    await sleep(options.intervalMs);
  }
  const deadline = performance.now() + ANSWER_TIMEOUT_MS;
  while (sentAt.length > 0 && performance.now() < deadline) await sleep(50);
  figures.unanswered = sentAt.length;
  stream.end();
  client.close();
  return figures;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const member = await startMember({ target: options.target });
  try {
    const grantSeconds = await grantIdleLeases(member.endpoint, options.leases, options.idleTtlSeconds);
    console.log(`${options.target}: granted ${options.leases} leases (TTL ${options.idleTtlSeconds} s) in ${grantSeconds.toFixed(1)} s`);
    const idleCpu = await measureCpu(member.pid, options.idleSeconds);
    console.log(`member CPU, idle with ${options.leases} leases, over ${options.idleSeconds} s: ${idleCpu.toFixed(1)}%`);
    let figures: SessionFigures | undefined;
    const sessionCpu = await measureCpu(member.pid, options.sessionSeconds, keepSessionAlive(member.endpoint, options).then((f) => (figures = f)));
    const f = figures!;
    const sorted = [...f.latenciesMs].sort((a, b) => a - b);
    console.log(
      `session TTL ${options.sessionTtlSeconds} s, keep-alive every ${options.intervalMs} ms for ${options.sessionSeconds} s: ` +
        `${f.sent} sent, ${f.answered} answered, ${f.gone} answered "gone" (TTL 0), ${f.unanswered} unanswered; ` +
        `latency p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${(sorted[sorted.length - 1] ?? Number.NaN).toFixed(1)} ms; ` +
        `member CPU meanwhile ${sessionCpu.toFixed(1)}%`,
    );
  } finally {
    await stopAllMembers();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
