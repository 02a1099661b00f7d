/**
 * Process-level harness: starts a real member — gavel (`node dist/server/main.js`) or, to
 * validate the tests themselves, a real etcd 3.4 (`/usr/bin/etcd`) — on loopback ports with a
 * temporary data dir, and runs `etcdctl` against it. The target comes from `GAVEL_TARGET`
 * (`gavel` by default). Every wait is bounded and fails with the member's stderr tail.
 *
 * No process may outlive the test file: call `stopAllMembers()` in `afterAll`; an `exit` hook
 * and SIGINT/SIGTERM/SIGHUP handlers SIGKILL whatever is left and remove the temp dirs.
 * This module does not import vitest, so the benchmark can use it too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Target = 'etcd' | 'gavel';

export const ETCD_BIN = process.env['ETCD_BIN'] ?? '/usr/bin/etcd';
export const ETCDCTL_BIN = process.env['ETCDCTL_BIN'] ?? '/usr/bin/etcdctl';
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;
const LOG_LIMIT_CHARS = 4_000_000;

/** The target chosen by `GAVEL_TARGET=etcd|gavel`; gavel when unset. */
export function targetFromEnv(): Target {
  const value = process.env['GAVEL_TARGET'] ?? 'gavel';
  if (value !== 'etcd' && value !== 'gavel') throw new Error(`GAVEL_TARGET must be 'etcd' or 'gavel', got '${value}'`);
  return value;
}

/** The repository root: $GAVEL_REPO_ROOT, else the nearest ancestor holding proto/ and package.json (works from test/ and dist/test/). */
export function repoRoot(): string {
  const override = process.env['GAVEL_REPO_ROOT'];
  if (override !== undefined && override !== '') return override;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 8; depth += 1) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'proto'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('cannot find the repository root (package.json + proto/) above test/helpers');
}

/** A free TCP port on 127.0.0.1: bind port 0, read the port, close. (Racy by nature; callers retry.) */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('no port from net.Server.address()'));
        return;
      }
      const port = address.port;
      server.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Bookkeeping so that nothing outlives the test file.

const liveChildren = new Set<ChildProcess>();
const tempRoots = new Set<string>();
const members = new Set<MemberImpl>();
let hooksInstalled = false;

