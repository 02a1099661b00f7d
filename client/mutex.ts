/**
 * A distributed mutex over the KV API (the queue of queue.ts), bound to a session.
 *
 * - The holder's key create revision is its fencing token: it grows with every grant, so a
 *   resource that remembers the largest token it has seen can refuse a stale holder.
 * - `fencedTxn()` runs a Txn only while this mutex still holds the lock (its key exists with its
 *   create revision), checked by the server in the same Txn: no window between check and write.
 * - Each Mutex object has a key of its own (`name/<lease hex>-<nonce>`), so two Mutex objects on
 *   one session exclude each other (etcd's recipe keys by lease alone and lets them both in).
 *   The server's v3lock service uses `name/<lease hex>` as etcd does.
 * - A waiter fails at once when its session is lost; a lock wait that fails for any reason
 *   removes its key, so it never leaves a phantom entry in the queue.
 * - `mode`: 'auto' (the default) runs this KV recipe where the server serves the KV API and the
 *   server's coordinator queue (coordinator.ts) against `gavel --mode central`, which has none;
 *   'kv' or 'coordinator' forces one. With the coordinator, lock/tryLock/unlock/fencingToken and
 *   checkSequencer work the same; fencedTxn needs the KV recipe.
 */
import { randomBytes } from 'node:crypto';
import { AbortedError, DeadlineExceededError, LockBusyError, LockLostError, UnimplementedError, type GavelClientError } from './errors.js';
import { CoordinatorMutex, type WaitUpdate } from './coordinator.js';
import { compare, op, type Bytes, type KV, type TxnRequest, type TxnResult } from './kv.js';
import { leaseHex } from './lease.js';
import { joinQueue, leaveQueue, queuePrefix, waitForTurn, type QueueEntry } from './queue.js';
import { abortError, type CallOptions, type Rpc } from './rpc.js';
import type { Session } from './session.js';

export interface LockOptions {
  readonly signal?: AbortSignal;
  /** Give up after this long: rejects with DeadlineExceededError and leaves the queue. */
  readonly timeoutMs?: number;
}

export interface MutexOptions {
  /**
   * 'object' (default): this Mutex object has a key of its own.
   * 'session': the key is `name/<lease hex>` as in etcd, shared by every Mutex of the session
   * (re-entrant per session; what the v3lock service needs).
   */
  readonly keyPer?: 'object' | 'session';
  /**
   * 'auto' (default): the KV recipe where the server offers the KV API, the coordinator against a
   * `gavel --mode central` server. 'kv' or 'coordinator' forces one (DESIGN.md §5).
   */
  readonly mode?: MutexMode;
  /** Coordinator only: Chubby's lock-delay (ms) after this holder's lease EXPIRES; default 0. */
  readonly lockDelayMs?: number;
}

export type MutexMode = 'auto' | 'kv' | 'coordinator';

/** Which lock implementation a server calls for: 'kv' where it has the KV API. */
export type LockBackendProbe = () => Promise<'kv' | 'coordinator'>;

export class Mutex {
  readonly key: Buffer;
  private entry: QueueEntry | undefined;
  private chosen: 'kv' | 'coordinator' | undefined;
  private coordinator: CoordinatorMutex | undefined;

  constructor(
    private readonly rpc: Rpc,
    private readonly kv: KV,
    readonly session: Session,
    readonly name: Bytes,
    private readonly options: MutexOptions = {},
    private readonly probe?: LockBackendProbe,
  ) {
    this.chosen = options.mode === 'kv' || options.mode === 'coordinator' ? options.mode : probe === undefined ? 'kv' : undefined;
    const suffix = options.keyPer === 'session' ? leaseHex(session.leaseId) : `${leaseHex(session.leaseId)}-${randomBytes(4).toString('hex')}`;
    this.key = Buffer.concat([queuePrefix(name), Buffer.from(suffix)]);
  }

  /** True once lock() has succeeded and until unlock(). (The session may be lost meanwhile: see `session.signal`.) */
  get held(): boolean {
    return this.entry !== undefined || this.coordinator?.held === true;
  }

  /** Which implementation this mutex uses; undefined until the first lock() under 'auto'. */
  get backend(): 'kv' | 'coordinator' | undefined {
    return this.chosen;
  }

  /** The fencing token of the current hold: the lock key's create revision (the grant's log index with the coordinator). */
  get fencingToken(): bigint {
    if (this.coordinator?.held === true) return this.coordinator.fencingToken;
    if (this.entry === undefined) throw new LockLostError('the mutex is not held');
    return this.entry.revision;
  }

