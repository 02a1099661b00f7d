/**
 * Locks held by the server's coordinator queue (gavel.v1.Coordinator, DESIGN.md §5): the
 * textbook central-coordinator protocol. A client asks; the server answers WAIT with its place
 * in a FIFO queue (again whenever that place or the holders change), then GRANTED with a fencing
 * token. One round trip to take a free lock, one log entry to hand it to the next in line.
 *
 * - CoordinatorMutex: EXCLUSIVE. RWLock: SHARED readers and EXCLUSIVE writers, FIFO so writers
 *   never starve. Semaphore: up to N SHARED holders.
 * - Every place is bound to the session's lease: if the session is lost, so is the place (and the
 *   wait fails with the session's error). Optional Chubby lock-delay: after this holder's lease
 *   EXPIRES, nobody is granted the lock for lockDelayMs.
 * - A broken stream does not lose the place: the wait re-attaches (to another member if need be)
 *   by (name, lease, owner). A wait that gives up (timeout, abort) leaves the queue.
 * - The fencing token is the log index of the grant: pass it to the protected resource, which
 *   refuses smaller ones, or which asks checkSequencer() whether it still belongs to a holder.
 * - Each lock object has an owner of its own (a random id), so two objects on one session
 *   exclude each other; `keyPer: 'session'` makes the owner "" (one place per session).
 */
import { randomBytes } from 'node:crypto';
import type { ChannelStream } from './channel.js';
import { DeadlineExceededError, LockBusyError, LockLostError, fromStatus, isClientError, isTransient, toClientError, type GavelClientError } from './errors.js';
import { headerFromWire, toBuffer, type Bytes, type Header } from './kv.js';
import { abortError, backoffMs, sleep, type CallOptions, type Rpc } from './rpc.js';
import type { Session } from './session.js';
import type { LockOptions } from './mutex.js';
import type { WireAcquireRequest, WireAcquireResponse, WireDescribeResponse, WireHolder } from '../server/coordinator/wire.js';

export type CoordinatorLockMode = 'exclusive' | 'shared';

export interface HolderInfo {
  readonly lease: bigint;
  readonly owner: string;
  readonly mode: CoordinatorLockMode;
  readonly token: bigint;
}

export interface WaiterInfo {
  readonly lease: bigint;
  readonly owner: string;
  readonly mode: CoordinatorLockMode;
  /** 1 = next in line. */
  readonly position: number;
}

/** WAIT: the caller's place in the queue and who holds the lock. */
export interface WaitUpdate {
  readonly type: 'wait';
  /** 1 = next in line. */
  readonly position: number;
  /** The holders (at most 64; holderCount says how many there are). */
  readonly holders: readonly HolderInfo[];
  readonly holderCount: number;
  /** The lock is in its lock-delay after a holder's lease expired. */
  readonly delayed: boolean;
}

export interface GrantedUpdate {
  readonly type: 'granted';
  readonly token: bigint;
}

export type AcquireUpdate = WaitUpdate | GrantedUpdate;

export interface LockDescription {
  readonly holders: readonly HolderInfo[];
  readonly waiters: readonly WaiterInfo[];
  /** SHARED holders at once; 0 = no limit. */
  readonly limit: number;
  readonly delayed: boolean;
  readonly header: Header;
}

export interface CoordinatorLockOptions {
  /** Chubby's lock-delay in ms (at most 60000): after this holder's lease expires, the lock stays unavailable this long. Default 0. */
  readonly lockDelayMs?: number;
  /** 'object' (default): this object has a place of its own. 'session': one place per session (owner ""). */
  readonly keyPer?: 'object' | 'session';
}

export interface AcquireOptions extends LockOptions {
  /** Called with each WAIT: the position counts down to 1, then the lock is granted. */
  readonly onWait?: (update: WaitUpdate) => void;
}

const MODE_FROM_WIRE: Record<number, CoordinatorLockMode> = { 0: 'exclusive', 1: 'shared' };
/** A waiter gives the server this much longer than its own wait_ms to answer before giving up itself. */
const SERVER_ANSWER_GRACE_MS = 5_000;

function holderFromWire(h: WireHolder): HolderInfo {
  return { lease: BigInt(h.lease), owner: h.owner, mode: MODE_FROM_WIRE[h.mode] ?? 'exclusive', token: BigInt(h.token) };
}

