/**
 * Memory benchmark (figures, never pass/fail; issue #17 item 3): resident memory of ONE member
 * of gavel and of etcd 3.4 at the same data — idle, after --keys keys of --value-bytes random
 * values written once each, and after --revisions revisions over --history-keys keys with
 * compaction keeping the last --retain revisions — printed side by side with the ratio
 * gavel/etcd. RSS is VmRSS of the member process after --settle seconds of quiet (anon = RssAnon,
 * the part that is not a file mapping: etcd's bbolt mmap counts in RSS but not in anon); peak is
 * VmHWM, the most the process was resident at any moment of its life.
 *
 *   npm run bench:memory -- [--target gavel|etcd|both] [--keys 100000,1000000] [--revisions 10000000]
 *       [--history-keys 10000] [--retain 100000] [--value-bytes 256] [--settle SECONDS]
 *       [--puts-per-txn 100] [--gavel-grpc keys|all|none]
 *   quick (about two minutes): npm run bench:memory -- --keys 20000,100000 --revisions 100000 --history-keys 1000 --retain 20000 --settle 5 --gavel-grpc all
 *
 * Each data set is loaded into fresh members on fresh data dirs and measured in these states:
 * - "restarted": the data is on disk and the member process was started over it. gavel's data is
 *   written offline into the stopped member's data dir through the real apply path
 *   (test/helpers/history.ts); etcd's over gRPC, then etcd is restarted (its "live, restarted").
 * - "live": the member that took the load over gRPC, after the settle period (both targets);
 * - "live, restarted": that member restarted over the data dir the gRPC load left.
 *   gavel goes over gRPC for the key rows by default (--gavel-grpc keys); its history row over
 *   gRPC takes hours at full scale (--gavel-grpc all). Its offline loader writes faster than a
 *   member can, so level has compacted less of what was deleted: a larger data dir than a gRPC
 *   load leaves (the "data dir MB" column shows both).
 * Keys are loaded with Txns of --puts-per-txn puts (one revision per Txn; 1 = plain Puts): the
 * same number of key versions either way. The history is plain Puts, one revision each.
 *
 * The history row is what a long-running lock service looks like under auto-compaction by
 * revision: both members run with --auto-compaction-mode revision --auto-compaction-retention
 * RETAIN, and the loader itself compacts to (newest - RETAIN) every RETAIN revisions, since the
 * members' own revision mode checks only every 5 minutes (gavel's offline loader applies the
 * same compaction entries and deletes what they drop, as the member's compactor does).
 */
import { integer, integerList, oneOf, parseFlags, positive, targets } from './args.js';
import { loadHistory, loadKeys, type LoadResult } from './grpc-load.js';
import { diskUsageBytes, megabytes, memoryOf, sleep, type MemoryFigures } from './process-stats.js';
import { count, loadAverage, printColumns, printPreamble, progress } from './report.js';
import { startMember, stopAllMembers, type Member, type Target } from '../helpers/gavel.js';
import { appendHistory } from '../helpers/history.js';
import { EtcdGrpcClient } from '../helpers/grpc.js';

interface Options {
  targets: Target[];
  keyCounts: number[];
  revisions: number;
  historyKeys: number;
  retainRevisions: number;
  valueBytes: number;
  settleSeconds: number;
  putsPerTxn: number;
  gavelGrpc: 'keys' | 'all' | 'none';
}

type State = 'fresh' | 'restarted' | 'live' | 'live, restarted';

/** One cell of the table: a target's figures for one data set in one state. */
interface Cell {
  how: string;
  figures?: MemoryFigures;
  diskBytes?: number;
  revision?: number;
  /** gavel only, from its /metrics: V8 heap in use and memory held outside it for JS objects (Buffers). */
  heapUsedBytes?: number;
  externalBytes?: number;
  loadSeconds?: number;
  error?: string;
}

interface Row {
  data: string;
  state: State;
  cells: Partial<Record<Target, Cell>>;
}

/** A member loading a million keys from disk takes longer than the harness's default 20 s. */
const READY_TIMEOUT_MS = 600_000;
const STOP_TIMEOUT_MS = 60_000;