  /**
   * Waits for the lock. Rejects with the session's error if the session is lost while waiting.
   * `onWait` hears the coordinator's WAIT positions (the KV recipe has none to report).
   */
  async lock(options: LockOptions & { readonly onWait?: (update: WaitUpdate) => void } = {}): Promise<this> {
    const coordinator = await this.coordinatorIfChosen();
    if (coordinator !== undefined) {
      await coordinator.lock(options);
      return this;
    }
    if (this.entry !== undefined) throw new LockBusyError('this Mutex already holds the lock; use another Mutex object to queue again');
    const signal = this.waitSignal(options);
    const entry = await this.join(signal);
    try {
      await waitForTurn(this.rpc, this.kv, this.name, entry, signal, () => this.lostWhileWaiting());
    } catch (error) {
      await leaveQueue(this.kv, this.key).catch(() => undefined);
      throw this.explain(error, options);
    }
    this.entry = entry;
    return this;
  }

  /** Takes the lock if nobody holds or waits for it; never waits. */
  async tryLock(options: CallOptions = {}): Promise<boolean> {
    const coordinator = await this.coordinatorIfChosen();
    if (coordinator !== undefined) return coordinator.tryLock(options);
    if (this.entry !== undefined) return false;
    const entry = await this.join(this.waitSignal(options));
    if (entry.headRevision !== entry.revision) {
      await leaveQueue(this.kv, this.key);
      return false;
    }
    this.entry = entry;
    return true;
  }

  async unlock(options: CallOptions = {}): Promise<void> {
    if (this.coordinator?.held === true) return this.coordinator.unlock(options);
    if (this.entry === undefined) return;
    this.entry = undefined;
    await leaveQueue(this.kv, this.key, options.timeoutMs);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.unlock();
  }

  /**
   * Runs `request` only if this mutex still holds the lock, atomically. Rejects with
   * LockLostError (and nothing is applied) when it does not.
   */
  async fencedTxn(request: TxnRequest, options: CallOptions = {}): Promise<TxnResult> {
    if (this.chosen === 'coordinator') throw new UnimplementedError('fencedTxn needs the KV recipe (mode "kv"); with the coordinator, hand fencingToken to the resource or ask checkSequencer()');
    const token = this.fencingToken;
    const result = await this.kv.txn({ compare: [compare.createRevision(this.key, '==', token)], success: [op.txn(request)], failure: [] }, options);
    const inner = result.results[0];
    if (!result.succeeded || inner?.type !== 'txn') {
      this.entry = undefined;
      throw new LockLostError(`fenced write refused: the lock ${Buffer.from(this.name).toString()} is no longer held with token ${token}`);
    }
    return { header: result.header, succeeded: inner.succeeded, results: inner.results };
  }

  /**
   * Whether the current hold is still a hold as the server sees it now (Chubby's sequencer
   * check): the coordinator's CheckSequencer, or with the KV recipe a linearizable read of the
   * lock key's create revision. False when not held.
   */
  async checkSequencer(options: CallOptions = {}): Promise<boolean> {
    if (this.coordinator?.held === true) return this.coordinator.checkSequencer(options);
    if (this.entry === undefined) return false;
    const kv = await this.kv.getOne(this.key, options);
    return kv?.createRevision === this.entry.revision;
  }

  /** The coordinator lock when this mutex uses the coordinator (deciding under 'auto' at the first call). */
  private async coordinatorIfChosen(): Promise<CoordinatorMutex | undefined> {
    this.chosen ??= await this.probe!();
    if (this.chosen !== 'coordinator') return undefined;
    this.coordinator ??= new CoordinatorMutex(this.rpc, this.session, this.name, {
      keyPer: this.options.keyPer ?? 'object',
      ...(this.options.lockDelayMs === undefined ? {} : { lockDelayMs: this.options.lockDelayMs }),
    });
    return this.coordinator;
  }

  private async join(signal: AbortSignal): Promise<QueueEntry> {
    this.session.throwIfLost();
    try {
      return await joinQueue(this.kv, this.name, this.key, '', this.session.leaseId, signal);
    } catch (error) {
      throw this.explain(error, {});
    }
  }

  private waitSignal(options: LockOptions): AbortSignal {
    const signals = [this.session.signal];
    if (options.signal !== undefined) signals.push(options.signal);
    if (options.timeoutMs !== undefined && options.timeoutMs > 0) signals.push(AbortSignal.timeout(options.timeoutMs));
    return AbortSignal.any(signals);
  }

  private lostWhileWaiting(): GavelClientError {
    if (this.session.signal.aborted) return this.session.signal.reason as GavelClientError;
    return new LockLostError(`the lock key ${this.key.toString()} was deleted while waiting (its lease expired or was revoked)`);
  }

  /** Names the reason a wait ended: the session, the caller, or the timeout. */
  private explain(error: unknown, options: LockOptions): unknown {
    if (this.session.signal.aborted) return this.session.signal.reason;
    if (options.signal?.aborted) return abortError(options.signal);
    if (error instanceof AbortedError || (error as { name?: string }).name === 'TimeoutError') {
      return new DeadlineExceededError(`lock ${Buffer.from(this.name).toString()} not acquired within ${options.timeoutMs ?? 0} ms`);
    }
    return error;
  }
}