/** The Coordinator service by lock name: for resources that check sequencers, and for tools. */
export class CoordinatorApi {
  constructor(private readonly rpc: Rpc) {}

  /** The holders and the waiters of a lock, in order (linearizable). */
  async describe(name: Bytes, options: CallOptions = {}): Promise<LockDescription> {
    const r = await this.rpc.unary<WireDescribeResponse>('gavel.v1.Coordinator', 'Describe', { name: toBuffer(name) }, 'idempotent', options);
    return {
      holders: (r.holders ?? []).map(holderFromWire),
      waiters: (r.waiters ?? []).map((w) => ({ lease: BigInt(w.lease), owner: w.owner, mode: MODE_FROM_WIRE[w.mode] ?? 'exclusive', position: w.position })),
      limit: r.limit ?? 0,
      delayed: r.delayed === true,
      header: headerFromWire(r.header),
    };
  }

  /** Chubby's CheckSequencer: does `token` still belong to a current holder of `name`? */
  async checkSequencer(name: Bytes, token: bigint, options: CallOptions = {}): Promise<boolean> {
    const r = await this.rpc.unary<{ valid?: boolean }>('gavel.v1.Coordinator', 'CheckSequencer', { name: toBuffer(name), token: token.toString() }, 'idempotent', options);
    return r.valid === true;
  }

  /** Frees the place (name, lease, owner); with a token, only the hold with that token. */
  async release(name: Bytes, lease: bigint, owner = '', token = 0n, options: CallOptions = {}): Promise<boolean> {
    const request = { name: toBuffer(name), lease: lease.toString(), owner, token: token.toString() };
    const r = await this.rpc.unary<{ released?: boolean }>('gavel.v1.Coordinator', 'Release', request, 'idempotent', options);
    return r.released === true;
  }
}

/** One place in a coordinator lock: EXCLUSIVE or SHARED, bound to a session. */
export class CoordinatorLock {
  /** Tells this object's place apart from others of the same session. */
  readonly owner: string;
  private token: bigint | undefined;
  private readonly api: CoordinatorApi;
  private readonly lockDelayMs: number;

  constructor(
    private readonly rpc: Rpc,
    readonly session: Session,
    readonly name: Bytes,
    readonly mode: CoordinatorLockMode,
    /** SHARED holders at once (0 = no limit); a property of the lock, the same for every user. */
    readonly limit: number,
    options: CoordinatorLockOptions = {},
  ) {
    this.owner = options.keyPer === 'session' ? '' : randomBytes(6).toString('hex');
    this.lockDelayMs = options.lockDelayMs ?? 0;
    this.api = new CoordinatorApi(rpc);
  }

  /** True from a grant until release(). (The session may be lost meanwhile: see `session.signal`.) */
  get held(): boolean {
    return this.token !== undefined;
  }

  /** The fencing token of the current hold: the log index of its grant. */
  get fencingToken(): bigint {
    if (this.token === undefined) throw new LockLostError('the lock is not held');
    return this.token;
  }

  /**
   * Waits for the lock. WAIT updates go to `onWait`. Rejects with the session's error if the
   * session is lost, DeadlineExceededError after `timeoutMs`, the caller's error on abort; in
   * each case the place is gone from the queue.
   */
  async acquire(options: AcquireOptions = {}): Promise<this> {
    if (this.token !== undefined) throw new LockBusyError('this lock object already holds the lock; use another object to queue again');
    this.session.throwIfLost();
    const signals = [this.session.signal];
    if (options.signal !== undefined) signals.push(options.signal);
    // The server removes the place when wait_ms passes; this is only a fallback if it cannot say so.
    if (options.timeoutMs !== undefined && options.timeoutMs > 0) signals.push(AbortSignal.timeout(options.timeoutMs + SERVER_ANSWER_GRACE_MS));
    const signal = AbortSignal.any(signals);
    const started = performance.now();
    let joined = false;
    for (let attempt = 0; ; attempt++) {
      const waitMs = options.timeoutMs !== undefined && options.timeoutMs > 0 ? Math.max(1, Math.ceil(options.timeoutMs - (performance.now() - started))) : 0;
      try {
        await this.rpc.authenticate(signal);
        this.token = await this.acquireOnce(this.request(waitMs, joined), signal, options.onWait, () => (joined = true));
        return this;
      } catch (thrown) {
        const error = signal.aborted ? undefined : toClientError(thrown);
        if (error !== undefined && (retryable(error) || this.rpc.tokenRefused(error))) {
          // The stream broke, not the wait: re-attach to our place, on another member if need be.
          if (error.code === 'Unavailable' || error.code === 'Aborted') this.rpc.channel.failover();
          await sleep(backoffMs(attempt, this.rpc.options), signal).catch(() => undefined);
          if (!signal.aborted) continue;
        }
        throw await this.giveUp(signal.aborted ? undefined : error, options);
      }
    }
  }

