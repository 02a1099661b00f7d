/**
 * Admission for password hashing (Authenticate, UserAdd, UserChangePassword). One scrypt costs
 * about 85 ms of a libuv thread, and libuv has four, shared with level's reads and writes: a
 * client sending wrong passwords as fast as it can used to occupy all four and queue without
 * bound, so every other client's login (and a member's disk work) waited behind it. etcd 3.4
 * has the same weakness (its bcrypt runs on as many goroutines as there are requests).
 *
 * Here at most `concurrency` hashes run at once; the rest wait in one queue per connection and
 * are started round-robin across connections, so a flooding connection gets its share and no
 * more; a connection may have at most `perConnection` hashes running or waiting, and the member
 * at most `maxWaiting` waiting. Past either limit the call is refused at once with etcd's
 * "etcdserver: too many requests", which costs nothing.
 */
import { GavelError } from '../errors.js';

export interface PasswordGateLimits {
  /** Hashes running at once (each holds one libuv thread). */
  readonly concurrency: number;
  /** Hashes one connection may have running or waiting. */
  readonly perConnection: number;
  /** Hashes waiting, all connections together. */
  readonly maxWaiting: number;
}

/** Two of libuv's four threads at most; a connection may have four logins in progress; 256 waiting in all. */
export const DEFAULT_PASSWORD_GATE_LIMITS: PasswordGateLimits = { concurrency: 2, perConnection: 4, maxWaiting: 256 };

interface Job {
  readonly connection: string;
  readonly start: () => void;
}

export class PasswordGate {
  private running = 0;
  private waiting = 0;
  /** Waiting jobs per connection, oldest first; a connection is here only while it has some. */
  private readonly queues = new Map<string, Job[]>();
  /** Connections with waiting jobs, in the order they get their next turn. */
  private readonly turns: string[] = [];
  /** Jobs running or waiting, per connection. */
  private readonly held = new Map<string, number>();

  constructor(private readonly limits: PasswordGateLimits = DEFAULT_PASSWORD_GATE_LIMITS) {}

  /** Runs `work` when admitted; TooManyRequests when over a limit; the signal's reason if it aborts while waiting. */
  run<T>(connection: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const held = this.held.get(connection) ?? 0;
    if (held >= this.limits.perConnection) return Promise.reject(new GavelError('TooManyRequests'));
    if (this.running >= this.limits.concurrency && this.waiting >= this.limits.maxWaiting) return Promise.reject(new GavelError('TooManyRequests'));
    this.held.set(connection, held + 1);
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        if (this.withdraw(job)) reject(signal!.reason);
      };
      const job: Job = {
        connection,
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          this.running++;
          work()
            .then(resolve, reject)
            .finally(() => {
              this.running--;
              this.release(connection);
              this.pump();
            });
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.enqueue(job);
      this.pump();
    });
  }

  /** Hashes running and waiting now (for tests and metrics). */
  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting };
  }

  private enqueue(job: Job): void {
    const queue = this.queues.get(job.connection);
    if (queue === undefined) {
      this.queues.set(job.connection, [job]);
      this.turns.push(job.connection);
    } else {
      queue.push(job);
    }
    this.waiting++;
  }

  private pump(): void {
    while (this.running < this.limits.concurrency && this.turns.length > 0) {
      const connection = this.turns.shift()!;
      const queue = this.queues.get(connection)!;
      const job = queue.shift()!;
      this.waiting--;
      // Its next job, if any, waits for every other waiting connection's turn.
      if (queue.length > 0) this.turns.push(connection);
      else this.queues.delete(connection);
      job.start();
    }
  }

  /** Takes a waiting job out of its queue; false when it already started. */
  private withdraw(job: Job): boolean {
    const queue = this.queues.get(job.connection);
    const index = queue?.indexOf(job) ?? -1;
    if (queue === undefined || index < 0) return false;
    queue.splice(index, 1);
    this.waiting--;
    if (queue.length === 0) {
      this.queues.delete(job.connection);
      this.turns.splice(this.turns.indexOf(job.connection), 1);
    }
    this.release(job.connection);
    return true;
  }

  private release(connection: string): void {
    const held = (this.held.get(connection) ?? 1) - 1;
    if (held <= 0) this.held.delete(connection);
    else this.held.set(connection, held);
  }
}