function killEverythingSync(): void {
  for (const child of liveChildren) {
    try {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  liveChildren.clear();
  if (process.env['GAVEL_KEEP_DATA'] !== '1') {
    for (const root of tempRoots) rmSync(root, { recursive: true, force: true });
    tempRoots.clear();
  }
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.once('exit', killEverythingSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      killEverythingSync();
      process.removeListener(signal, handler);
      // Re-raise so the default action (exit) happens unless someone else handles the signal.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, handler);
  }
}

function track(child: ChildProcess): void {
  installHooks();
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
}

// ---------------------------------------------------------------------------------------------
// Members.

export interface StartOptions {
  /** etcd or gavel; defaults to `GAVEL_TARGET`. */
  target?: Target;
  /** Use this data dir instead of a fresh temp one (it is then not removed). */
  dataDir?: string;
  /** Extra flags, etcd's spelling (e.g. ['--max-txn-ops', '4']); passed to both targets. */
  args?: string[];
  /** Member name; default 'm1'. */
  name?: string;
  /** Bound on the wait for readiness; default 20 s. */
  readyTimeoutMs?: number;
  /** Bound on the wait after SIGTERM before stop() escalates to SIGKILL; default 10 s. */
  stopTimeoutMs?: number;
  /** The gavel entry point; default $GAVEL_MAIN, else dist/server/main.js under the repository root. */
  gavelMain?: string;
  /** Scheme of the client URL; default 'http'. 'https' needs --cert-file and --key-file in args. */
  clientScheme?: 'http' | 'https';
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Member {
  readonly target: Target;
  readonly name: string;
  /** host:port of the client API, as etcdctl's --endpoints wants it. */
  readonly endpoint: string;
  /** http://host:port, or https:// with `clientScheme: 'https'`. */
  readonly clientUrl: string;
  readonly port: number;
  readonly dataDir: string;
  /** pid of the current incarnation. */
  readonly pid: number;
  /** True while the current incarnation is running. */
  readonly running: boolean;
  /**
   * Sends a signal. For SIGKILL/SIGTERM/SIGINT it waits (bounded) for the exit and returns it;
   * other signals (SIGSTOP, SIGCONT) return at once with null.
   */
  kill(signal?: NodeJS.Signals): Promise<ExitInfo | null>;
  /** SIGTERM, then SIGKILL if it has not exited within a bounded wait. Idempotent. */
  stop(): Promise<ExitInfo>;
  /** Stops (gracefully) if running, then starts again on the same data dir and, unless newPort, the same port. */
  restart(options?: { newPort?: boolean; args?: string[] }): Promise<void>;
  /** Everything the member wrote to stdout/stderr, across incarnations. */
  logs(): string;
  /** Stops and removes the temp data dir. */
  dispose(): Promise<void>;
}

/** Starts one member and resolves when it serves client requests. */
export async function startMember(options: StartOptions = {}): Promise<Member> {
  installHooks();
  const target = options.target ?? targetFromEnv();
  let tempRoot: string | undefined;
  let dataDir = options.dataDir;
  if (dataDir === undefined) {
    tempRoot = mkdtempSync(join(tmpdir(), `gavel-test-${target}-`));
    tempRoots.add(tempRoot);
    dataDir = join(tempRoot, 'data');
  }
  const gavelMain = options.gavelMain ?? process.env['GAVEL_MAIN'] ?? join(repoRoot(), 'dist', 'server', 'main.js');
  const member = new MemberImpl(target, options.name ?? 'm1', dataDir, tempRoot, options.args ?? [], {
    readyTimeoutMs: options.readyTimeoutMs ?? READY_TIMEOUT_MS,
    stopTimeoutMs: options.stopTimeoutMs ?? STOP_TIMEOUT_MS,
    gavelMain,
    clientScheme: options.clientScheme ?? 'http',
  });
  members.add(member);
  try {
    await member.launch({ newPort: true });
  } catch (error) {
    await member.dispose();
    throw error;
  }
  return member;
}

/** Stops every member this process started and removes their temp dirs. Call it in afterAll. */
export async function stopAllMembers(): Promise<void> {
  await Promise.all([...members].map((member) => member.dispose()));
  for (const child of liveChildren) {
    if (child.pid !== undefined) child.kill('SIGKILL');
  }
}

class MemberImpl implements Member {
  private child: ChildProcess | undefined;
  private exitPromise: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null });
  private exitInfo: ExitInfo | undefined;
  private output = '';
  private incarnation = 0;
  private clientPort = 0;
  private peerPort = 0;
  private extraArgs: string[];

  constructor(
    readonly target: Target,
    readonly name: string,
    readonly dataDir: string,
    private readonly tempRoot: string | undefined,
    args: string[],
    private readonly limits: { readyTimeoutMs: number; stopTimeoutMs: number; gavelMain: string; clientScheme: 'http' | 'https' },
  ) {
    this.extraArgs = args;
  }

  get endpoint(): string {
    return `127.0.0.1:${this.clientPort}`;
  }
  get clientUrl(): string {
    return `${this.limits.clientScheme}://${this.endpoint}`;
  }
  get port(): number {
    return this.clientPort;
  }
  get pid(): number {
    const pid = this.child?.pid;
    if (pid === undefined) throw new Error(`${this.name}: no process`);
    return pid;
  }
  get running(): boolean {
    return this.child !== undefined && this.exitInfo === undefined;
  }

  logs(): string {
    return this.output;
  }

  /** The last lines of output, for error messages. */
  tail(lines = 40): string {
    return this.output.split('\n').slice(-lines).join('\n');
  }

  async launch(options: { newPort: boolean }): Promise<void> {
    // A port picked by freePort() can be taken by someone else before we bind it: retry.
    const attempts = options.newPort ? 3 : 1;
    for (let attempt = 1; ; attempt += 1) {
      if (options.newPort || this.clientPort === 0) {
        this.clientPort = this.target === 'etcd' ? await freePort() : 0;
        this.peerPort = this.target === 'etcd' ? await freePort() : 0;
      }
      try {
        await this.spawnOnce();
        return;
      } catch (error) {
        const portClash = /address already in use|EADDRINUSE/i.test(this.tail(20));
        if (!portClash || attempt >= attempts) throw error;
        this.output += `\n--- port clash, retrying with new ports ---\n`;
      }
    }
  }

  private commandLine(): { command: string; args: string[] } {
    const clientUrl = `${this.limits.clientScheme}://127.0.0.1:${this.clientPort}`;
    const peerUrl = `http://127.0.0.1:${this.peerPort}`;
    if (this.target === 'etcd') {
      return {
        command: ETCD_BIN,
        args: [
          '--name', this.name,
          '--data-dir', this.dataDir,
          '--logger', 'zap',
          '--log-outputs', 'stderr',
          '--listen-client-urls', clientUrl,
          '--advertise-client-urls', clientUrl,
          '--listen-peer-urls', peerUrl,
          '--initial-advertise-peer-urls', peerUrl,
          '--initial-cluster', `${this.name}=${peerUrl}`,
          ...this.extraArgs,
        ],
      };
    }
    const main = this.limits.gavelMain;
    if (!existsSync(main)) {
      throw new Error(`${main} does not exist: build gavel first with 'npx tsc -p tsconfig.json' (or run with GAVEL_TARGET=etcd)`);
    }
    warnIfStale(main);
    return {
      command: process.execPath,
      args: [
        main,
        '--name', this.name,
        '--data-dir', this.dataDir,
        '--listen-client-urls', clientUrl,
        '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl,
        ...this.extraArgs,
      ],
    };
  }

  private async spawnOnce(): Promise<void> {
    const { command, args } = this.commandLine();
    this.incarnation += 1;
    this.output += `--- ${this.target} ${this.name} start #${this.incarnation}: ${command} ${args.join(' ')}\n`;
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: repoRoot() });
    this.child = child;
    this.exitInfo = undefined;
    track(child);
    this.exitPromise = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        const info = { code, signal };
        if (this.child === child) this.exitInfo = info;
        this.append(`--- ${this.name} #${this.incarnation} exited code=${code} signal=${signal}\n`);
        resolve(info);
      });
      child.once('error', (error) => {
        this.append(`--- spawn error: ${error.message}\n`);
        if (this.child === child) this.exitInfo = { code: null, signal: null };
        resolve({ code: null, signal: null });
      });
    });
    await this.waitReady(child);
  }

  private append(text: string): void {
    this.output += text;
    if (this.output.length > LOG_LIMIT_CHARS) this.output = this.output.slice(-LOG_LIMIT_CHARS / 2);
  }

  private waitReady(child: ChildProcess): Promise<void> {
    return waitForLine(child, {
      record: (text) => this.append(text),
      matches: (line) => {
        const port = this.readyPort(line);
        if (port !== undefined) this.clientPort = port;
        return port !== undefined;
      },
      timeoutMs: this.limits.readyTimeoutMs,
      exited: this.exitPromise,
      onTimeout: () => {
        this.kill('SIGKILL').catch(() => undefined);
        return new Error(`${this.target} ${this.name} not ready within ${this.limits.readyTimeoutMs} ms; output tail:\n${this.tail()}`);
      },
      onExit: (info) => new Error(`${this.target} ${this.name} exited before ready (code=${info.code} signal=${info.signal}); output tail:\n${this.tail()}`),
    });
  }

  /** The client port if `line` is the member's "ready" log line. */
  private readyPort(line: string): number | undefined {
    if (this.target === 'etcd') {
      // zap logger: {"msg":"serving client traffic insecurely; this is strongly discouraged!","address":"127.0.0.1:P"}
      // ("serving client traffic securely" on an https URL).
      if (/serving client traffic (in)?securely/.test(line) && line.includes(`127.0.0.1:${this.clientPort}`)) return this.clientPort;
      return undefined;
    }
    if (!line.includes('serving client requests')) return undefined;
    try {
      const record: unknown = JSON.parse(line);
      if (typeof record !== 'object' || record === null) return undefined;
      const msg = (record as { msg?: unknown }).msg;
      const address = (record as { address?: unknown }).address;
      if (msg !== 'serving client requests' || typeof address !== 'string') return undefined;
      const match = /:(\d+)$/.exec(address);
      return match ? Number(match[1]) : undefined;
    } catch {
      return undefined;
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ExitInfo | null> {
    const child = this.child;
    if (child === undefined || this.exitInfo !== undefined) return this.exitInfo ?? null;
    child.kill(signal);
    if (signal !== 'SIGKILL' && signal !== 'SIGTERM' && signal !== 'SIGINT') return null;
    return await this.waitExit(signal === 'SIGKILL' ? 5_000 : this.limits.stopTimeoutMs);
  }

  private async waitExit(timeoutMs: number): Promise<ExitInfo> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const result = await Promise.race([this.exitPromise, timeout]);
    clearTimeout(timer);
    if (result === 'timeout') throw new Error(`${this.target} ${this.name} did not exit within ${timeoutMs} ms; output tail:\n${this.tail()}`);
    return result;
  }

  async stop(): Promise<ExitInfo> {
    const child = this.child;
    if (child === undefined) return { code: null, signal: null };
    if (this.exitInfo !== undefined) return this.exitInfo;
    child.kill('SIGCONT'); // a paused (SIGSTOP) member cannot act on SIGTERM
    child.kill('SIGTERM');
    try {
      return await this.waitExit(this.limits.stopTimeoutMs);
    } catch {
      this.append(`--- ${this.name} ignored SIGTERM for ${this.limits.stopTimeoutMs} ms; SIGKILL\n`);
      child.kill('SIGKILL');
      return await this.waitExit(5_000);
    }
  }

  async restart(options: { newPort?: boolean; args?: string[] } = {}): Promise<void> {
    if (this.running) await this.stop();
    if (options.args !== undefined) this.extraArgs = options.args;
    await this.launch({ newPort: options.newPort ?? false });
  }

  async dispose(): Promise<void> {
    try {
      await this.stop();
    } finally {
      members.delete(this);
      if (this.tempRoot !== undefined && process.env['GAVEL_KEEP_DATA'] !== '1') {
        rmSync(this.tempRoot, { recursive: true, force: true });
        tempRoots.delete(this.tempRoot);
      }
    }
  }
}

