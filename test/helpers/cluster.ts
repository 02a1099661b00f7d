/**
 * Cluster harness: N members of gavel (`node dist/server/main.js`) or, to validate the tests
 * themselves, of a real etcd 3.4 (`/usr/bin/etcd`), on loopback ports picked up front, each
 * with its own data dir under one temp root. Both targets get etcd's flags, spelled the same
 * (--initial-cluster, --initial-cluster-state, --initial-cluster-token, ...). The target comes
 * from `GAVEL_TARGET` unless given.
 *
 * Readiness of one member is its "serving client" log line; readiness of the cluster is
 * `etcdctl endpoint status` showing the same leader on every running member (a gavel member may
 * serve clients before a leader exists). Every wait is bounded and fails with the members'
 * output tails. Every process is registered with test/helpers/gavel.ts, so an exit hook kills
 * whatever a test leaves behind; still, call `stopAllClusters()` in afterAll.
 * This module does not import vitest, so the benchmark can use it too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ETCD_BIN,
  etcdctl,
  freePort,
  removeTempDir,
  repoRoot,
  targetFromEnv,
  trackChildProcess,
  trackTempDir,
  waitForLine,
  waitUntil,
  type EtcdctlOptions,
  type EtcdctlResult,
  type ExitInfo,
  type Target,
} from './gavel.js';
import { asArray, asBigInt, asObject, parseJsonLossless, type Json } from './json.js';

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const KILL_TIMEOUT_MS = 5_000;
const LEADER_TIMEOUT_MS = 30_000;
const LOG_LIMIT_CHARS = 4_000_000;
const START_ATTEMPTS = 3;
const RECONFIGURE_TIMEOUT_MS = 20_000;
/** etcdctl bounds for status probes: a dead or paused member must not stall a poll loop. */
const PROBE_FLAGS = ['--dial-timeout=1s', '--command-timeout=2s'] as const;
const PROBE_TIMEOUT_MS = 6_000;

export interface ClusterOptions {
  /** Number of members: 3 or 5 in the tests; 1 for the benchmark's baseline. */
  members: number;
  /** etcd or gavel; defaults to `GAVEL_TARGET`. */
  target?: Target;
  /** Extra flags for every member, etcd's spelling; passed to both targets. */
  args?: string[];
  /** --snapshot-count; the target's default when unset. */
  snapshotCount?: number;
  /** --heartbeat-interval in ms; default 100. */
  heartbeatIntervalMs?: number;
  /** --election-timeout in ms; default 1000. */
  electionTimeoutMs?: number;
  /** Bound on each member's wait for its ready line; default 30 s. */
  readyTimeoutMs?: number;
  /** Bound on the wait for a leader that every member agrees on; default 30 s. */
  leaderTimeoutMs?: number;
  /** Bound on the wait after SIGTERM before escalating to SIGKILL; default 10 s. */
  stopTimeoutMs?: number;
  /** The gavel entry point; default $GAVEL_MAIN, else dist/server/main.js under the repository root. */
  gavelMain?: string;
  /** Scheme of the peer URLs; default 'http'. 'https' needs the --peer-cert-file/--peer-key-file flags in args. */
  peerScheme?: 'http' | 'https';
  /** Extra environment variables for every member process, on top of this process's environment. */
  env?: Readonly<Record<string, string>>;
  /**
   * Runs after the ports, names and data dirs are chosen and before any member starts (again on a
   * retry after a port clash): e.g. `gavel snapshot restore` into each member's data dir.
   */
  prepare?: (plan: ClusterPlan) => Promise<void>;
}

/** What a cluster will be, for ClusterOptions.prepare. */
export interface ClusterPlan {
  /** --initial-cluster-token. */
  readonly token: string;
  /** --initial-cluster as every member gets it. */
  readonly initialCluster: string;
  readonly members: readonly { readonly name: string; readonly dataDir: string; readonly peerUrl: string }[];
}

