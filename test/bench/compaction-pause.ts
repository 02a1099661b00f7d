/**
 * Compaction pause benchmark (figures, never pass/fail; issue #17 item 1): the longest pause a
 * client sees while one member compacts --revisions revisions (default 1,000,000). For each
 * target and each mode (`etcdctl compaction REV`, then on a fresh member `--physical`):
 *
 *   1. build the history: --revisions puts round-robin over --keys keys of --value-bytes random
 *      bytes (gavel: written offline through the real apply path, test/helpers/history.ts, unless
 *      --gavel-load grpc; etcd: over gRPC), auto-compaction off (--auto-compaction-retention 0);
 *   2. start two probe clients on connections of their own: one doing put then get of one key,
 *      back to back, the other linearizable ranges of another key, and let them run --before
 *      seconds (the baseline);
 *   3. run `etcdctl compaction REV` (REV = the last revision of the history) and time it: for a
 *      plain compaction the member answers once the index is compacted, with --physical once the
 *      versions are deleted from disk;
 *   4. wait for the member's log to report the physical compaction done (gavel: "finished
 *      compaction", etcd: "finished scheduled compaction"), bounded by --bound seconds;
 *   5. report every probe call that overlapped [start of etcdctl, physical compaction finished]:
 *      count, errors, p50/p99/max latency, beside the max of the baseline.
 *
 *   npm run bench:compaction-pause -- [--target gavel|etcd|both] [--revisions 1000000] [--keys 1000]
 *       [--value-bytes 256] [--modes plain,physical] [--before SECONDS] [--bound SECONDS] [--gavel-load offline|grpc]
 *   quick: npm run bench:compaction-pause -- --revisions 100000 --before 3
 *
 * The etcdctl time includes etcdctl's own start; the "etcdctl get" line shows that overhead.
 */
import { integer, oneOf, parseFlags, positive, targets } from './args.js';
import { loadHistory } from './grpc-load.js';
import { diskUsageBytes, megabytes, sleep } from './process-stats.js';
import { count, loadAverage, milliseconds, printColumns, printPreamble, progress } from './report.js';
import { percentile } from './table.js';
import { withGrace } from './loop.js';
import { etcdctl, startMember, stopAllMembers, type Member, type Target } from '../helpers/gavel.js';
import { appendHistory } from '../helpers/history.js';
import { EtcdGrpcClient } from '../helpers/grpc.js';

type Mode = 'plain' | 'physical';

interface Options {
  targets: Target[];
  revisions: number;
  keys: number;
  valueBytes: number;
  modes: Mode[];
  beforeSeconds: number;
  boundSeconds: number;
  gavelLoad: 'offline' | 'grpc';
}

/** One probe call: when it started and ended (performance.now() ms) and whether it succeeded. */
interface Sample {
  startedAt: number;
  endedAt: number;
  ok: boolean;
}

interface ProbeFigures {
  before: Sample[];
  during: Sample[];
}

interface Outcome {
  target: Target;
  mode: Mode;
  loadedBy: string;
  loadSeconds: number;
  compactRevision: number;
  etcdctlBaselineMs: number;
  rpcMs: number;
  physicalMs: number | undefined;
  /** What the member's log says the physical compaction took. */
  serverTook: string;
  putGet: ProbeFigures;
  range: ProbeFigures;
  diskBefore: number;
  diskAfter: number;
  error?: string;
}

const READY_TIMEOUT_MS = 600_000;
const PROBE_DEADLINE_MS = 60_000;

function parseOptions(argv: readonly string[]): Options {
  const options: Options = { targets: ['gavel', 'etcd'], revisions: 1_000_000, keys: 1000, valueBytes: 256, modes: ['plain', 'physical'], beforeSeconds: 10, boundSeconds: 900, gavelLoad: 'offline' };
  parseFlags(
    argv,
    {
      '--target': (value) => (options.targets = targets(value())),
      '--revisions': (value) => (options.revisions = integer('--revisions', value())),
      '--keys': (value) => (options.keys = integer('--keys', value())),
      '--value-bytes': (value) => (options.valueBytes = integer('--value-bytes', value())),
      '--modes': (value) => (options.modes = value().split(',').map((mode) => oneOf('--modes', mode, ['plain', 'physical'] as const))),
      '--before': (value) => (options.beforeSeconds = positive('--before', value())),
      '--bound': (value) => (options.boundSeconds = positive('--bound', value())),
      '--gavel-load': (value) => (options.gavelLoad = oneOf('--gavel-load', value(), ['offline', 'grpc'] as const)),
    },
    'usage: node dist/test/bench/compaction-pause.js [--target gavel|etcd|both] [--revisions N] [--keys N] [--value-bytes N] [--modes plain,physical] [--before SECONDS] [--bound SECONDS] [--gavel-load offline|grpc]',
  );
  return options;
}

/** A closed loop of calls on a connection of its own until stop() or the bound; every call has a deadline. */
class Probe {
  readonly samples: Sample[] = [];
  private running = true;
  private readonly client: EtcdGrpcClient;
  private readonly done: Promise<void>;