let staleWarned = false;
/** A stale dist/ would test yesterday's server: say so once (vitest does not rebuild). */
function warnIfStale(main: string): void {
  if (staleWarned) return;
  staleWarned = true;
  const builtAt = statSync(main).mtimeMs;
  const source = join(dirname(dirname(dirname(main))), 'server', 'main.ts');
  if (existsSync(source) && statSync(source).mtimeMs > builtAt) {
    process.stderr.write(`warning: ${main} is older than server/main.ts; run 'npx tsc -p tsconfig.json'\n`);
  }
}

/** What waitForLine needs: where output goes, the line it waits for, and its bounds. */
export interface LineWait {
  /** Every chunk of output, as it arrives (logs keep it). */
  record(text: string): void;
  matches(line: string): boolean;
  timeoutMs: number;
  /** Resolves when the process exits: waiting fails then. */
  exited: Promise<ExitInfo>;
  /** Called at the timeout; returns the error to reject with. */
  onTimeout(): Error;
  onExit(info: ExitInfo): Error;
}

/** Resolves once a whole line of the child's stdout or stderr matches; bounded by a timeout and the child's exit. */
export function waitForLine(child: ChildProcess, wait: LineWait): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let pending = '';
    let settled = false;
    const finish = (error?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve();
    };
    const onChunk = (chunk: Buffer): void => {
      const text = chunk.toString('utf8');
      wait.record(text);
      if (settled) return;
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      if (lines.some((line) => wait.matches(line))) finish();
    };
    child.stdout?.on('data', onChunk);
    child.stderr?.on('data', onChunk);
    const timer = setTimeout(() => finish(wait.onTimeout()), wait.timeoutMs);
    void wait.exited.then((info) => finish(wait.onExit(info)));
  });
}

