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
 */
import { randomBytes } from 'node:crypto';
import { AbortedError, DeadlineExceededError, LockBusyError, LockLostError, type GavelClientError } from './errors.js';
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
}

export class Mutex {
  readonly key: Buffer;
  private entry: QueueEntry | undefined;

  constructor(
    private readonly rpc: Rpc,
    private readonly kv: KV,
    readonly session: Session,
    readonly name: Bytes,
    options: MutexOptions = {},
  ) {
    const suffix = options.keyPer === 'session' ? leaseHex(session.leaseId) : `${leaseHex(session.leaseId)}-${randomBytes(4).toString('hex')}`;
    this.key = Buffer.concat([queuePrefix(name), Buffer.from(suffix)]);
  }

  /** True once lock() has succeeded and until unlock(). (The session may be lost meanwhile: see `session.signal`.) */
  get held(): boolean {
    return this.entry !== undefined;
  }

  /** The fencing token of the current hold: the lock key's create revision. */
  get fencingToken(): bigint {
    if (this.entry === undefined) throw new LockLostError('the mutex is not held');
    return this.entry.revision;
  }

  /** Waits for the lock. Rejects with the session's error if the session is lost while waiting. */
  async lock(options: LockOptions = {}): Promise<this> {
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
    const token = this.fencingToken;
    const result = await this.kv.txn({ compare: [compare.createRevision(this.key, '==', token)], success: [op.txn(request)], failure: [] }, options);
    const inner = result.results[0];
    if (!result.succeeded || inner?.type !== 'txn') {
      this.entry = undefined;
      throw new LockLostError(`fenced write refused: the lock ${Buffer.from(this.name).toString()} is no longer held with token ${token}`);
    }
    return { header: result.header, succeeded: inner.succeeded, results: inner.results };
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