  /**
   * acquire(), as an AsyncIterable of its updates: each WAIT, then GRANTED (the lock is then
   * held). Leaving the loop before GRANTED gives the wait up (and the lock, if it came meanwhile).
   */
  async *updates(options: LockOptions = {}): AsyncGenerator<AcquireUpdate, void, undefined> {
    const pending: AcquireUpdate[] = [];
    let wake: (() => void) | undefined;
    let outcome: { error: unknown } | undefined;
    let delivered = false;
    const stop = new AbortController();
    const signal = options.signal === undefined ? stop.signal : AbortSignal.any([options.signal, stop.signal]);
    const acquiring = this.acquire({ ...options, signal, onWait: (update) => void (pending.push(update), wake?.()) }).then(
      () => void pending.push({ type: 'granted', token: this.fencingToken }),
      (error: unknown) => void (outcome = { error }),
    );
    void acquiring.then(() => wake?.());
    try {
      for (;;) {
        const next = pending.shift();
        if (next !== undefined) {
          if (next.type === 'granted') delivered = true;
          yield next;
          if (next.type === 'granted') return;
          continue;
        }
        if (outcome !== undefined) throw outcome.error;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      if (!delivered) {
        stop.abort();
        await acquiring;
        if (this.held) await this.release().catch(() => undefined);
      }
    }
  }

  /** Takes the lock only if it is free, nobody waits and no lock-delay runs; never queues. */
  async tryAcquire(options: CallOptions = {}): Promise<boolean> {
    if (this.token !== undefined) return false;
    this.session.throwIfLost();
    const r = await this.rpc.unary<WireAcquireResponse>('gavel.v1.Coordinator', 'TryAcquire', this.request(0, false), 'idempotent', options);
    if (r.state !== 'granted' || !r.granted) return false;
    this.token = BigInt(r.granted.token);
    return true;
  }

  /** Releases the hold (the next in line is granted at once). Harmless when not held. */
  async release(options: CallOptions = {}): Promise<void> {
    const token = this.token;
    if (token === undefined) return;
    this.token = undefined;
    await this.api.release(this.name, this.session.leaseId, this.owner, token, { timeoutMs: 5_000, ...options });
  }

  /** Whether this object's token still belongs to a current holder, as the server sees it now. */
  async checkSequencer(options: CallOptions = {}): Promise<boolean> {
    if (this.token === undefined) return false;
    return this.api.checkSequencer(this.name, this.token, options);
  }

  describe(options: CallOptions = {}): Promise<LockDescription> {
    return this.api.describe(this.name, options);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }

  private request(waitMs: number, reattach: boolean): WireAcquireRequest {
    return {
      name: toBuffer(this.name),
      lease: this.session.leaseId.toString(),
      mode: this.mode === 'exclusive' ? 0 : 1,
      limit: this.limit,
      wait_ms: String(waitMs),
      lock_delay_ms: String(this.lockDelayMs),
      owner: this.owner,
      reattach,
    };
  }

  /** One Acquire stream: resolves with the token on GRANTED, rejects when the stream fails. */
  private acquireOnce(request: WireAcquireRequest, signal: AbortSignal, onWait: ((update: WaitUpdate) => void) | undefined, onJoined: () => void): Promise<bigint> {
    return new Promise((resolve, reject) => {
      let stream: ChannelStream;
      let settled = false;
      const settle = (error: unknown, token?: bigint): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (error === undefined && token !== undefined) resolve(token);
        else reject(error);
      };
      const onAbort = (): void => {
        stream?.cancel();
        settle(abortError(signal));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        stream = this.rpc.channel.stream('gavel.v1.Coordinator', 'Acquire', { signal }, request);
      } catch (error) {
        settle(error);
        return;
      }
      stream.on('data', (r: WireAcquireResponse) => {
        onJoined();
        if (r.state === 'granted' && r.granted) settle(undefined, BigInt(r.granted.token));
        else if (r.state === 'wait' && r.wait) {
          const w = r.wait;
          try {
            onWait?.({ type: 'wait', position: w.position, holders: (w.holders ?? []).map(holderFromWire), holderCount: w.holder_count, delayed: w.delayed === true });
          } catch (error) {
            stream.cancel();
            settle(error);
          }
        }
      });
      stream.on('error', (status: { code: number; details: string }) => settle(fromStatus(status)));
      stream.on('end', () => settle(fromStatus({ code: 14, details: 'the Acquire stream ended without a grant' })));
    });
  }