function parseOptions(argv: readonly string[]): Options {
  const options: Options = {
    targets: ['gavel', 'etcd'], keyCounts: [100_000, 1_000_000], revisions: 10_000_000, historyKeys: 10_000, retainRevisions: 100_000,
    valueBytes: 256, settleSeconds: 15, putsPerTxn: 100, gavelGrpc: 'keys',
  };
  parseFlags(
    argv,
    {
      '--target': (value) => (options.targets = targets(value())),
      '--keys': (value) => (options.keyCounts = integerList('--keys', value())),
      '--revisions': (value) => (options.revisions = integer('--revisions', value())),
      '--history-keys': (value) => (options.historyKeys = integer('--history-keys', value())),
      '--retain': (value) => (options.retainRevisions = integer('--retain', value())),
      '--value-bytes': (value) => (options.valueBytes = integer('--value-bytes', value())),
      '--settle': (value) => (options.settleSeconds = positive('--settle', value())),
      '--puts-per-txn': (value) => (options.putsPerTxn = integer('--puts-per-txn', value())),
      '--gavel-grpc': (value) => (options.gavelGrpc = oneOf('--gavel-grpc', value(), ['keys', 'all', 'none'] as const)),
    },
    'usage: node dist/test/bench/memory.js [--target gavel|etcd|both] [--keys 100000,1000000] [--revisions N] [--history-keys N] [--retain N] [--value-bytes N] [--settle SECONDS] [--puts-per-txn N] [--gavel-grpc keys|all|none]',
  );
  return options;
}

/** Waits the settle period, then reads the member's memory, disk and revision. */
async function measure(member: Member, options: Options, cell: Cell): Promise<Cell> {
  await sleep(options.settleSeconds * 1000);
  const figures = memoryOf(member.pid);
  if (figures === undefined) throw new Error(`${member.target} ${member.name} is gone`);
  const client = new EtcdGrpcClient(member.endpoint);
  try {
    const status = await client.unary<{ header: { revision: string } }>('Maintenance', 'Status', {}, 30_000);
    const heap = member.target === 'gavel' ? await gavelHeap(member) : {};
    return { ...cell, ...heap, figures, diskBytes: diskUsageBytes(member.dataDir), revision: Number(status.header.revision) };
  } finally {
    client.close();
  }
}

