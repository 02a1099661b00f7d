/**
 * Workload (b), lock with fencing: several clients, each connected to every member, take one
 * mutex in turn (client/mutex.ts) and in the critical section append (client, fencing token,
 * unique id) to a log through the mutex's fenced Txn: a put of `<prefix>/log/<id>` that commits
 * only while the lock key still exists with the holder's create revision (the token). The
 * append's commit revision is its position in the log. After the heal the log is read back and
 * checked by checkFencing (fencing-checker.ts): tokens never go down in log order, no append
 * commits after a higher token was granted, acknowledged appends are present, failed ones absent.
 *
 * Sessions have short TTLs, so faults expire them; a worker whose lock wait, append or unlock
 * fails revokes its session (a queue key it may have left behind would block everyone) and starts
 * a new one. A share of holders also plays a stale holder on purpose: it revokes its own session
 * in the middle of its critical section (as if its lease had run out during a long GC pause),
 * waits for the next holder, and appends once more. The fence must refuse that append
 * (LockLost); a server started with GAVEL_UNSAFE_SKIP_FENCE=1 lets it commit (broken.test.ts).
 */
import type { Client, Mutex, Session } from '../../client/index.js';
import { op } from '../../client/index.js';
import { Prng } from '../sim/prng.js';
import { classifyClientError, clientErrorText, libraryClient, openSession, type FaultClient } from './client.js';
import { checkFencing, type AppendAttempt, type FencedAppend, type LockGrant } from './fencing-checker.js';
import { sleep, type RecordedOp, type RunClock, type Verdict, type Workload, type WorkloadHistory } from './workload.js';

export interface LockWorkloadOptions {
  readonly seed: number;
  readonly clock: RunClock;
  readonly prefix: string;
  /** Clients contending for the lock; default 5. */
  readonly workers?: number;
  /** Session (lease) TTL; default 4 s. */
  readonly sessionTtlSeconds?: number;
  /** Bound on one lock wait; default 6 s. */
  readonly lockTimeoutMs?: number;
  /** Bound on one append, unlock or session call (retries included); default 2 s. */
  readonly deadlineMs?: number;
  /** Appends per critical section: 1 to this many; default 3. */
  readonly appendsMax?: number;
  /** Probability that a holder plays a stale holder (see above); default 0.1. */
  readonly staleShare?: number;
  /** Bound on the final read of the log (retried until then); default 20 s. */
  readonly finalReadTimeoutMs?: number;
}

export type LockDetail =
  /** A lock wait; when granted, the token and a revision at which the lock was certainly held. */
  | { readonly type: 'lock'; readonly token?: number; readonly grantRevision?: number }
  /** An append; `revision` is its commit revision when acknowledged. `stale`: after revoking its own session. */
  | { readonly type: 'append'; readonly id: string; readonly token: number; readonly stale: boolean; readonly revision?: number }
  | { readonly type: 'unlock'; readonly token: number };

export interface LockHistory extends WorkloadHistory<LockDetail> {
  /** The log as read back after the heal, or null when that read failed within its bound. */
  readonly log: readonly FencedAppend[] | null;
  readonly logError?: string;
}

interface LockSettings {
  readonly workers: number;
  readonly sessionTtlSeconds: number;
  readonly lockTimeoutMs: number;
  readonly deadlineMs: number;
  readonly appendsMax: number;
  readonly staleShare: number;
  readonly finalReadTimeoutMs: number;
}

/** How long a stale holder waits after revoking its session: enough for the next grant and append. */
const STALE_WAIT_MS = 600;
const FINAL_READ_DEADLINE_MS = 5_000;

export class LockWorkload implements Workload<LockHistory> {
  readonly name = 'lock';
  /** The runner's clients give the members' endpoints; the workers use client-library Clients. */
  readonly clientsPerMember = 1;
  private readonly settings: LockSettings;

  constructor(private readonly options: LockWorkloadOptions) {
    this.settings = {
      workers: options.workers ?? 5,
      sessionTtlSeconds: options.sessionTtlSeconds ?? 4,
      lockTimeoutMs: options.lockTimeoutMs ?? 6_000,
      deadlineMs: options.deadlineMs ?? 2_000,
      appendsMax: options.appendsMax ?? 3,
      staleShare: options.staleShare ?? 0.1,
      finalReadTimeoutMs: options.finalReadTimeoutMs ?? 20_000,
    };
  }

  private get lockName(): string {
    return `${this.options.prefix}/lock`;
  }

  private get logPrefix(): string {
    return `${this.options.prefix}/log/`;
  }