  constructor(endpoint: string, boundMs: number, call: (client: EtcdGrpcClient, sequence: number) => Promise<unknown>) {
    const client = new EtcdGrpcClient(endpoint);
    this.client = client;
    const deadline = performance.now() + boundMs;
    this.done = (async () => {
      for (let sequence = 0; this.running && performance.now() < deadline; sequence += 1) {
        const startedAt = performance.now();
        const ok = await call(client, sequence).then(() => true, () => false);
        this.samples.push({ startedAt, endedAt: performance.now(), ok });
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await withGrace(this.done, PROBE_DEADLINE_MS + 1000);
    this.client.close();
  }

  /** Calls that ended before `from`, and calls that overlapped [from, to]. */
  split(from: number, to: number): ProbeFigures {
    return {
      before: this.samples.filter((sample) => sample.endedAt < from),
      during: this.samples.filter((sample) => sample.endedAt >= from && sample.startedAt <= to),
    };
  }
}

/** The member's "physical compaction finished" log line for revision, with what it says it took. */
function finishedLine(member: Member, revision: number): string | undefined {
  const [message, field, took] = member.target === 'gavel' ? ['"finished compaction"', 'revision', 'tookMs'] : ['"finished scheduled compaction"', 'compact-revision', 'took'];
  for (const line of member.logs().split('\n')) {
    if (!line.includes(message)) continue;
    try {
      const record: unknown = JSON.parse(line);
      if (typeof record !== 'object' || record === null) continue;
      const fields = new Map(Object.entries(record));
      if (Number(fields.get(field)) === revision) return `${String(fields.get(took))}${member.target === 'gavel' ? ' ms' : ''}`;
    } catch {
      // a line cut by the harness's log bound
    }
  }
  return undefined;
}

async function buildHistory(target: Target, options: Options): Promise<{ member: Member; revision: number; loadedBy: string; seconds: number }> {
  const member = await startMember({ target, name: 'pause', args: ['--auto-compaction-retention', '0'], readyTimeoutMs: READY_TIMEOUT_MS, stopTimeoutMs: 60_000 });
  const started = performance.now();
  if (target === 'gavel' && options.gavelLoad === 'offline') {
    await member.stop();
    const history = await appendHistory(member.dataDir, { revisions: options.revisions, keys: options.keys, valueBytes: options.valueBytes });
    await member.restart();
    return { member, revision: history.lastRevision, loadedBy: 'offline loader', seconds: (performance.now() - started) / 1000 };
  }
  const step = Math.max(1, Math.floor(options.revisions / 10));
  const result = await loadHistory(member.endpoint, { revisions: options.revisions, keys: options.keys, valueBytes: options.valueBytes }, {
    onProgress: (done, total) => { if (done % step === 0) progress(`${target}: ${count(done)} / ${count(total)} puts`); },
  });
  return { member, revision: result.lastRevision, loadedBy: 'gRPC Puts', seconds: result.seconds };
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await run();
  return performance.now() - started;
}

async function compactOnce(target: Target, mode: Mode, options: Options): Promise<Outcome> {
  progress(`${target} ${mode}: building ${count(options.revisions)} revisions (${loadAverage()})`);
  const { member, revision, loadedBy, seconds } = await buildHistory(target, options);
  const boundMs = options.boundSeconds * 1000;
  const setup = new EtcdGrpcClient(member.endpoint);
  await setup.put('probe/range', 'x');
  setup.close();
  const probeBoundMs = boundMs + options.beforeSeconds * 1000 + 60_000;
  const putGet = new Probe(member.endpoint, probeBoundMs, async (client, sequence) => {
    await client.unary('KV', 'Put', { key: Buffer.from('probe/put'), value: Buffer.from(String(sequence)) }, PROBE_DEADLINE_MS);
    await client.unary('KV', 'Range', { key: Buffer.from('probe/put') }, PROBE_DEADLINE_MS);
  });
  const range = new Probe(member.endpoint, probeBoundMs, (client) => client.unary('KV', 'Range', { key: Buffer.from('probe/range') }, PROBE_DEADLINE_MS));
  const outcome: Outcome = {
    target, mode, loadedBy, loadSeconds: seconds, compactRevision: revision, etcdctlBaselineMs: Number.NaN, rpcMs: Number.NaN, physicalMs: undefined, serverTook: '-',
    putGet: { before: [], during: [] }, range: { before: [], during: [] }, diskBefore: diskUsageBytes(member.dataDir), diskAfter: Number.NaN,
  };
  try {
    await sleep(options.beforeSeconds * 1000);
    outcome.etcdctlBaselineMs = await timed(() => etcdctl(member.endpoint, ['get', 'probe/range']));
    progress(`${target} ${mode}: etcdctl compaction ${revision}${mode === 'physical' ? ' --physical' : ''}`);
    const startedAt = performance.now();
    // etcdctl's own --command-timeout (5 s) would cut a physical compaction short.
    const result = await etcdctl(member.endpoint, ['compaction', String(revision), ...(mode === 'physical' ? ['--physical'] : [])], {
      timeoutMs: boundMs, globalFlags: [`--command-timeout=${options.boundSeconds}s`],
    });
    outcome.rpcMs = performance.now() - startedAt;
    // A failed etcdctl is reported, and the probes still measured: the compaction may be under way.
    if (!result.stdout.includes(`compacted revision ${revision}`)) outcome.error = `etcdctl compaction: code ${result.code}${result.timedOut ? ' (timed out)' : ''}: ${lastLine(result.stderr)}`;
    const took = await waitForFinished(member, revision, startedAt + boundMs);
    const finishedAt = performance.now();
    if (took !== undefined) {
      outcome.physicalMs = finishedAt - startedAt;
      outcome.serverTook = took;
    }
    outcome.putGet = putGet.split(startedAt, finishedAt);
    outcome.range = range.split(startedAt, finishedAt);
    outcome.diskAfter = diskUsageBytes(member.dataDir);
    if (/cannot apply|raft loop failed|panic/.test(member.logs())) outcome.error = `${outcome.error ?? ''} member log reports an apply failure`.trim();
  } catch (error) {
    outcome.error = lastLine(error instanceof Error ? error.message : String(error));
  } finally {
    await Promise.all([putGet.stop(), range.stop()]);
    await member.dispose();
  }
  return outcome;
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1)?.slice(0, 300) ?? '';
}

/** Polls the member's log every 10 ms for the finished line; undefined at the deadline. */
async function waitForFinished(member: Member, revision: number, deadline: number): Promise<string | undefined> {
  while (performance.now() < deadline) {
    const took = finishedLine(member, revision);
    if (took !== undefined) return took;
    if (!member.running) throw new Error(`${member.target} exited during the compaction`);
    await sleep(10);
  }
  return undefined;
}

function stats(samples: readonly Sample[]): { calls: number; errors: number; p50: number; p99: number; max: number } {
  const latencies = samples.map((sample) => sample.endedAt - sample.startedAt).sort((a, b) => a - b);
  return { calls: samples.length, errors: samples.filter((sample) => !sample.ok).length, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: latencies.at(-1) ?? Number.NaN };
}

function print(outcomes: readonly Outcome[], options: Options): void {
  const header = ['', ...outcomes.map((outcome) => `${outcome.target}${outcome.mode === 'physical' ? ' --physical' : ''}`)];
  const row = (label: string, cell: (outcome: Outcome) => string): string[] => [label, ...outcomes.map(cell)];
  const probeRows = (name: string, pick: (outcome: Outcome) => ProbeFigures): string[][] => [
    row(`${name}: calls during (errors)`, (o) => { const s = stats(pick(o).during); return `${s.calls} (${s.errors})`; }),
    row(`${name}: p50 / p99 / max ms during`, (o) => { const s = stats(pick(o).during); return `${milliseconds(s.p50)} / ${milliseconds(s.p99)} / ${milliseconds(s.max)}`; }),
    row(`${name}: p50 / p99 / max ms before (calls)`, (o) => { const s = stats(pick(o).before); return `${milliseconds(s.p50)} / ${milliseconds(s.p99)} / ${milliseconds(s.max)} (${s.calls})`; }),
  ];
  printColumns(header, [
    row('history loaded by (seconds)', (o) => `${o.loadedBy} (${o.loadSeconds.toFixed(0)})`),
    row('compacted to revision', (o) => count(o.compactRevision)),
    row('etcdctl get, for its start-up (ms)', (o) => milliseconds(o.etcdctlBaselineMs, 0)),
    row('etcdctl compaction answered (ms)', (o) => milliseconds(o.rpcMs, 0)),
    row('physical compaction finished (ms)', (o) => (o.physicalMs === undefined ? `not within ${options.boundSeconds} s` : milliseconds(o.physicalMs, 0))),
    row('  member log: it took', (o) => o.serverTook),
    ...probeRows('put+get probe', (o) => o.putGet),
    ...probeRows('linearizable range probe', (o) => o.range),
    row('data dir MB before / after', (o) => `${megabytes(o.diskBefore)} / ${megabytes(o.diskAfter)}`),
    row('errors (below)', (o) => (o.error === undefined ? 'none' : 'yes')),
  ]);
  for (const outcome of outcomes) if (outcome.error !== undefined) process.stdout.write(`error, ${outcome.target} ${outcome.mode}: ${outcome.error}\n`);
  process.stdout.write(`\n"during" = probe calls that overlapped [etcdctl compaction started, physical compaction finished]; a put+get sample is one put and the get after it, timed together.\nfinished: ${loadAverage()}\n`);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  printPreamble(options.targets);
  process.stdout.write(`history: ${count(options.revisions)} puts over ${count(options.keys)} keys, ${options.valueBytes}-byte random values; auto-compaction off; baseline ${options.beforeSeconds} s; gavel history ${options.gavelLoad === 'offline' ? 'written offline through the apply path' : 'over gRPC'}, etcd's over gRPC\n\n`);
  const outcomes: Outcome[] = [];
  try {
    for (const mode of options.modes) for (const target of options.targets) outcomes.push(await compactOnce(target, mode, options));
  } finally {
    await stopAllMembers();
  }
  print(outcomes, options);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    void stopAllMembers().finally(() => process.exit(1));
  },
);