/** prom-client's nodejs_heap_size_used_bytes and nodejs_external_memory_bytes from /metrics on the member's client port; {} if unavailable. */
async function gavelHeap(member: Member): Promise<{ heapUsedBytes?: number; externalBytes?: number }> {
  try {
    const text = await (await fetch(`${member.clientUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    const value = (name: string): number | undefined => {
      const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
      return match === null ? undefined : Number(match[1]);
    };
    const heapUsedBytes = value('nodejs_heap_size_used_bytes');
    const externalBytes = value('nodejs_external_memory_bytes');
    return { ...(heapUsedBytes === undefined ? {} : { heapUsedBytes }), ...(externalBytes === undefined ? {} : { externalBytes }) };
  } catch {
    return {};
  }
}

function start(target: Target, args: string[] = []): Promise<Member> {
  return startMember({ target, name: 'mem', args, readyTimeoutMs: READY_TIMEOUT_MS, stopTimeoutMs: STOP_TIMEOUT_MS });
}

/** Runs `body` on a fresh member and disposes of it; a failure becomes the cells' error. */
async function withMember(target: Target, args: string[], cells: Cell[], body: (member: Member) => Promise<void>): Promise<void> {
  let member: Member | undefined;
  try {
    member = await start(target, args);
    await body(member);
  } catch (error) {
    const text = error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error);
    progress(`${target}: failed: ${text}`);
    for (const cell of cells) if (cell.figures === undefined) cell.error = text;
  } finally {
    await member?.dispose();
  }
}

/** A progress callback that reports about every 5% of total. */
function everyTwentieth(total: number, report: (done: number) => void): (done: number) => void {
  let next = total / 20;
  return (done) => {
    if (done < next) return;
    report(done);
    next = done + total / 20;
  };
}

const loadProgress = (what: string) => (done: number, total: number): void => progress(`${what}: ${count(done)} / ${count(total)}`);

/** gavel: offline loader then start over it (restarted); over gRPC (live), then restarted, when asked. */
async function gavelData(options: Options, data: Dataset, restarted: Cell, live: { live: Cell; restarted: Cell } | undefined): Promise<void> {
  await withMember('gavel', data.args, [restarted], async (member) => {
    await member.stop();
    const started = performance.now();
    const history = await appendHistory(member.dataDir, {
      revisions: data.versions, keys: data.keys, valueBytes: options.valueBytes,
      ...(data.compaction === undefined ? {} : { compaction: data.compaction }),
      onProgress: everyTwentieth(data.versions, (done) => progress(`gavel offline ${data.name}: ${count(done)} / ${count(data.versions)}`)),
    });
    restarted.loadSeconds = (performance.now() - started) / 1000;
    progress(`gavel offline ${data.name}: revision ${history.lastRevision}, compacted ${history.compactedRevision} (${history.compactions} compactions), ${restarted.loadSeconds.toFixed(0)} s; restarting`);
    await member.restart();
    Object.assign(restarted, await measure(member, options, restarted));
  });
  if (live === undefined) return;
  await withMember('gavel', data.args, [live.live, live.restarted], (member) => loadLiveThenRestart(member, options, data, live));
}

/** Over gRPC (live), then restarted on the same data dir. */
async function loadLiveThenRestart(member: Member, options: Options, data: Dataset, cells: { live: Cell; restarted: Cell }): Promise<void> {
  const result = await data.grpc(member.endpoint);
  cells.live.loadSeconds = result.seconds;
  cells.restarted.loadSeconds = result.seconds;
  Object.assign(cells.live, await measure(member, options, cells.live));
  await member.restart();
  Object.assign(cells.restarted, await measure(member, options, cells.restarted));
}

/** One data set: what to load, both ways. */
interface Dataset {
  name: string;
  /** Key versions written. */
  versions: number;
  keys: number;
  args: string[];
  compaction?: { everyRevisions: number; retainRevisions: number };
  grpc(endpoint: string): Promise<LoadResult>;
  /** Is gavel measured live (over gRPC) for this set? */
  gavelLive: boolean;
  grpcHow: string;
}

function datasets(options: Options): Dataset[] {
  const sets: Dataset[] = options.keyCounts.map((keys) => ({
    name: `${count(keys)} keys × ${options.valueBytes} B`,
    versions: keys,
    keys,
    args: [],
    grpc: (endpoint: string) => loadKeys(endpoint, { keys, valueBytes: options.valueBytes, putsPerTxn: options.putsPerTxn }, { onProgress: loadProgress(`gRPC ${count(keys)} keys`) }),
    gavelLive: options.gavelGrpc !== 'none',
    grpcHow: options.putsPerTxn === 1 ? 'gRPC Puts' : `gRPC Txns of ${options.putsPerTxn} puts`,
  }));
  const compaction = { everyRevisions: options.retainRevisions, retainRevisions: options.retainRevisions };
  sets.push({
    name: `${count(options.revisions)} revisions over ${count(options.historyKeys)} keys, compacted`,
    versions: options.revisions,
    keys: options.historyKeys,
    args: ['--auto-compaction-mode', 'revision', '--auto-compaction-retention', String(options.retainRevisions)],
    compaction,
    grpc: (endpoint: string) => loadHistory(endpoint, { revisions: options.revisions, keys: options.historyKeys, valueBytes: options.valueBytes, compaction }, { onProgress: loadProgress(`gRPC ${count(options.revisions)} revisions`) }),
    gavelLive: options.gavelGrpc === 'all',
    grpcHow: 'gRPC Puts + Compact',
  });
  return sets;
}

async function run(options: Options): Promise<Row[]> {
  const rows: Row[] = [{ data: 'nothing', state: 'fresh', cells: {} }];
  for (const target of options.targets) {
    const cell: Cell = { how: 'fresh member' };
    rows[0]!.cells[target] = cell;
    progress(`${target}: idle`);
    await withMember(target, [], [cell], async (member) => void Object.assign(cell, await measure(member, options, cell)));
  }
  for (const data of datasets(options)) {
    const restarted: Row = { data: data.name, state: 'restarted', cells: {} };
    const live: Row = { data: data.name, state: 'live', cells: {} };
    const liveRestarted: Row = { data: data.name, state: 'live, restarted', cells: {} };
    rows.push(restarted, live, liveRestarted);
    for (const target of options.targets) {
      progress(`${target}: ${data.name} (${loadAverage()})`);
      const grpcCells = { live: { how: data.grpcHow }, restarted: { how: `${data.grpcHow}, restart` } };
      if (target === 'gavel') {
        restarted.cells.gavel = { how: 'offline loader' };
        if (data.gavelLive) {
          live.cells.gavel = grpcCells.live;
          liveRestarted.cells.gavel = grpcCells.restarted;
        }
        await gavelData(options, data, restarted.cells.gavel, data.gavelLive ? grpcCells : undefined);
      } else {
        // etcd has one way in: its "restarted" figures are those of the restart after the gRPC load.
        restarted.cells.etcd = grpcCells.restarted;
        live.cells.etcd = grpcCells.live;
        liveRestarted.cells.etcd = grpcCells.restarted;
        await withMember('etcd', data.args, [grpcCells.live, grpcCells.restarted], (member) => loadLiveThenRestart(member, options, data, grpcCells));
      }
    }
  }
  return rows;
}

function print(options: Options, rows: readonly Row[]): void {
  const both = options.targets.length === 2;
  const figures = (cell: Cell | undefined): string[] =>
    cell === undefined ? ['n/m', 'n/m', 'n/m'] : cell.error !== undefined ? ['failed', '-', '-'] : [megabytes(cell.figures?.rssBytes), megabytes(cell.figures?.anonBytes), megabytes(cell.figures?.peakBytes)];
  const header = ['data', 'state', ...options.targets.flatMap((target) => [`${target} RSS MB`, `${target} anon MB`, `${target} peak MB`]), ...(both ? ['RSS gavel/etcd'] : [])];
  printColumns(header, rows.map((row) => [row.data, row.state, ...options.targets.flatMap((target) => figures(row.cells[target])), ...(both ? [ratio(row)] : [])]), 2);
  process.stdout.write('\n');
  const listed = new Set<Cell>();
  const details = rows.flatMap((row) =>
    options.targets.flatMap((target) => {
      const cell = row.cells[target];
      if (cell === undefined || listed.has(cell)) return [];
      listed.add(cell);
      const heap = target === 'gavel' ? `${megabytes(cell.heapUsedBytes)} / ${megabytes(cell.externalBytes)}` : '';
      return [[row.data, row.state, target, cell.how, cell.loadSeconds === undefined ? '-' : cell.loadSeconds.toFixed(0), cell.revision === undefined ? '-' : count(cell.revision), megabytes(cell.diskBytes), heap, cell.error ?? '']];
    }),
  );
  printColumns(['data', 'state', 'target', 'loaded by', 'load s', 'revision', 'data dir MB', 'V8 heap / external MB', 'error'], details, 4);
  process.stdout.write(`\nRSS = VmRSS after ${options.settleSeconds} s of quiet; anon = RssAnon; peak = VmHWM over the process's life. n/m = not measured.\n`);
  process.stdout.write(`V8 heap / external: gavel's nodejs_heap_size_used_bytes and nodejs_external_memory_bytes (/metrics) at the same moment; the rest of anon is native (level, gRPC, the allocator).\n`);
  process.stdout.write(`History row, as a long-running lock service: ${count(options.revisions)} puts round-robin over ${count(options.historyKeys)} keys (lock and session keys rewritten for ever), compacted to (newest - ${count(options.retainRevisions)}) every ${count(options.retainRevisions)} revisions by the loader; members run with --auto-compaction-mode revision --auto-compaction-retention ${options.retainRevisions}.\n`);
  process.stdout.write(`finished: ${loadAverage()}\n`);
}

function ratio(row: Row): string {
  const gavel = row.cells.gavel?.figures?.rssBytes;
  const etcd = row.cells.etcd?.figures?.rssBytes;
  return gavel === undefined || etcd === undefined ? '-' : (gavel / etcd).toFixed(2);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  printPreamble(options.targets);
  process.stdout.write(`data: keys ${options.keyCounts.map(count).join(', ')}; history ${count(options.revisions)} revisions over ${count(options.historyKeys)} keys, retain ${count(options.retainRevisions)}; ${options.valueBytes}-byte random values; settle ${options.settleSeconds} s\n\n`);
  try {
    print(options, await run(options));
  } finally {
    await stopAllMembers();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    void stopAllMembers().finally(() => process.exit(1));
  },
);