export interface ClusterMember {
  readonly target: Target;
  readonly name: string;
  /** host:port of the client API, as etcdctl's --endpoints wants it. */
  readonly endpoint: string;
  /** http://host:port of the client API. */
  readonly clientUrl: string;
  /** http://host:port of the peer API (https:// with `peerScheme: 'https'`). */
  readonly peerUrl: string;
  readonly dataDir: string;
  /** pid of the current incarnation. */
  readonly pid: number;
  /** True while the current incarnation has not exited (a paused member is running). */
  readonly running: boolean;
  /** True between SIGSTOP and SIGCONT sent through the harness. */
  readonly paused: boolean;
  /** How the current incarnation ended, once it has. */
  readonly exitInfo: ExitInfo | undefined;
  /** Resolves when the current incarnation exits; rejects after timeoutMs with the output tail. */
  waitExit(timeoutMs: number): Promise<ExitInfo>;
  /** Everything the member wrote to stdout/stderr, across incarnations. */
  logs(): string;
  /** The last lines of output, for error messages. */
  tail(lines?: number): string;
}

/** One member's `etcdctl endpoint status -w json` entry. Absent numbers (etcd omits zeros) are 0. */
export interface EndpointStatus {
  endpoint: string;
  memberId: bigint;
  clusterId: bigint;
  /** 0n when the member knows no leader. */
  leader: bigint;
  raftTerm: number;
  raftIndex: number;
  raftAppliedIndex: number;
  /** header.revision: the member's MVCC revision. */
  revision: number;
  isLearner: boolean;
  /** `errors`, e.g. ["etcdserver: no leader"]. */
  errors: string[];
  /** The whole Status object as printed. */
  raw: { [key: string]: Json };
}

export interface Cluster {
  readonly target: Target;
  /** --initial-cluster-token: with the peer URLs it determines the member ids. */
  readonly token: string;
  readonly electionTimeoutMs: number;
  /** The current membership as the harness changed it (addMember appends, removeMember takes out). */
  readonly members: ClusterMember[];
  /** Comma-separated client endpoints of the members that are running and not paused. */
  endpoints(): string;
  /** Members that are running and not paused. */
  live(): ClusterMember[];
  /** One probe: the member every live member names as leader; throws if they disagree or know none. */
  leader(): Promise<ClusterMember>;
  /** Polls leader() until it answers; bounded, the error carries the statuses and output tails. */
  waitForLeader(timeoutMs?: number): Promise<ClusterMember>;
  /** `etcdctl endpoint status -w json` of one member. */
  status(member: ClusterMember): Promise<EndpointStatus>;
  /** The member id, read from `member list -w json` by peer URL (cached). */
  memberId(member: ClusterMember): Promise<bigint>;
  /** SIGKILL (default) waits for the exit; SIGSTOP/SIGCONT pause and resume and return null. */
  kill(member: ClusterMember, signal?: NodeJS.Signals): Promise<ExitInfo | null>;
  /**
   * Stops the member if it runs, then starts it again on the same data dir and ports; waits for its ready line.
   * `args`: flags appended to the member's own for this and later incarnations (later flags win, on
   * both targets); `[]` goes back to the member's own flags.
   */
  restart(member: ClusterMember, options?: { args?: string[] }): Promise<void>;
  /**
   * `etcdctl member add NAME --peer-urls=...`, then starts it with --initial-cluster-state existing.
   * `args` are appended to its flags; `readyTimeoutMs` bounds the wait for its ready line.
   */
  addMember(name: string, options?: { args?: string[]; readyTimeoutMs?: number }): Promise<ClusterMember>;
  /** `etcdctl member remove HEX`; the process is left running (to observe it stop) and killed by stop(). */
  removeMember(member: ClusterMember): Promise<void>;
  /** Runs etcdctl against `via` (default: every live member). */
  etcdctl(args: readonly string[], options?: ClusterEtcdctlOptions): Promise<EtcdctlResult>;
  /** Like etcdctl() but requires exit code 0 and returns stdout. */
  ctl(args: readonly string[], options?: ClusterEtcdctlOptions): Promise<string>;
  /** Stops every process this cluster started (SIGTERM, bounded, then SIGKILL) and removes the temp dir. */
  stop(): Promise<void>;
}

