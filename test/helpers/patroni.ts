/**
 * Patroni harness: a PostgreSQL cluster managed by Debian's `patroni` (3.0.x), with the DCS
 * given as etcd v3 URLs (`etcd3: hosts:`). Patroni reaches the DCS only through etcd's HTTP/JSON
 * gateway, so whatever member the URLs point at — gavel or a real etcd 3.4 — is exercised the
 * way Patroni's users exercise it.
 *
 * PostgreSQL refuses to run as root, and CI runs as root: then Patroni (and the postmaster it
 * forks) runs as the `postgres` user through `setpriv`, which execs in place, so the pid we hold
 * is Patroni's own and our signals reach it directly (runuser would sit in between). Every node's
 * files live under one temp root owned by that user. Ports (PostgreSQL and the REST API of each
 * node) are picked on loopback by the harness.
 *
 * Nothing may outlive the test file: Patroni processes are registered with test/helpers/gavel.ts
 * (SIGKILLed on exit), and because a SIGKILLed Patroni leaves its postmaster running, an exit
 * hook of our own sends every postmaster still listed in a `postmaster.pid` an immediate-shutdown
 * signal. Call `stopAllPatroni()` in afterAll. Every wait is bounded.
 * This module does not import vitest.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, removeTempDir, trackChildProcess, trackTempDir, waitUntil, type ExitInfo } from './gavel.js';

export const PATRONI_BIN = process.env['PATRONI_BIN'] ?? '/usr/bin/patroni';
export const PATRONICTL_BIN = process.env['PATRONICTL_BIN'] ?? '/usr/bin/patronictl';
const SETPRIV_BIN = '/usr/bin/setpriv';
const STOP_TIMEOUT_MS = 30_000;
const KILL_TIMEOUT_MS = 5_000;
const HTTP_TIMEOUT_MS = 2_000;
const PSQL_TIMEOUT_MS = 10_000;
const LOG_LIMIT_CHARS = 2_000_000;

/** PostgreSQL's binaries: $PG_BIN_DIR, else the newest /usr/lib/postgresql/<major>/bin holding initdb. */
export function postgresBinDir(): string | undefined {
  const override = process.env['PG_BIN_DIR'];
  if (override !== undefined && override !== '') return override;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const majors = readdirSync(root)
    .filter((entry) => /^\d+$/.test(entry) && existsSync(join(root, entry, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return majors[0] === undefined ? undefined : join(root, majors[0], 'bin');
}

/** The user PostgreSQL runs as: uid/gid of `postgres` when we are root, else ourselves. */
interface RunAs {
  readonly uid: number;
  readonly gid: number;
  /** Prefix to the command line: setpriv when we switch users, nothing otherwise. */
  readonly prefix: readonly string[];
}

function runAs(): RunAs | undefined {
  const uid = process.getuid?.() ?? 0;
  if (uid !== 0) return { uid, gid: process.getgid?.() ?? 0, prefix: [] };
  const found = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const foundGroup = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (found.status !== 0 || foundGroup.status !== 0) return undefined;
  return {
    uid: Number(found.stdout.trim()),
    gid: Number(foundGroup.stdout.trim()),
    prefix: [SETPRIV_BIN, '--reuid=postgres', '--regid=postgres', '--init-groups', '--'],
  };
}

/** What is missing for the Patroni test on this machine (Debian packages `patroni`, `postgresql`); empty when nothing is. */
export function patroniMissing(): string[] {
  const missing: string[] = [];
  if (!existsSync(PATRONI_BIN)) missing.push(`${PATRONI_BIN} (Debian package patroni)`);
  if (!existsSync(PATRONICTL_BIN)) missing.push(`${PATRONICTL_BIN} (Debian package patroni)`);
  const binDir = postgresBinDir();
  if (binDir === undefined || !existsSync(join(binDir, 'postgres'))) missing.push('/usr/lib/postgresql/<major>/bin (Debian package postgresql)');
  const user = runAs();
  if (user === undefined) missing.push("the 'postgres' user (Debian package postgresql creates it)");
  else if (user.prefix.length > 0 && !existsSync(SETPRIV_BIN)) missing.push(`${SETPRIV_BIN} (Debian package util-linux)`);
  return missing;
}

export interface PatroniClusterOptions {
  /** The DCS client URLs, http://host:port, as Patroni's `etcd3: hosts:` takes them. */
  dcsUrls: readonly string[];
  /** Node names; default ['pg1', 'pg2']. */
  names?: readonly string[];
  /** Patroni's scope (the cluster's name and key prefix in the DCS); default 'gavel-patroni'. */
  scope?: string;
  /** DCS TTL of the leader key, loop wait and retry timeout, in seconds. Patroni wants loop_wait + 2 * retry_timeout <= ttl. */
  ttlSeconds: number;
  loopWaitSeconds: number;
  retryTimeoutSeconds: number;
}

export interface PatroniStatus {
  readonly role: string;
  readonly state: string;
  readonly timeline: number | undefined;
}

export interface PatroniNode {
  readonly name: string;
  readonly pgPort: number;
  readonly restPort: number;
  readonly configPath: string;
  readonly running: boolean;
  /** Starts (or starts again on the same data dir) this node's Patroni. */
  start(): void;
  /** SIGTERM (Patroni then stops PostgreSQL and gives up the leader key) and a bounded wait for its exit. */
  stop(): Promise<ExitInfo>;
  /**
   * A crash as the DCS sees it: SIGKILL Patroni, so it neither demotes nor gives the leader key
   * back, then take PostgreSQL down without a checkpoint (SIGQUIT, immediate shutdown), so
   * nothing keeps serving as a stale primary. Bounded waits for both.
   */
  crash(): Promise<void>;
  /** HTTP status of GET /<check> on the REST API ('primary', 'replica', 'health'), or undefined if it does not answer. */
  restCheck(check: string): Promise<number | undefined>;
  /** GET /patroni: this node's view of itself, or undefined if it does not answer. */
  status(): Promise<PatroniStatus | undefined>;
  /** Runs SQL with psql as the superuser over TCP; resolves with psql's unaligned, tuples-only output. */
  sql(query: string): Promise<string>;
  /** Patroni's output and the tail of PostgreSQL's log files. */
  report(lines?: number): string;
}

export interface PatroniCluster {
  readonly nodes: readonly PatroniNode[];
  node(name: string): PatroniNode;
  /** `patronictl -c <first node's config> list -f json`, parsed. */
  list(): Promise<Array<{ Member: string; Role: string; State: string; TL?: number }>>;
  /** Every node's report, for a failing test. */
  report(lines?: number): string;
  /** Stops every Patroni (bounded), any postmaster left behind, and removes the temp root. */
  dispose(): Promise<void>;
}

const clusters = new Set<PatroniClusterImpl>();
let exitHookInstalled = false;

/** Stops every Patroni cluster this process started. Call it in afterAll. */
export async function stopAllPatroni(): Promise<void> {
  await Promise.all([...clusters].map((cluster) => cluster.dispose()));
}

/** Lays out the nodes' config files and directories; starts nothing. */
export async function createPatroniCluster(options: PatroniClusterOptions): Promise<PatroniCluster> {
  const missing = patroniMissing();
  if (missing.length > 0) throw new Error(`cannot run Patroni here; missing: ${missing.join('; ')} (.ci/run installs them)`);
  const user = runAs();
  const binDir = postgresBinDir();
  if (user === undefined || binDir === undefined) throw new Error('unreachable: patroniMissing() checked both');
  if (options.loopWaitSeconds + 2 * options.retryTimeoutSeconds > options.ttlSeconds) {
    throw new Error('Patroni requires loop_wait + 2 * retry_timeout <= ttl');
  }
  installExitHook();
  const root = mkdtempSync(join(tmpdir(), 'gavel-patroni-'));
  trackTempDir(root);
  chownSync(root, user.uid, user.gid);
  const cluster = new PatroniClusterImpl(root);
  clusters.add(cluster);
  for (const name of options.names ?? ['pg1', 'pg2']) {
    const layout: NodeLayout = { name, root: join(root, name), pgPort: await freePort(), restPort: await freePort() };
    mkdirSync(layout.root, { mode: 0o700 });
    mkdirSync(join(layout.root, 'log'), { mode: 0o700 });
    writeFileSync(join(layout.root, 'patroni.yml'), patroniConfig(layout, options, binDir));
    for (const path of [layout.root, join(layout.root, 'log'), join(layout.root, 'patroni.yml')]) chownSync(path, user.uid, user.gid);
    cluster.add(new PatroniNodeImpl(layout, binDir, user));
  }
  return cluster;
}

interface NodeLayout {
  readonly name: string;
  /** This node's directory: patroni.yml, data/, log/, the unix socket and the .pgpass Patroni writes. */
  readonly root: string;
  readonly pgPort: number;
  readonly restPort: number;
}

/**
 * One node's patroni.yml. JSON is YAML, so it is written as JSON: no quoting surprises.
 * Trust authentication on loopback keeps the test free of passwords, but Patroni still wants the
 * replication and superuser roles named. use_pg_rewind plus data checksums let the old primary
 * rejoin even when its WAL went past the point where the new primary's timeline forked.
 */
function patroniConfig(layout: NodeLayout, options: PatroniClusterOptions, binDir: string): string {
  const config = {
    scope: options.scope ?? 'gavel-patroni',
    name: layout.name,
    log: { level: 'INFO' },
    restapi: { listen: `127.0.0.1:${layout.restPort}`, connect_address: `127.0.0.1:${layout.restPort}` },
    etcd3: { hosts: options.dcsUrls.map((url) => url.replace(/^https?:\/\//, '')), protocol: 'http' },
    bootstrap: {
      dcs: {
        ttl: options.ttlSeconds,
        loop_wait: options.loopWaitSeconds,
        retry_timeout: options.retryTimeoutSeconds,
        maximum_lag_on_failover: 1048576,
        postgresql: { use_pg_rewind: true, use_slots: true },
      },
      initdb: [{ encoding: 'UTF8' }, 'data-checksums'],
      pg_hba: ['local all all trust', 'host replication replicator 127.0.0.1/32 trust', 'host all all 127.0.0.1/32 trust'],
    },
    postgresql: {
      listen: `127.0.0.1:${layout.pgPort}`,
      connect_address: `127.0.0.1:${layout.pgPort}`,
      data_dir: join(layout.root, 'data'),
      bin_dir: binDir,
      pgpass: join(layout.root, 'pgpass'),
      authentication: {
        replication: { username: 'replicator', password: 'replicator' },
        superuser: { username: 'postgres', password: 'postgres' },
      },
      // Small and quick: the CI machine is shared. fsync off is safe here because no test
      // crashes the operating system, only processes.
      parameters: {
        unix_socket_directories: layout.root,
        shared_buffers: '16MB',
        max_connections: 20,
        fsync: 'off',
        logging_collector: 'on',
        log_directory: join(layout.root, 'log'),
        log_filename: 'postgresql.log',
      },
    },
    tags: { nofailover: false, noloadbalance: false, clonefrom: false },
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

class PatroniClusterImpl implements PatroniCluster {
  private readonly members: PatroniNodeImpl[] = [];
  private disposed = false;

  constructor(readonly root: string) {}

  get nodes(): readonly PatroniNode[] {
    return this.members;
  }

  add(node: PatroniNodeImpl): void {
    this.members.push(node);
  }

  node(name: string): PatroniNode {
    const found = this.members.find((node) => node.name === name);
    if (found === undefined) throw new Error(`no Patroni node '${name}'`);
    return found;
  }

  postmasterPids(): number[] {
    return this.members.map((node) => node.postmasterPid()).filter((pid): pid is number => pid !== undefined);
  }

  async list(): Promise<Array<{ Member: string; Role: string; State: string; TL?: number }>> {
    const first = this.members[0];
    if (first === undefined) throw new Error('no nodes');
    const result = await runBounded(PATRONICTL_BIN, ['-c', first.configPath, 'list', '-f', 'json'], 20_000);
    if (result.code !== 0) throw new Error(`patronictl list failed (code=${result.code}):\n${result.stdout}\n${result.stderr}`);
    const parsed: unknown = JSON.parse(result.stdout);
    if (!Array.isArray(parsed)) throw new Error(`patronictl list -f json: not an array: ${result.stdout}`);
    return parsed as Array<{ Member: string; Role: string; State: string; TL?: number }>;
  }

  report(lines = 60): string {
    return this.members.map((node) => node.report(lines)).join('\n');
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all(this.members.map((node) => node.stop().catch(() => undefined)));
    // A Patroni that had to be SIGKILLed leaves PostgreSQL behind; wait for it to go as well,
    // or removing the temp root would pull the data dir from under a live server.
    for (const pid of this.postmasterPids()) signalQuietly(pid, 'SIGQUIT');
    await waitUntil('every postmaster to exit', () => (this.postmasterPids().some(isAlive) ? undefined : true), KILL_TIMEOUT_MS, 100).catch(() => {
      for (const pid of this.postmasterPids()) signalQuietly(pid, 'SIGKILL');
    });
    clusters.delete(this);
    removeTempDir(this.root);
  }
}

class PatroniNodeImpl implements PatroniNode {
  private child: ChildProcess | undefined;
  private exitInfo: ExitInfo | undefined;
  private exitPromise: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null });
  private output = '';
  private incarnation = 0;

  constructor(
    private readonly layout: NodeLayout,
    private readonly binDir: string,
    private readonly user: RunAs,
  ) {}

  get name(): string {
    return this.layout.name;
  }
  get pgPort(): number {
    return this.layout.pgPort;
  }
  get restPort(): number {
    return this.layout.restPort;
  }
  get configPath(): string {
    return join(this.layout.root, 'patroni.yml');
  }
  get running(): boolean {
    return this.child !== undefined && this.exitInfo === undefined;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name}: Patroni is already running`);
    this.incarnation += 1;
    const args = [...this.user.prefix, PATRONI_BIN, this.configPath];
    const command = args.shift() ?? PATRONI_BIN;
    this.append(`--- patroni ${this.name} start #${this.incarnation}: ${command} ${args.join(' ')}\n`);
    // HOME and PGPASSFILE under the node's dir: the postgres user's real home is none of our business.
    const env = { ...process.env, HOME: this.layout.root, PGPASSFILE: join(this.layout.root, 'pgpass'), PYTHONUNBUFFERED: '1' };
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.layout.root, env });
    this.child = child;
    this.exitInfo = undefined;
    trackChildProcess(child);
    child.stdout?.on('data', (chunk: Buffer) => this.append(chunk.toString('utf8')));
    child.stderr?.on('data', (chunk: Buffer) => this.append(chunk.toString('utf8')));
    const incarnation = this.incarnation;
    this.exitPromise = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        if (this.child === child) this.exitInfo = { code, signal };
        this.append(`--- patroni ${this.name} #${incarnation} exited code=${code} signal=${signal}\n`);
        resolve({ code, signal });
      });
      child.once('error', (error) => {
        this.append(`--- spawn error: ${error.message}\n`);
        if (this.child === child) this.exitInfo = { code: null, signal: null };
        resolve({ code: null, signal: null });
      });
    });
  }

  async stop(): Promise<ExitInfo> {
    const child = this.child;
    if (child === undefined) return { code: null, signal: null };
    if (this.exitInfo !== undefined) return this.exitInfo;
    child.kill('SIGTERM');
    const exited = await raceTimeout(this.exitPromise, STOP_TIMEOUT_MS);
    if (exited !== undefined) return exited;
    this.append(`--- patroni ${this.name} ignored SIGTERM for ${STOP_TIMEOUT_MS} ms; SIGKILL\n`);
    child.kill('SIGKILL');
    const killed = await raceTimeout(this.exitPromise, KILL_TIMEOUT_MS);
    if (killed === undefined) throw new Error(`patroni ${this.name} did not exit after SIGKILL`);
    return killed;
  }

  async crash(): Promise<void> {
    const child = this.child;
    if (child === undefined || this.exitInfo !== undefined) throw new Error(`${this.name}: Patroni is not running`);
    const postmaster = this.postmasterPid();
    child.kill('SIGKILL');
    if ((await raceTimeout(this.exitPromise, KILL_TIMEOUT_MS)) === undefined) throw new Error(`patroni ${this.name} did not exit after SIGKILL`);
    if (postmaster === undefined) return;
    signalQuietly(postmaster, 'SIGQUIT');
    await waitUntil(`${this.name}'s postmaster ${postmaster} to exit`, () => (isAlive(postmaster) ? undefined : true), KILL_TIMEOUT_MS, 50);
  }

  async restCheck(check: string): Promise<number | undefined> {
    try {
      const response = await fetch(`http://127.0.0.1:${this.restPort}/${check}`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
      await response.arrayBuffer();
      return response.status;
    } catch {
      return undefined;
    }
  }

  async status(): Promise<PatroniStatus | undefined> {
    try {
      const response = await fetch(`http://127.0.0.1:${this.restPort}/patroni`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
      const body: unknown = await response.json();
      if (typeof body !== 'object' || body === null) return undefined;
      const record = body as { role?: unknown; state?: unknown; timeline?: unknown };
      return {
        role: typeof record.role === 'string' ? record.role : '',
        state: typeof record.state === 'string' ? record.state : '',
        timeline: typeof record.timeline === 'number' ? record.timeline : undefined,
      };
    } catch {
      return undefined;
    }
  }

  async sql(query: string): Promise<string> {
    const args = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(this.pgPort), '-U', 'postgres', '-d', 'postgres', '-c', query];
    const result = await runBounded(join(this.binDir, 'psql'), args, PSQL_TIMEOUT_MS);
    if (result.code !== 0) throw new Error(`psql on ${this.name} (port ${this.pgPort}) failed (code=${result.code}): ${query}\n${result.stderr}`);
    return result.stdout.trim();
  }

  /** The pid in data/postmaster.pid if that process is alive. */
  postmasterPid(): number | undefined {
    try {
      const first = readFileSync(join(this.layout.root, 'data', 'postmaster.pid'), 'utf8').split('\n')[0];
      const pid = Number(first);
      return Number.isSafeInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  report(lines = 60): string {
    const tail = (text: string): string => text.split('\n').slice(-lines).join('\n');
    let postgres = '(no PostgreSQL log)';
    try {
      postgres = tail(readFileSync(join(this.layout.root, 'log', 'postgresql.log'), 'utf8'));
    } catch {
      // PostgreSQL never started on this node
    }
    return `===== patroni ${this.name} (pg ${this.pgPort}, rest ${this.restPort}) =====\n${tail(this.output)}\n` +
      `===== postgresql ${this.name} log tail =====\n${postgres}\n`;
  }

  private append(text: string): void {
    this.output += text;
    if (this.output.length > LOG_LIMIT_CHARS) this.output = this.output.slice(-LOG_LIMIT_CHARS / 2);
  }
}

/** Runs a short command with a hard time bound (SIGKILL after timeoutMs). */
function runBounded(command: string, args: readonly string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    trackChildProcess(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs} ms)`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: `${stderr}spawn error: ${error.message}` });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function raceTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), timeoutMs);
  });
  const result = await Promise.race([promise, timeout]);
  clearTimeout(timer);
  return result;
}

/** True while `pid` runs. A zombie counts as gone: an orphaned postmaster is reparented, and not every container's init reaps. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..."; comm may hold spaces, so read after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function signalQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/**
 * gavel.ts's exit and signal hooks SIGKILL Patroni but know nothing of the postmaster Patroni
 * forked, which would keep running (and keep its ports). SIGQUIT is PostgreSQL's immediate
 * shutdown: the postmaster takes its backends down with it. Prepended, so it runs before those
 * hooks remove the temp root (and the postmaster.pid files in it); once-listeners, so gavel.ts's
 * signal handler still finds itself the last one and re-raises the signal.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const quitPostmasters = (): void => {
    for (const cluster of clusters) for (const pid of cluster.postmasterPids()) signalQuietly(pid, 'SIGQUIT');
  };
  process.prependOnceListener('exit', quitPostmasters);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.prependOnceListener(signal, quitPostmasters);
}
