/**
 * The entry point: one Client per application, connected to any of the given members.
 *
 *   const client = new Client({ endpoints: ['127.0.0.1:2379', '127.0.0.1:22379'] });
 *   await using session = await client.session({ ttlSeconds: 10 });
 *   await using lock = await client.mutex('jobs/nightly', { session }).lock();
 *   await lock.fencedTxn({ compare: [], success: [op.put('jobs/nightly/owner', 'me')] });
 *
 * Against `gavel --mode central` (no KV API) the same `client.mutex()` uses the server's
 * coordinator queue; `client.rwlock()` and `client.semaphore()` always do.
 */
import { GrpcChannel, type Channel, type TlsOptions } from './channel.js';
import { Election } from './election.js';
import { KV, type Bytes } from './kv.js';
import { Lease } from './lease.js';
import { Mutex, type MutexOptions } from './mutex.js';
import { CoordinatorApi, CoordinatorMutex, RWLock, Semaphore, type CoordinatorLockOptions } from './coordinator.js';
import { isClientError, isTransient } from './errors.js';
import { DEFAULT_RPC_OPTIONS, Rpc, type Credentials, type RpcOptions } from './rpc.js';
import { Session, type SessionOptions } from './session.js';
import { LockService } from './lock-service.js';
import { Watcher, type WatchOptions } from './watch.js';

export interface ClientOptions {
  /** Members to connect to: "host:port", "http://host:port" or "https://host:port". */
  readonly endpoints?: readonly string[];
  /** CA and client certificate for https endpoints. */
  readonly tls?: TlsOptions;
  /** Per-attempt bound for calls that do not block by design; default 10 s. */
  readonly defaultTimeoutMs?: number;
  /** Retry back-off: the first wait and the cap (jittered, doubling). */
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  /** Instead of endpoints: a channel of one's own (the server uses an in-process one). */
  readonly channel?: Channel;
  /** For members with auth enabled: log in with these (the token is renewed when refused). */
  readonly auth?: Credentials;
}

export class Client {
  readonly kv: KV;
  readonly lease: Lease;
  /** The server-side lock (v3lockpb.Lock), for callers that want the server to hold the queue logic. */
  readonly lockService: LockService;
  /** The server's coordinator queue by lock name (gavel.v1.Coordinator): describe, checkSequencer, release. */
  readonly coordinator: CoordinatorApi;
  private readonly rpc: Rpc;
  private lockBackend: Promise<'kv' | 'coordinator'> | undefined;

  constructor(options: ClientOptions) {
    const channel = options.channel ?? new GrpcChannel(options.endpoints ?? [], options.tls);
    const rpcOptions: RpcOptions = {
      defaultTimeoutMs: options.defaultTimeoutMs ?? DEFAULT_RPC_OPTIONS.defaultTimeoutMs,
      backoffBaseMs: options.backoffBaseMs ?? DEFAULT_RPC_OPTIONS.backoffBaseMs,
      backoffMaxMs: options.backoffMaxMs ?? DEFAULT_RPC_OPTIONS.backoffMaxMs,
      credentials: options.auth,
    };
    this.rpc = new Rpc(channel, rpcOptions);
    this.kv = new KV(this.rpc);
    this.lease = new Lease(this.rpc);
    this.lockService = new LockService(this.rpc);
    this.coordinator = new CoordinatorApi(this.rpc);
  }

  /** Watches a key or range; iterate it with `for await`. Resumes across reconnects. */
  watch(key: Bytes, options: WatchOptions = {}): Watcher {
    return new Watcher(this.rpc, key, options);
  }

  /** A lease kept alive until close(); the base of mutexes and elections. */
  session(options: SessionOptions = {}): Promise<Session> {
    return Session.create(this.rpc, this.lease, options);
  }

  /**
   * A mutex. `mode: 'auto'` (default): the KV recipe where the server offers the KV API, the
   * server's coordinator queue against `gavel --mode central`; 'kv' or 'coordinator' forces one.
   */
  mutex(name: Bytes, options: MutexOptions & { session: Session }): Mutex {
    return new Mutex(this.rpc, this.kv, options.session, name, options, () => this.probeLockBackend());
  }

  /** An EXCLUSIVE lock held in the server's coordinator queue, with WAIT positions (gavel.v1.Coordinator). */
  coordinatorMutex(name: Bytes, options: CoordinatorLockOptions & { session: Session }): CoordinatorMutex {
    return new CoordinatorMutex(this.rpc, options.session, name, options);
  }

  /** A reader-writer lock in the coordinator queue: readLock() shares, writeLock() excludes, FIFO. */
  rwlock(name: Bytes, options: CoordinatorLockOptions & { session: Session }): RWLock {
    return new RWLock(this.rpc, options.session, name, options);
  }

  /** One permit of a semaphore of `limit` permits in the coordinator queue. */
  semaphore(name: Bytes, options: CoordinatorLockOptions & { session: Session; limit: number }): Semaphore {
    return new Semaphore(this.rpc, options.session, name, options.limit, options);
  }

  /**
   * 'kv' when the server answers a KV call, 'coordinator' when it says UNIMPLEMENTED (central
   * mode). Asked once per client; a transient failure is not remembered.
   */
  private probeLockBackend(): Promise<'kv' | 'coordinator'> {
    this.lockBackend ??= this.kv.get('\0', { countOnly: true, serializable: true }).then(
      () => 'kv' as const,
      (error: unknown) => {
        if (isClientError(error, 'Unimplemented')) return 'coordinator' as const;
        if (isClientError(error) && !isTransient(error) && error.code !== 'DeadlineExceeded') return 'kv' as const; // e.g. permission denied: the KV API is there
        this.lockBackend = undefined;
        throw error;
      },
    );
    return this.lockBackend;
  }

  /** An election; `session` is needed to campaign, not to observe or ask for the leader. */
  election(name: Bytes, options: { session?: Session } = {}): Election {
    return new Election(this.rpc, this.kv, name, options.session);
  }

  close(): void {
    this.rpc.channel.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