  async start(clients: readonly FaultClient[], signal: AbortSignal): Promise<LockHistory> {
    const startedAt = this.options.clock.now();
    const endpoints = clients.map((client) => client.endpoint);
    const workers = Array.from({ length: this.settings.workers }, (_, index) => libraryClient(endpoints, index, this.settings.deadlineMs));
    try {
      const root = new Prng(this.options.seed);
      const ops: RecordedOp<LockDetail>[] = [];
      await Promise.all(workers.map((client, index) => this.worker(client, index, root.fork(), ops, signal)));
      const stoppedAt = this.options.clock.now();
      const final = await this.readLog(workers[0] as Client);
      return { workload: this.name, ops, startedAt, stoppedAt, ...final };
    } finally {
      for (const client of workers) client.close();
    }
  }

  /** One client: lock, append, unlock, until the signal aborts; a new session whenever in doubt. */
  private async worker(client: Client, index: number, prng: Prng, ops: RecordedOp<LockDetail>[], signal: AbortSignal): Promise<void> {
    const name = `${this.name}/w${index}`;
    let session: Session | undefined;
    try {
      for (let round = 0; !signal.aborted; round += 1) {
        session ??= await this.openSession(client, prng, signal);
        if (session === undefined) continue;
        // Append ids are unique per attempt: worker, round, index in the critical section.
        const keep = await this.round(client, session, name, `w${index}-${round}`, prng, ops, signal);
        if (!keep || session.state === 'expired' || session.state === 'closed') {
          await this.closeSession(session);
          session = undefined;
          await sleep(50 + prng.int(100), signal);
        }
      }
    } finally {
      if (session !== undefined) await this.closeSession(session);
    }
  }

  /**
   * One turn: wait for the lock, append 1..appendsMax entries, unlock (or, as a stale holder,
   * revoke the session and append once more). False when the session must be replaced.
   */
  private async round(client: Client, session: Session, name: string, round: string, prng: Prng, ops: RecordedOp<LockDetail>[], signal: AbortSignal): Promise<boolean> {
    const mutex = client.mutex(this.lockName, { session, mode: 'kv' });
    const token = await this.lock(mutex, name, ops, signal);
    if (token === undefined) return false;
    const appends = 1 + prng.int(this.settings.appendsMax);
    for (let index = 0; index < appends; index += 1) {
      if (index > 0) await sleep(prng.int(60));
      if (!(await this.append(mutex, name, `${round}.${index}`, token, false, ops))) return false;
    }
    if (prng.chance(this.settings.staleShare)) {
      await this.closeSession(session);
      await sleep(STALE_WAIT_MS);
      await this.append(mutex, name, `${round}.stale`, token, true, ops);
      return false;
    }
    return this.unlock(mutex, name, token, ops);
  }

  private openSession(client: Client, prng: Prng, signal: AbortSignal): Promise<Session | undefined> {
    return openSession(client, this.settings, prng, signal);
  }

  /** Revokes the lease (its queue key goes with it); bounded, best effort: else it expires. */
  private async closeSession(session: Session): Promise<void> {
    await session.close({ timeoutMs: this.settings.deadlineMs }).catch(() => undefined);
  }

  /** The token when granted, after a fenced read gives a revision at which the lock was held. */
  private async lock(mutex: Mutex, name: string, ops: RecordedOp<LockDetail>[], signal: AbortSignal): Promise<number | undefined> {
    const clock = this.options.clock;
    const invokeTime = clock.now();
    const base = { client: name, kind: 'lock', invokeTime };
    try {
      await mutex.lock({ signal, timeoutMs: this.settings.lockTimeoutMs });
    } catch (error) {
      const outcome = classifyClientError(error, { wait: true });
      ops.push({ ...base, completeTime: outcome === 'indeterminate' ? Infinity : clock.now(), outcome, wrote: false, error: clientErrorText(error), detail: { type: 'lock' } });
      return undefined;
    }
    const token = Number(mutex.fencingToken);
    let grantRevision: number | undefined;
    try {
      // A fenced read: at its revision the lock key exists with our token, and since lock()
      // returned, no key with a lower token exists (none can be created): the grant is in force.
      const read = await mutex.fencedTxn({ compare: [], success: [op.get(mutex.key, { keysOnly: true })] }, { timeoutMs: this.settings.deadlineMs });
      grantRevision = Number(read.header.revision);
    } catch {
      // Unknown whether still held: the appends' fence decides. The grant is recorded without a revision.
    }
    ops.push({ ...base, completeTime: clock.now(), outcome: 'ok', wrote: true, detail: { type: 'lock', token, ...(grantRevision === undefined ? {} : { grantRevision }) } });
    return token;
  }