export interface ClusterEtcdctlOptions extends EtcdctlOptions {
  via?: ClusterMember | readonly ClusterMember[];
}

const clusters = new Set<ClusterImpl>();

/** Starts a cluster and resolves when every member serves clients and all agree on a leader. */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  if (!Number.isInteger(options.members) || options.members < 1 || options.members > 7) {
    throw new Error(`members must be an integer in 1..7, got ${options.members}`);
  }
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt += 1) {
    const cluster = await ClusterImpl.create(options);
    clusters.add(cluster);
    try {
      await options.prepare?.(cluster.plan());
      await cluster.launchAll();
      await cluster.waitForLeader(options.leaderTimeoutMs ?? LEADER_TIMEOUT_MS);
      return cluster;
    } catch (error) {
      lastError = error;
      const clash = cluster.allMembers().some((member) => /address already in use|EADDRINUSE/i.test(member.tail(30)));
      await cluster.stop();
      // A port picked by freePort() can be taken by someone else before the member binds it.
      if (!clash) break;
    }
  }
  throw lastError;
}

/** Stops every cluster this process started. Call it in afterAll. */
export async function stopAllClusters(): Promise<void> {
  await Promise.all([...clusters].map((cluster) => cluster.stop()));
}

/** A member id as etcdctl prints it (`member list`, `move-leader`): lowercase hex, no padding. */
export function hexId(id: bigint): string {
  return id.toString(16);
}

/** `count` distinct free ports that are not in `taken`. */
async function freePorts(count: number, taken: ReadonlySet<number>): Promise<number[]> {
  const ports = new Set<number>();
  for (let tries = 0; ports.size < count; tries += 1) {
    if (tries > count * 20) throw new Error(`could not find ${count} distinct free ports`);
    const port = await freePort();
    if (!taken.has(port)) ports.add(port);
  }
  return [...ports];
}

// ---------------------------------------------------------------------------------------------
// One member process.

interface MemberSpec {
  target: Target;
  name: string;
  dataDir: string;
  clientPort: number;
  peerPort: number;
  peerScheme: 'http' | 'https';
  /** Flags every incarnation gets, after the binary (and etcd's logger flags). */
  flags: string[];
  gavelMain: string;
  readyTimeoutMs: number;
  stopTimeoutMs: number;
  env: Readonly<Record<string, string>>;
}