// ---------------------------------------------------------------------------------------------
// etcdctl.

export interface EtcdctlResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface EtcdctlOptions {
  /** Written to stdin, which is then closed (e.g. `etcdctl txn`). */
  input?: string;
  env?: Record<string, string>;
  /** Hard bound on the run; default 15 s, then SIGKILL. */
  timeoutMs?: number;
  /** Global flags placed right after --endpoints, e.g. ['--cacert', ca, '--cert', cert, '--key', key]. */
  globalFlags?: readonly string[];
}

/** Runs `etcdctl --endpoints ENDPOINT ARGS...` with ETCDCTL_API=3 and collects its output. */
export function etcdctl(endpoint: string, args: readonly string[], options: EtcdctlOptions = {}): Promise<EtcdctlResult> {
  const run = spawnEtcdctl(endpoint, args, options);
  return run.done;
}

export interface BackgroundEtcdctl {
  /** stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves once `predicate(stdout)` holds; rejects after timeoutMs or if etcdctl exits first. */
  waitFor(predicate: (stdout: string) => boolean, timeoutMs?: number): Promise<void>;
  /** SIGTERM (the way ^C ends a watch) and the collected result. */
  stop(): Promise<EtcdctlResult>;
  readonly done: Promise<EtcdctlResult>;
}