  /** One fenced append; true when acknowledged (the lock was held at its commit). */
  private async append(mutex: Mutex, name: string, id: string, token: number, stale: boolean, ops: RecordedOp<LockDetail>[]): Promise<boolean> {
    const clock = this.options.clock;
    const invokeTime = clock.now();
    const base = { client: name, kind: stale ? 'stale-append' : 'append', invokeTime };
    const value = JSON.stringify({ client: name, token });
    try {
      const result = await mutex.fencedTxn({ compare: [], success: [op.put(`${this.logPrefix}${id}`, value)] }, { timeoutMs: this.settings.deadlineMs });
      const revision = Number(result.header.revision);
      ops.push({ ...base, completeTime: clock.now(), outcome: 'ok', wrote: true, detail: { type: 'append', id, token, stale, revision } });
      return true;
    } catch (error) {
      const outcome = classifyClientError(error);
      ops.push({ ...base, completeTime: outcome === 'indeterminate' ? Infinity : clock.now(), outcome, wrote: false, error: clientErrorText(error), detail: { type: 'append', id, token, stale } });
      return false;
    }
  }

  private async unlock(mutex: Mutex, name: string, token: number, ops: RecordedOp<LockDetail>[]): Promise<boolean> {
    const clock = this.options.clock;
    const invokeTime = clock.now();
    const base = { client: name, kind: 'unlock', invokeTime };
    try {
      await mutex.unlock({ timeoutMs: this.settings.deadlineMs });
      ops.push({ ...base, completeTime: clock.now(), outcome: 'ok', wrote: true, detail: { type: 'unlock', token } });
      return true;
    } catch (error) {
      const outcome = classifyClientError(error);
      ops.push({ ...base, completeTime: outcome === 'indeterminate' ? Infinity : clock.now(), outcome, wrote: false, error: clientErrorText(error), detail: { type: 'unlock', token } });
      return false;
    }
  }

  /** A linearizable range over the log, retried (bounded) until it succeeds. */
  private async readLog(client: Client): Promise<{ log: FencedAppend[] | null; logError?: string }> {
    const deadline = Date.now() + this.settings.finalReadTimeoutMs;
    let lastError = 'no attempt';
    while (Date.now() < deadline) {
      try {
        const { kvs } = await client.kv.get(this.logPrefix, { prefix: true, timeoutMs: FINAL_READ_DEADLINE_MS });
        return { log: kvs.flatMap((kv) => parseAppend(kv.key.toString('utf8').slice(this.logPrefix.length), kv.value.toString('utf8'), Number(kv.createRevision), Number(kv.modRevision))) };
      } catch (error) {
        lastError = clientErrorText(error);
        await sleep(250);
      }
    }
    return { log: null, logError: lastError };
  }

  check(history: LockHistory): Verdict[] {
    if (history.log === null) {
      return [{ checker: FENCING_CHECKER, valid: null, summary: 'the final read of the log failed', details: [history.logError ?? 'unknown error'] }];
    }
    return [checkFencing(fencingInput(history.ops, history.log))];
  }
}

const FENCING_CHECKER = 'fencing (tokens rise in log order, no stale holder commits)';

/**
 * Pure: a log entry as committed appends. Each id is put once, so a key written twice (a
 * modRevision above its createRevision) shows as a second append at that revision, which the
 * checker reports as a duplicate. A value that does not parse keeps its id and gets token -1.
 */
export function parseAppend(id: string, value: string, createRevision: number, modRevision: number): FencedAppend[] {
  let client = '?';
  let token = -1;
  try {
    const parsed: unknown = JSON.parse(value);
    if (typeof parsed === 'object' && parsed !== null) {
      const fields = parsed as { client?: unknown; token?: unknown };
      if (typeof fields.client === 'string') client = fields.client;
      if (typeof fields.token === 'number') token = fields.token;
    }
  } catch {
    // Reported through the token and client that no attempt has.
  }
  const first: FencedAppend = { id, client, token, revision: createRevision };
  return modRevision === createRevision ? [first] : [first, { ...first, revision: modRevision }];
}

/** Pure: the fencing checker's input from a lock history. */
export function fencingInput(ops: readonly RecordedOp<LockDetail>[], log: readonly FencedAppend[]): { log: readonly FencedAppend[]; attempts: AppendAttempt[]; grants: LockGrant[] } {
  const attempts: AppendAttempt[] = [];
  const grants: LockGrant[] = [];
  for (const recorded of ops) {
    const detail = recorded.detail;
    if (detail.type === 'append') attempts.push({ id: detail.id, client: recorded.client, token: detail.token, outcome: recorded.outcome });
    else if (detail.type === 'lock' && detail.token !== undefined && detail.grantRevision !== undefined) {
      grants.push({ client: recorded.client, token: detail.token, revision: detail.grantRevision });
    }
  }
  return { log, attempts, grants };
}