class MemberProcess implements ClusterMember {
  private child: ChildProcess | undefined;
  private exitPromise: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null });
  private exited: ExitInfo | undefined;
  private output = '';
  private incarnation = 0;
  private isPaused = false;
  /** Appended to spec.flags (see Cluster.restart). */
  extraFlags: string[] = [];

  constructor(private readonly spec: MemberSpec) {}

  get target(): Target {
    return this.spec.target;
  }
  get name(): string {
    return this.spec.name;
  }
  get endpoint(): string {
    return `127.0.0.1:${this.spec.clientPort}`;
  }
  get clientUrl(): string {
    return `http://${this.endpoint}`;
  }
  get peerUrl(): string {
    return `${this.spec.peerScheme}://127.0.0.1:${this.spec.peerPort}`;
  }
  get dataDir(): string {
    return this.spec.dataDir;
  }
  get ports(): number[] {
    return [this.spec.clientPort, this.spec.peerPort];
  }
  get pid(): number {
    const pid = this.child?.pid;
    if (pid === undefined) throw new Error(`${this.name}: no process`);
    return pid;
  }
  get running(): boolean {
    return this.child !== undefined && this.exited === undefined;
  }
  get paused(): boolean {
    return this.running && this.isPaused;
  }
  get exitInfo(): ExitInfo | undefined {
    return this.exited;
  }

  logs(): string {
    return this.output;
  }

  tail(lines = 30): string {
    // etcd's JSON lines are long; keep each one readable in an assertion message.
    return this.output
      .split('\n')
      .slice(-lines)
      .map((line) => (line.length > 400 ? `${line.slice(0, 400)}…` : line))
      .join('\n');
  }

  private append(text: string): void {
    this.output += text;
    if (this.output.length > LOG_LIMIT_CHARS) this.output = this.output.slice(-LOG_LIMIT_CHARS / 2);
  }

  private commandLine(): { command: string; args: string[] } {
    if (this.spec.target === 'etcd') {
      // zap JSON lines on stderr, like gavel's, so the ready line and the tails read the same.
      return { command: ETCD_BIN, args: ['--logger', 'zap', '--log-outputs', 'stderr', ...this.spec.flags, ...this.extraFlags] };
    }
    const main = this.spec.gavelMain;
    if (!existsSync(main)) {
      throw new Error(`${main} does not exist: build gavel first with 'npx tsc -p tsconfig.json' (or run with GAVEL_TARGET=etcd)`);
    }
    return { command: process.execPath, args: [main, ...this.spec.flags, ...this.extraFlags] };
  }

  /** Spawns a new incarnation and resolves on its ready line; bounded. */
  async launch(): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running (pid ${this.pid})`);
    const { command, args } = this.commandLine();
    this.incarnation += 1;
    const incarnation = this.incarnation;
    this.append(`--- ${this.target} ${this.name} start #${incarnation}: ${command} ${args.join(' ')}\n`);
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: repoRoot(), env: { ...process.env, ...this.spec.env } });
    this.child = child;
    this.exited = undefined;
    this.isPaused = false;
    trackChildProcess(child);
    this.exitPromise = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        const info = { code, signal };
        if (this.child === child) this.exited = info;
        this.append(`--- ${this.name} #${incarnation} exited code=${code} signal=${signal}\n`);
        resolve(info);
      });
      child.once('error', (error) => {
        const info = { code: null, signal: null };
        this.append(`--- ${this.name} spawn error: ${error.message}\n`);
        if (this.child === child) this.exited = info;
        resolve(info);
      });
    });
    await this.waitReady(child);
  }

  private waitReady(child: ChildProcess): Promise<void> {
    return waitForLine(child, {
      record: (text) => this.append(text),
      matches: (line) => this.isReadyLine(line),
      timeoutMs: this.spec.readyTimeoutMs,
      exited: this.exitPromise,
      onTimeout: () => {
        child.kill('SIGKILL');
        return new Error(`${this.target} ${this.name} (${this.endpoint}) not serving clients within ${this.spec.readyTimeoutMs} ms; output tail:\n${this.tail()}`);
      },
      onExit: (info) => new Error(`${this.target} ${this.name} exited before serving clients (code=${info.code} signal=${info.signal}); output tail:\n${this.tail()}`),
    });
  }

  /** etcd: "serving client traffic (in)securely..."; gavel: {"msg":"serving client requests","address":"127.0.0.1:P"}. */
  private isReadyLine(line: string): boolean {
    const wanted = this.target === 'etcd' ? 'serving client traffic' : 'serving client requests';
    if (!line.includes(wanted)) return false;
    try {
      const record: unknown = JSON.parse(line);
      if (typeof record !== 'object' || record === null) return false;
      const msg = (record as { msg?: unknown }).msg;
      const address = (record as { address?: unknown }).address;
      return typeof msg === 'string' && msg.startsWith(wanted) && typeof address === 'string' && address.endsWith(`:${this.spec.clientPort}`);
    } catch {
      return false;
    }
  }

  /** Sends a signal; SIGKILL/SIGTERM/SIGINT wait (bounded) for the exit. */
  async signal(signal: NodeJS.Signals): Promise<ExitInfo | null> {
    const child = this.child;
    if (child === undefined || this.exited !== undefined) return this.exited ?? null;
    if (signal === 'SIGSTOP') this.isPaused = true;
    if (signal === 'SIGCONT') this.isPaused = false;
    child.kill(signal);
    if (signal !== 'SIGKILL' && signal !== 'SIGTERM' && signal !== 'SIGINT') return null;
    this.isPaused = false;
    return await this.waitExit(signal === 'SIGKILL' ? KILL_TIMEOUT_MS : this.spec.stopTimeoutMs);
  }

  async waitExit(timeoutMs: number): Promise<ExitInfo> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const result = await Promise.race([this.exitPromise, timeout]);
    clearTimeout(timer);
    if (result === 'timeout') throw new Error(`${this.target} ${this.name} did not exit within ${timeoutMs} ms; output tail:\n${this.tail()}`);
    return result;
  }

  /** SIGCONT + SIGTERM, then SIGKILL if it has not exited within the bound. Idempotent. */
  async stop(): Promise<ExitInfo> {
    const child = this.child;
    if (child === undefined) return { code: null, signal: null };
    if (this.exited !== undefined) return this.exited;
    child.kill('SIGCONT'); // a paused member cannot act on SIGTERM
    child.kill('SIGTERM');
    this.isPaused = false;
    try {
      return await this.waitExit(this.spec.stopTimeoutMs);
    } catch {
      this.append(`--- ${this.name} ignored SIGTERM for ${this.spec.stopTimeoutMs} ms; SIGKILL\n`);
      child.kill('SIGKILL');
      return await this.waitExit(KILL_TIMEOUT_MS);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The cluster.

interface Settings {
  target: Target;
  root: string;
  token: string;
  commonFlags: string[];
  extraArgs: string[];
  gavelMain: string;
  readyTimeoutMs: number;
  stopTimeoutMs: number;
  electionTimeoutMs: number;
  env: Readonly<Record<string, string>>;
  peerScheme: 'http' | 'https';
}

class ClusterImpl implements Cluster {
  readonly members: MemberProcess[] = [];
  /** Every member ever started, removed ones included, so that stop() reaches them. */
  private readonly everyMember: MemberProcess[] = [];
  private readonly memberIds = new Map<MemberProcess, bigint>();
  private stopped = false;

  private constructor(private readonly settings: Settings) {}

  static async create(options: ClusterOptions): Promise<ClusterImpl> {
    const target = options.target ?? targetFromEnv();
    const root = mkdtempSync(join(tmpdir(), `gavel-cluster-${target}-`));
    trackTempDir(root);
    const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 100;
    const electionTimeoutMs = options.electionTimeoutMs ?? 1000;
    const commonFlags = [
      '--heartbeat-interval', String(heartbeatIntervalMs),
      '--election-timeout', String(electionTimeoutMs),
      ...(options.snapshotCount === undefined ? [] : ['--snapshot-count', String(options.snapshotCount)]),
    ];
    const cluster = new ClusterImpl({
      target,
      root,
      token: `gavel-test-${randomBytes(6).toString('hex')}`,
      commonFlags,
      extraArgs: options.args ?? [],
      gavelMain: options.gavelMain ?? process.env['GAVEL_MAIN'] ?? join(repoRoot(), 'dist', 'server', 'main.js'),
      readyTimeoutMs: options.readyTimeoutMs ?? READY_TIMEOUT_MS,
      stopTimeoutMs: options.stopTimeoutMs ?? STOP_TIMEOUT_MS,
      electionTimeoutMs,
      env: options.env ?? {},
      peerScheme: options.peerScheme ?? 'http',
    });
    const ports = await freePorts(2 * options.members, new Set());
    const specs = Array.from({ length: options.members }, (_, index) => ({
      name: `n${index + 1}`,
      clientPort: ports[2 * index] as number,
      peerPort: ports[2 * index + 1] as number,
    }));
    const initialCluster = specs.map((spec) => `${spec.name}=${cluster.settings.peerScheme}://127.0.0.1:${spec.peerPort}`).join(',');
    for (const spec of specs) cluster.adopt(cluster.newMember(spec.name, spec.clientPort, spec.peerPort, initialCluster, 'new'));
    return cluster;
  }

  get target(): Target {
    return this.settings.target;
  }
  get token(): string {
    return this.settings.token;
  }
  get electionTimeoutMs(): number {
    return this.settings.electionTimeoutMs;
  }

  allMembers(): MemberProcess[] {
    return [...this.everyMember];
  }

  plan(): ClusterPlan {
    const members = this.members.map((member) => ({ name: member.name, dataDir: member.dataDir, peerUrl: member.peerUrl }));
    return { token: this.settings.token, initialCluster: members.map((m) => `${m.name}=${m.peerUrl}`).join(','), members };
  }

  private newMember(name: string, clientPort: number, peerPort: number, initialCluster: string, state: 'new' | 'existing', extra: { args?: string[]; readyTimeoutMs?: number } = {}): MemberProcess {
    const clientUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `${this.settings.peerScheme}://127.0.0.1:${peerPort}`;
    const flags = [
      '--name', name,
      '--data-dir', join(this.settings.root, name),
      '--listen-client-urls', clientUrl,
      '--advertise-client-urls', clientUrl,
      '--listen-peer-urls', peerUrl,
      '--initial-advertise-peer-urls', peerUrl,
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', state,
      '--initial-cluster-token', this.settings.token,
      ...this.settings.commonFlags,
      ...this.settings.extraArgs,
      ...(extra.args ?? []),
    ];
    return new MemberProcess({
      target: this.settings.target,
      name,
      dataDir: join(this.settings.root, name),
      clientPort,
      peerPort,
      peerScheme: this.settings.peerScheme,
      flags,
      gavelMain: this.settings.gavelMain,
      readyTimeoutMs: extra.readyTimeoutMs ?? this.settings.readyTimeoutMs,
      stopTimeoutMs: this.settings.stopTimeoutMs,
      env: this.settings.env,
    });
  }

  private adopt(member: MemberProcess): void {
    this.members.push(member);
    this.everyMember.push(member);
  }

  private own(member: ClusterMember): MemberProcess {
    const found = this.everyMember.find((candidate) => candidate === member);
    if (found === undefined) throw new Error(`${member.name} is not a member of this cluster`);
    return found;
  }

  /** Starts every member at once: with --initial-cluster-state new none can finish bootstrapping alone. */
  async launchAll(): Promise<void> {
    const results = await Promise.allSettled(this.members.map((member) => member.launch()));
    const failures = results.flatMap((result) => (result.status === 'rejected' ? [result.reason instanceof Error ? result.reason.message : String(result.reason)] : []));
    if (failures.length > 0) throw new Error(`cluster of ${this.members.length} did not start:\n${failures.join('\n\n')}`);
  }

  live(): MemberProcess[] {
    return this.members.filter((member) => member.running && !member.paused);
  }

  endpoints(): string {
    return this.live().map((member) => member.endpoint).join(',');
  }

  private viaEndpoints(via: ClusterMember | readonly ClusterMember[] | undefined): string {
    if (via === undefined) {
      const endpoints = this.endpoints();
      if (endpoints === '') throw new Error('no live member to run etcdctl against');
      return endpoints;
    }
    const list: readonly ClusterMember[] = Array.isArray(via) ? via : [via as ClusterMember];
    return list.map((member) => member.endpoint).join(',');
  }

  etcdctl(args: readonly string[], options: ClusterEtcdctlOptions = {}): Promise<EtcdctlResult> {
    const { via, ...rest } = options;
    // etcdctl's own 5 s default fails a call that authenticates with bcrypt on a busy 2-core
    // machine; the run's hard bound (15 s) still ends a hung one.
    const flags = rest.globalFlags ?? [];
    const timed = [...flags, ...args].some((arg) => arg.startsWith('--command-timeout'));
    return etcdctl(this.viaEndpoints(via), args, timed ? rest : { ...rest, globalFlags: [...flags, '--command-timeout=12s'] });
  }

  async ctl(args: readonly string[], options: ClusterEtcdctlOptions = {}): Promise<string> {
    const result = await this.etcdctl(args, options);
    if (result.code !== 0) {
      throw new Error(`etcdctl --endpoints ${this.viaEndpoints(options.via)} ${args.join(' ')} -> code=${result.code} timedOut=${result.timedOut}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
    }
    return result.stdout;
  }

  async status(member: ClusterMember): Promise<EndpointStatus> {
    const stdout = await this.ctl([...PROBE_FLAGS, 'endpoint', 'status', '-w', 'json'], { via: member, timeoutMs: PROBE_TIMEOUT_MS });
    const entries = asArray(parseJsonLossless(stdout), 'endpoint status');
    const entry = asObject(entries[0], 'endpoint status entry');
    return parseStatus(String(entry['Endpoint'] ?? member.endpoint), asObject(entry['Status'], 'Status'));
  }

  async leader(): Promise<ClusterMember> {
    const live = this.live();
    if (live.length === 0) throw new Error('no live member');
    const statuses = await Promise.all(live.map((member) => this.status(member)));
    const leaders = new Set(statuses.map((status) => status.leader));
    const summary = (): string => statuses.map((status, index) => `${live[index]?.name}: id=${hexId(status.memberId)} leader=${hexId(status.leader)} term=${status.raftTerm} errors=${JSON.stringify(status.errors)}`).join('; ');
    if (leaders.size !== 1 || leaders.has(0n)) throw new Error(`the live members do not agree on a leader: ${summary()}`);
    const index = statuses.findIndex((status) => status.memberId === statuses[0]?.leader);
    const leader = live[index];
    if (leader === undefined) throw new Error(`the leader is not a live member: ${summary()}`);
    for (const [position, status] of statuses.entries()) {
      const member = live[position];
      if (member !== undefined) this.memberIds.set(member, status.memberId);
    }
    return leader;
  }

  async waitForLeader(timeoutMs = LEADER_TIMEOUT_MS): Promise<ClusterMember> {
    try {
      return await waitUntil('a leader that every live member agrees on', () => this.leader(), timeoutMs, 100);
    } catch (error) {
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n${this.tails()}`);
    }
  }

  /** Output tails of every member, for error messages. */
  tails(lines = 12): string {
    return this.everyMember.map((member) => `--- ${member.name} (${member.running ? (member.paused ? 'paused' : 'running') : 'exited'}) tail:\n${member.tail(lines)}`).join('\n');
  }

  async memberId(member: ClusterMember): Promise<bigint> {
    const own = this.own(member);
    const cached = this.memberIds.get(own);
    if (cached !== undefined) return cached;
    const list = asObject(parseJsonLossless(await this.ctl(['member', 'list', '-w', 'json'])), 'member list');
    for (const entry of asArray(list['members'], 'members')) {
      const record = asObject(entry);
      const peerUrls = asArray(record['peerURLs'] ?? [], 'peerURLs');
      if (peerUrls.includes(own.peerUrl)) {
        const id = asBigInt(record['ID'], 'ID');
        this.memberIds.set(own, id);
        return id;
      }
    }
    throw new Error(`${own.name} (${own.peerUrl}) is not in member list: ${JSON.stringify(list)}`);
  }

  async kill(member: ClusterMember, signal: NodeJS.Signals = 'SIGKILL'): Promise<ExitInfo | null> {
    return await this.own(member).signal(signal);
  }

  async restart(member: ClusterMember, options: { args?: string[] } = {}): Promise<void> {
    const own = this.own(member);
    if (own.running) await own.stop();
    if (options.args !== undefined) own.extraFlags = [...options.args];
    try {
      await own.launch();
    } catch (error) {
      throw new Error(`restart of ${own.name} failed: ${error instanceof Error ? error.message : String(error)}\n${this.tails(8)}`);
    }
  }

  async addMember(name: string, options: { args?: string[]; readyTimeoutMs?: number } = {}): Promise<ClusterMember> {
    if (this.everyMember.some((member) => member.name === name)) throw new Error(`a member named ${name} exists already`);
    const taken = new Set(this.everyMember.flatMap((member) => member.ports));
    const [clientPort, peerPort] = (await freePorts(2, taken)) as [number, number];
    const peerUrl = `${this.settings.peerScheme}://127.0.0.1:${peerPort}`;
    const stdout = await this.reconfigure(['member', 'add', name, `--peer-urls=${peerUrl}`]);
    // Member 4d2af34996c795b1 added to cluster a882a40010567583
    // ETCD_INITIAL_CLUSTER="n2=http://127.0.0.1:42380,n4=http://127.0.0.1:44380,..."
    // (etcdctl prints both ids with %16x: shorter ones are padded with spaces.)
    const added = /^Member +([0-9a-f]+) added to cluster +([0-9a-f]+)$/m.exec(stdout);
    const initialCluster = /^ETCD_INITIAL_CLUSTER="([^"]*)"$/m.exec(stdout)?.[1];
    if (added === null || initialCluster === undefined) throw new Error(`unexpected 'member add' output:\n${stdout}`);
    const member = this.newMember(name, clientPort, peerPort, initialCluster, 'existing', options);
    this.adopt(member);
    this.memberIds.set(member, BigInt(`0x${added[1]}`));
    try {
      await member.launch();
    } catch (error) {
      throw new Error(`added member ${name} did not start: ${error instanceof Error ? error.message : String(error)}\n${this.tails(8)}`);
    }
    return member;
  }

  /**
   * A membership change, retried while the server refuses it as "etcdserver: unhealthy cluster":
   * etcd (--strict-reconfig-check, the default) wants every member connected for 5 s first.
   * That refusal happens before anything is proposed, so the retry cannot apply a change twice.
   */
  private async reconfigure(args: readonly string[], options: ClusterEtcdctlOptions = {}): Promise<string> {
    const deadline = Date.now() + RECONFIGURE_TIMEOUT_MS;
    for (;;) {
      const result = await this.etcdctl(args, options);
      if (result.code === 0) return result.stdout;
      const refused = result.stderr.includes('etcdserver: unhealthy cluster');
      if (!refused || Date.now() > deadline) {
        const why = refused ? `still refused after ${RECONFIGURE_TIMEOUT_MS} ms` : 'failed';
        throw new Error(`etcdctl ${args.join(' ')} ${why}: code=${result.code} timedOut=${result.timedOut}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}\n${this.tails(8)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  async removeMember(member: ClusterMember): Promise<void> {
    const own = this.own(member);
    const id = await this.memberId(own);
    const others = this.live().filter((candidate) => candidate !== own);
    const stdout = await this.reconfigure(['member', 'remove', hexId(id)], others.length > 0 ? { via: others } : {});
    if (!/^Member +[0-9a-f]+ removed from cluster +[0-9a-f]+$/m.test(stdout)) throw new Error(`unexpected 'member remove' output:\n${stdout}`);
    const index = this.members.indexOf(own);
    if (index >= 0) this.members.splice(index, 1);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    try {
      // Followers first, then the leader: a leader stopped together with its followers tries to
      // hand leadership to a member that is going away, and etcd then waits 7 s for that.
      const leader = await this.leader().catch(() => undefined);
      await Promise.all(this.everyMember.filter((member) => member !== leader).map((member) => member.stop()));
      if (leader !== undefined) await this.own(leader).stop();
    } finally {
      clusters.delete(this);
      removeTempDir(this.settings.root);
    }
  }
}

function parseStatus(endpoint: string, status: { [key: string]: Json }): EndpointStatus {
  const header = asObject(status['header'] ?? {}, 'header');
  const number = (value: Json | undefined): number => (value === undefined ? 0 : Number(asBigInt(value)));
  return {
    endpoint,
    memberId: asBigInt(header['member_id'] ?? 0, 'member_id'),
    clusterId: asBigInt(header['cluster_id'] ?? 0, 'cluster_id'),
    leader: asBigInt(status['leader'] ?? 0, 'leader'),
    raftTerm: number(status['raftTerm']),
    raftIndex: number(status['raftIndex']),
    raftAppliedIndex: number(status['raftAppliedIndex']),
    revision: number(header['revision']),
    isLearner: status['isLearner'] === true,
    errors: asArray(status['errors'] ?? [], 'errors').map((error) => String(error)),
    raw: status,
  };
}