  /** The error a wait ends with, after leaving the queue unless the server already removed the place. */
  private async giveUp(error: GavelClientError | undefined, options: LockOptions): Promise<unknown> {
    if (this.session.signal.aborted) return this.session.signal.reason;
    const serverRemoved = error !== undefined && (error.code === 'DeadlineExceeded' || error.code === 'LeaseNotFound' || error.code === 'LockLost');
    // A grant may have raced the give-up: releasing with token 0 frees the place whatever it became.
    if (!serverRemoved) await this.api.release(this.name, this.session.leaseId, this.owner, 0n, { timeoutMs: 5_000 }).catch(() => undefined);
    if (options.signal?.aborted) return abortError(options.signal);
    if (error === undefined || error.code === 'DeadlineExceeded') {
      return new DeadlineExceededError(`lock ${Buffer.from(toBuffer(this.name)).toString()} not acquired within ${options.timeoutMs ?? 0} ms`, error === undefined ? {} : { cause: error });
    }
    if (error.code === 'LeaseNotFound') return new LockLostError(`the lease ${this.session.leaseId.toString(16)} of the place in ${Buffer.from(toBuffer(this.name)).toString()} is gone`, { cause: error });
    return error;
  }
}

/**
 * Failures of the stream, not of the wait: the place is still there to re-attach to. (A stream
 * cancelled by a server shutting down arrives as Aborted; our own aborts never get here.)
 */
function retryable(error: GavelClientError): boolean {
  return isTransient(error) || (error.code === 'Aborted' && error.grpcCode !== undefined);
}

/** An EXCLUSIVE coordinator lock, with the client Mutex's method names. */
export class CoordinatorMutex extends CoordinatorLock {
  constructor(rpc: Rpc, session: Session, name: Bytes, options: CoordinatorLockOptions = {}) {
    super(rpc, session, name, 'exclusive', 0, options);
  }

  lock(options: AcquireOptions = {}): Promise<this> {
    return this.acquire(options);
  }

  tryLock(options: CallOptions = {}): Promise<boolean> {
    return this.tryAcquire(options);
  }

  unlock(options: CallOptions = {}): Promise<void> {
    return this.release(options);
  }
}

/** A reader-writer lock: readers share, a writer excludes; FIFO, so a waiting writer is never starved by readers. */
export class RWLock {
  constructor(
    private readonly rpc: Rpc,
    readonly session: Session,
    readonly name: Bytes,
    private readonly options: CoordinatorLockOptions = {},
  ) {}

  /** A new SHARED place (a reader). */
  readLock(): CoordinatorLock {
    return new CoordinatorLock(this.rpc, this.session, this.name, 'shared', 0, this.options);
  }

  /** A new EXCLUSIVE place (a writer). */
  writeLock(): CoordinatorLock {
    return new CoordinatorLock(this.rpc, this.session, this.name, 'exclusive', 0, this.options);
  }
}

/** One permit of a counting semaphore of `limit` permits: at most `limit` holders at once, FIFO. */
export class Semaphore extends CoordinatorLock {
  constructor(rpc: Rpc, session: Session, name: Bytes, limit: number, options: CoordinatorLockOptions = {}) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`a semaphore needs a limit of at least 1, got ${limit}`);
    super(rpc, session, name, 'shared', limit, options);
  }
}

/** Whether an error means "this server has no KV API" (a `gavel --mode central` server). */
export function meansNoKv(error: unknown): boolean {
  return isClientError(error, 'Unimplemented');
}
