/**
 * A session is a lease kept alive by a KeepAlive stream: the liveness that locks and elections
 * hang on. Chubby's terms for its health:
 *   alive     keep-alives are being confirmed in time;
 *   jeopardy  a keep-alive is overdue (emitted once; 'recovered' when one is confirmed again);
 *   expired   the lease is gone, or may be: the server said so, or no keep-alive was confirmed
 *             for a whole TTL. `session.signal` aborts with a SessionExpiredError, so work
 *             protected by the session's locks can stop. An expired session stays expired.
 *
 * Timing is measured from when a keep-alive was *sent*: the server renews the lease no earlier
 * than that, so `sentAt + TTL` is a safe lower bound of the lease's life as the server sees it
 * (assuming clocks run at the same rate; clock jumps are not an issue with performance.now()).
 */
import { EventEmitter } from 'node:events';
import type { ChannelStream } from './channel.js';
import { ClosedError, SessionExpiredError, fromStatus, isClientError, type GavelClientError } from './errors.js';
import { leaseHex, type Lease } from './lease.js';
import { backoffMs, sleep, type CallOptions, type Rpc } from './rpc.js';

export type SessionState = 'alive' | 'jeopardy' | 'expired' | 'closed';

export interface SessionOptions extends CallOptions {
  /** Lease TTL in seconds; default 10. A dead holder's locks pass on after about this long. */
  readonly ttlSeconds?: number;
  /** Adopt this existing lease instead of granting a new one. */
  readonly leaseId?: bigint;
  /** Keep the lease alive (default true). The server's in-process recipes adopt callers' leases without it. */
  readonly keepAlive?: boolean;
}

export const DEFAULT_SESSION_TTL_SECONDS = 10;

export interface SessionEvents {
  jeopardy: [];
  recovered: [];
  expired: [error: SessionExpiredError];
}

export class Session extends EventEmitter<SessionEvents> {
  private readonly controller = new AbortController();
  private stateValue: SessionState = 'alive';
  /** performance.now() until which the lease is certainly alive on the server. */
  private expiresAt: number;
  private lastConfirmedAt: number;
  private stream: ChannelStream | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly stopping = new AbortController();

  private constructor(
    private readonly rpc: Rpc,
    private readonly lease: Lease,
    readonly leaseId: bigint,
    readonly ttlSeconds: number,
    grantedAt: number,
  ) {
    super();
    this.expiresAt = grantedAt + ttlSeconds * 1000;
    this.lastConfirmedAt = grantedAt;
  }

  /** Grants a lease (or adopts options.leaseId) and starts keeping it alive. */
  static async create(rpc: Rpc, lease: Lease, options: SessionOptions = {}): Promise<Session> {
    const sentAt = performance.now();
    let id = options.leaseId;
    let ttl = options.ttlSeconds ?? DEFAULT_SESSION_TTL_SECONDS;
    if (id === undefined) id = (await lease.grant(ttl, options)).id;
    else if (options.keepAlive !== false) {
      const info = await lease.timeToLive(id, options);
      if (info.ttlSeconds <= 0) throw new SessionExpiredError(`lease ${leaseHex(id)} does not exist`);
      ttl = info.grantedTtlSeconds;
    }
    const session = new Session(rpc, lease, id, ttl, sentAt);
    if (options.keepAlive !== false) session.startKeepAlive();
    return session;
  }

  get state(): SessionState {
    return this.stateValue;
  }

  /** Aborted (with a SessionExpiredError or ClosedError) when the session is lost or closed. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Throws the reason the session is unusable, if it is. */
  throwIfLost(): void {
    if (this.controller.signal.aborted) throw this.controller.signal.reason as GavelClientError;
  }