/** Starts etcdctl in the background (e.g. `watch`); it is SIGKILLed after timeoutMs (default 15 s). */
export function spawnEtcdctl(endpoint: string, args: readonly string[], options: EtcdctlOptions = {}): BackgroundEtcdctl {
  const child = spawn(ETCDCTL_BIN, ['--endpoints', endpoint, ...(options.globalFlags ?? []), ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ETCDCTL_API: '3', ...options.env },
  });
  track(child);
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  const listeners = new Set<() => void>();
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
    for (const listener of listeners) listener();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  child.stdin.on('error', () => undefined); // etcdctl may exit before reading stdin
  if (options.input !== undefined) child.stdin.write(options.input);
  child.stdin.end();
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs ?? 15_000);
  const done = new Promise<EtcdctlResult>((resolve) => {
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer);
      for (const listener of listeners) listener();
      resolve({ code, signal, stdout, stderr, timedOut });
    };
    child.once('close', finish);
    child.once('error', (error) => {
      stderr += `spawn error: ${error.message}`;
      finish(null, null);
    });
  });
  let exited = false;
  void done.then(() => {
    exited = true;
  });
  return {
    stdout: () => stdout,
    stderr: () => stderr,
    done,
    waitFor(predicate, timeoutMs = 10_000) {
      return new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (predicate(stdout)) {
            cleanup();
            resolve();
          } else if (exited) {
            cleanup();
            reject(new Error(`etcdctl ${args.join(' ')} exited before the expected output; stdout:\n${stdout}\nstderr:\n${stderr}`));
          }
        };
        const timeout = setTimeout(() => {
          cleanup();
          reject(new Error(`etcdctl ${args.join(' ')}: expected output not seen within ${timeoutMs} ms; stdout:\n${stdout}\nstderr:\n${stderr}`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timeout);
          listeners.delete(check);
        };
        listeners.add(check);
        void done.then(check);
        check();
      });
    },
    async stop() {
      if (!exited) child.kill('SIGTERM');
      return await done;
    },
  };
}

/** Bounded polling: resolves when `probe` returns a value other than undefined. */
export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

// ---------------------------------------------------------------------------------------------
// Bookkeeping for processes started elsewhere (test/helpers/cluster.ts), so they share the
// guarantee above: nothing outlives the test file.

/** Registers a child process started outside this module: it is SIGKILLed if this process exits or is signalled. */
export function trackChildProcess(child: ChildProcess): void {
  track(child);
}

/** Registers a temp dir for removal when this process exits (kept when GAVEL_KEEP_DATA=1). */
export function trackTempDir(dir: string): void {
  installHooks();
  tempRoots.add(dir);
}

/** Removes a temp dir registered with trackTempDir now (kept when GAVEL_KEEP_DATA=1). */
export function removeTempDir(dir: string): void {
  if (process.env['GAVEL_KEEP_DATA'] === '1') return;
  rmSync(dir, { recursive: true, force: true });
  tempRoots.delete(dir);
}
