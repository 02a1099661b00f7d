/**
 * Calls with deadlines, cancellation, typed errors and retries. A failed call is sent again
 * (after a back-off, to another member) only when that cannot change its meaning: reads and
 * requests the caller marks idempotent retry on any transient failure; other writes only when
 * the request never left this process or no leader accepted it.
 */
import type { Channel, ServiceName } from './channel.js';
import { AbortedError, DeadlineExceededError, isTransient, neverSent, toClientError, type GavelClientError } from './errors.js';

export interface CallOptions {
  /** Abort the call (and its retries) when this fires; rejects with AbortedError. */
  readonly signal?: AbortSignal | undefined;
  /** Give up after this long, retries included; rejects with DeadlineExceededError. */
  readonly timeoutMs?: number | undefined;
}

export type RetryPolicy = 'idempotent' | 'write';

/** A user name and password for members with auth enabled (etcd's Authenticate). */
export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export interface RpcOptions {
  /** Applied to calls that do not give their own timeout. Blocking calls (lock, campaign) have none. */
  readonly defaultTimeoutMs: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** Log in with these and send the token with every call; log in again when it is refused. */
  readonly credentials?: Credentials | undefined;
}

export const DEFAULT_RPC_OPTIONS: RpcOptions = { defaultTimeoutMs: 10_000, backoffBaseMs: 50, backoffMaxMs: 1_000 };

export function backoffMs(attempt: number, options: Pick<RpcOptions, 'backoffBaseMs' | 'backoffMaxMs'>): number {
  const ceiling = Math.min(options.backoffMaxMs, options.backoffBaseMs * 2 ** Math.min(attempt, 20));
  // Full jitter keeps many clients from retrying in lock step after a leader change.
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

/** Resolves after `ms`, or rejects with the signal's reason when it fires first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The error a fired signal stands for: its reason when that is one of ours, else AbortedError. */
export function abortError(signal: AbortSignal | undefined): GavelClientError {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error && 'code' in reason && typeof (reason as { code: unknown }).code === 'string') return toClientError(reason);
  return new AbortedError('the operation was aborted', { cause: reason });
}

/** etcd's text for a token the member does not (or no longer) accept: log in again. */
const INVALID_TOKEN = 'etcdserver: invalid auth token';

export class Rpc {
  private loggedIn = false;
  private loggingIn: Promise<void> | undefined;

  constructor(
    readonly channel: Channel,
    readonly options: RpcOptions = DEFAULT_RPC_OPTIONS,
  ) {}

  /**
   * Logs in once (concurrent callers share the attempt) when credentials are set; a no-op
   * otherwise. Streams call it before they open, unary calls on every attempt.
   */
  async authenticate(signal?: AbortSignal): Promise<void> {
    const credentials = this.options.credentials;
    if (credentials === undefined || this.loggedIn) return;
    this.loggingIn ??= (async () => {
      try {
        this.channel.setToken?.(undefined);
        const r = await this.call<{ token?: string }>('etcdserverpb.Auth', 'Authenticate', { name: credentials.username, password: credentials.password }, 'idempotent', { signal }, false, false);
        this.channel.setToken?.(r.token);
        this.loggedIn = true;
      } finally {
        this.loggingIn = undefined;
      }
    })();
    await this.loggingIn;
  }

  /** A stream or call was refused for its token: the next one logs in again. */
  tokenRefused(error: GavelClientError): boolean {
    if (error.code !== 'Unauthenticated' || !error.message.includes(INVALID_TOKEN) || this.options.credentials === undefined) return false;
    this.loggedIn = false;
    return true;
  }

  /** The absolute deadline for a call, or undefined for none (timeoutMs 0 or Infinity). */
  deadline(options: CallOptions, fallbackMs = this.options.defaultTimeoutMs): number | undefined {
    const timeoutMs = options.timeoutMs ?? fallbackMs;
    return timeoutMs > 0 && Number.isFinite(timeoutMs) ? Date.now() + timeoutMs : undefined;
  }

  /**
   * One call with retries. Each attempt gets at most `defaultTimeoutMs` (a hung member is left
   * for another one) unless the call is `blocking` (it waits for a lock or an election by design).
   */
  async unary<Res>(service: ServiceName, method: string, request: object, policy: RetryPolicy, options: CallOptions = {}, blocking = false): Promise<Res> {
    return this.call(service, method, request, policy, options, blocking, true);
  }

  private async call<Res>(service: ServiceName, method: string, request: object, policy: RetryPolicy, options: CallOptions, blocking: boolean, withAuth: boolean): Promise<Res> {
    const deadline = this.deadline(options, blocking ? 0 : undefined);
    for (let attempt = 0; ; attempt++) {
      if (options.signal?.aborted) throw abortError(options.signal);
      if (deadline !== undefined && Date.now() >= deadline) throw new DeadlineExceededError(`${method}: deadline exceeded after ${attempt} attempts`);
      const attemptDeadline = blocking ? deadline : Math.min(deadline ?? Infinity, Date.now() + this.options.defaultTimeoutMs);
      try {
        if (withAuth) await this.authenticate(options.signal);
        return (await this.channel.unary(service, method, request, { signal: options.signal, deadline: attemptDeadline })) as Res;
      } catch (thrown) {
        if (options.signal?.aborted) throw abortError(options.signal);
        const error = toClientError(thrown);
        // An expired or unknown token: log in again and resend (nothing was applied).
        if (withAuth && this.tokenRefused(error) && attempt < 3) continue;
        const attemptTimedOut = error.code === 'DeadlineExceeded' && (deadline === undefined || Date.now() < deadline);
        const retry = policy === 'idempotent' ? isTransient(error) || attemptTimedOut : neverSent(error);
        if (!retry) throw error;
        if (error.code === 'Unavailable' || attemptTimedOut) this.channel.failover();
        const wait = backoffMs(attempt, this.options);
        if (deadline !== undefined && Date.now() + wait >= deadline) throw new DeadlineExceededError(`${method}: deadline exceeded (last error: ${error.message})`, { cause: error });
        await sleep(wait, options.signal);
      }
    }
  }
}