  /** Ends the session and revokes its lease, which releases every lock and candidacy it holds. */
  async close(options: CallOptions = {}): Promise<void> {
    if (this.stateValue === 'closed') return;
    const wasExpired = this.stateValue === 'expired';
    this.finish('closed', new ClosedError('the session was closed'));
    if (wasExpired) return;
    try {
      await this.lease.revoke(this.leaseId, { timeoutMs: 5_000, ...options });
    } catch (error) {
      if (!isClientError(error, 'LeaseNotFound')) throw error;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private finish(state: 'closed' | 'expired', reason: GavelClientError): void {
    if (this.stateValue === 'closed' || this.stateValue === 'expired') return;
    this.stateValue = state;
    clearInterval(this.timer);
    this.stopping.abort();
    this.stream?.cancel();
    this.controller.abort(reason);
    if (state === 'expired') this.emit('expired', reason as SessionExpiredError);
  }

  private expire(why: string): void {
    if (this.stateValue === 'closed' || this.stateValue === 'expired') return;
    this.finish('expired', new SessionExpiredError(`session lease ${leaseHex(this.leaseId)} expired: ${why}`));
    // The lease may still be alive on a server we cannot reach; revoking it (best effort)
    // frees our locks for others sooner than waiting out its TTL.
    this.lease.revoke(this.leaseId, { timeoutMs: 2_000 }).catch(() => undefined);
  }

  private startKeepAlive(): void {
    const intervalMs = Math.max(250, (this.ttlSeconds * 1000) / 3);
    const check = (): void => {
      const now = performance.now();
      if (now >= this.expiresAt) this.expire(`no keep-alive confirmed for ${this.ttlSeconds} s`);
      else if (this.stateValue === 'alive' && now - this.lastConfirmedAt > 2 * intervalMs) {
        this.stateValue = 'jeopardy';
        this.emit('jeopardy');
      }
    };
    this.timer = setInterval(check, Math.max(50, intervalMs / 4));
    this.timer.unref?.();
    void this.keepAliveLoop(intervalMs);
  }

  /** Sends a keep-alive every interval over one stream, reopening it (elsewhere) when it breaks. */
  private async keepAliveLoop(intervalMs: number): Promise<void> {
    for (let attempt = 0; !this.stopping.signal.aborted; attempt++) {
      // A failed login is retried like a broken stream: the lease may outlive a short outage.
      const ready = await this.rpc.authenticate(this.stopping.signal).then(() => true, () => false);
      const confirmed = ready && (await this.runStream(intervalMs));
      if (this.stopping.signal.aborted) return;
      if (confirmed) attempt = 0;
      this.rpc.channel.failover();
      try {
        await sleep(backoffMs(attempt, this.rpc.options), this.stopping.signal);
      } catch {
        return;
      }
    }
  }

  /** One KeepAlive stream; resolves when it breaks, true if it confirmed anything. */
  private runStream(intervalMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const sentTimes: number[] = [];
      let confirmed = false;
      let ticker: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearInterval(ticker);
        resolve(confirmed);
      };
      let stream: ChannelStream;
      try {
        stream = this.rpc.channel.stream('etcdserverpb.Lease', 'LeaseKeepAlive', { signal: this.stopping.signal });
      } catch {
        done();
        return;
      }
      this.stream = stream;
      const send = (): void => {
        // A member that takes keep-alives but confirms none (partitioned from its leader) is
        // abandoned for another one well before the lease could run out.
        if (sentTimes.length >= 2 && performance.now() - this.lastConfirmedAt > 2 * intervalMs) {
          stream.cancel();
          done();
          return;
        }
        sentTimes.push(performance.now());
        stream.write({ ID: String(this.leaseId) });
      };
      stream.on('data', (r: { TTL?: string }) => {
        const sentAt = sentTimes.shift() ?? performance.now();
        const ttl = Number(r.TTL ?? '0');
        if (ttl <= 0) {
          this.expire('the server no longer knows the lease');
          done();
          return;
        }
        confirmed = true;
        this.lastConfirmedAt = sentAt;
        this.expiresAt = Math.max(this.expiresAt, sentAt + ttl * 1000);
        if (this.stateValue === 'jeopardy') {
          this.stateValue = 'alive';
          this.emit('recovered');
        }
      });
      stream.on('error', (status: { code: number; details: string }) => {
        const error = fromStatus(status);
        this.rpc.tokenRefused(error);
        if (isClientError(error, 'LeaseNotFound')) this.expire('the server no longer knows the lease');
        done();
      });
      stream.on('end', done);
      send();
      ticker = setInterval(send, intervalMs);
      ticker.unref?.();
    });
  }
}
