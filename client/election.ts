/**
 * Leader election over the KV API, etcd's layout: candidates queue under `name/` with the key
 * `name/<lease hex>` holding their value; the leader is the candidate with the lowest create
 * revision.
 *
 * On session loss: the server deletes the leader's key when the lease expires, and the next
 * candidate becomes leader. The former leader learns it from `session.signal` (and 'expired');
 * its proclaim() and resign() then fail with ElectionNotLeaderError, because both are guarded by
 * the key's create revision. A campaign still waiting when the session is lost rejects with the
 * session's SessionExpiredError.
 */
import { ElectionNotLeaderError, LockLostError, isClientError, type GavelClientError } from './errors.js';
import { compare, op, type Bytes, type KeyValue, type KV } from './kv.js';
import { leaseHex } from './lease.js';
import { joinQueue, leaveQueue, queuePrefix, waitForTurn } from './queue.js';
import { abortError, type CallOptions, type Rpc } from './rpc.js';
import type { Session } from './session.js';
import { Watcher, type WatchBatch } from './watch.js';

/** What identifies a leadership: etcd's LeaderKey. */
export interface LeaderKey {
  readonly name: Buffer;
  readonly key: Buffer;
  /** The key's create revision: the leadership's term, usable as a fencing token. */
  readonly revision: bigint;
  readonly lease: bigint;
}

export interface LeaderChange {
  /** The leader's key and value, or undefined when there is no leader. */
  readonly leader: KeyValue | undefined;
  /** The store revision at which this became true. */
  readonly revision: bigint;
}

export class Election {
  private leadership: LeaderKey | undefined;

  constructor(
    private readonly rpc: Rpc,
    private readonly kv: KV,
    readonly name: Bytes,
    private readonly session?: Session,
  ) {}

  /** This object's leadership, while it has one. */
  get leaderKey(): LeaderKey | undefined {
    return this.leadership;
  }

  /**
   * Becomes a candidate with `value` and resolves once leader. Campaigning again with the same
   * session re-attaches to the same candidacy (and proclaims the new value if it differs).
   */
  async campaign(value: Bytes, options: { signal?: AbortSignal } = {}): Promise<LeaderKey> {
    const session = this.requireSession();
    session.throwIfLost();
    const signal = options.signal === undefined ? session.signal : AbortSignal.any([session.signal, options.signal]);
    const key = Buffer.concat([queuePrefix(this.name), Buffer.from(leaseHex(session.leaseId))]);
    const entry = await joinQueue(this.kv, this.name, key, value, session.leaseId, signal).catch((error: unknown) => {
      throw this.explain(error, options.signal);
    });
    const leadership: LeaderKey = { name: Buffer.from(this.name), key, revision: entry.revision, lease: session.leaseId };
    if (!entry.kv.value.equals(Buffer.from(value))) {
      await this.proclaimAs(leadership, value, { signal });
    }
    try {
      await waitForTurn(this.rpc, this.kv, this.name, entry, signal, () => this.lostWhileWaiting());
    } catch (error) {
      await leaveQueue(this.kv, key).catch(() => undefined);
      throw this.explain(error, options.signal);
    }
    this.leadership = leadership;
    return leadership;
  }

  /** Sets the leader's value without an election. Rejects with ElectionNotLeaderError if not leader. */
  async proclaim(value: Bytes, options: CallOptions = {}): Promise<void> {
    const leadership = this.leadership;
    if (leadership === undefined) throw new ElectionNotLeaderError('election: not leader');
    await this.proclaimAs(leadership, value, options);
  }

  /** Gives up leadership (or candidacy); the next candidate becomes leader. */
  async resign(options: CallOptions = {}): Promise<void> {
    const leadership = this.leadership;
    this.leadership = undefined;
    if (leadership === undefined) return;
    await resignAs(this.kv, leadership, options);
  }

  /** The current leader, or undefined when there is none. */
  async leader(options: CallOptions = {}): Promise<KeyValue | undefined> {
    const r = await this.kv.get(queuePrefix(this.name), { ...options, prefix: true, sort: { target: 'create', order: 'ascend' }, limit: 1 });
    return r.kvs[0];
  }

  /**
   * Every change of leader (and of the leader's value), first the current state, then each
   * change in revision order; `leader: undefined` when the last candidate leaves. Reconnects
   * resume from the last revision seen, so no change is skipped or reordered. Only if that
   * revision was compacted meanwhile does the stream jump to the present state.
   */
  async *observe(options: { signal?: AbortSignal } = {}): AsyncIterable<LeaderChange> {
    const prefix = queuePrefix(this.name);
    const tracker = new LeaderTracker();
    for (;;) {
      const snapshot = await this.kv.get(prefix, { prefix: true, signal: options.signal });
      yield* tracker.reset(snapshot.kvs, snapshot.header.revision);
      const watcher = new Watcher(this.rpc, prefix, { prefix: true, startRevision: snapshot.header.revision + 1n, signal: options.signal });
      try {
        for await (const batch of watcher) yield* tracker.apply(batch);
        if (options.signal?.aborted) return;
      } catch (error) {
        if (options.signal?.aborted) return;
        if (!isClientError(error, 'Compacted')) throw error;
      }
    }
  }

  private async proclaimAs(leadership: LeaderKey, value: Bytes, options: CallOptions): Promise<void> {
    await proclaimAs(this.kv, leadership, value, options).catch((error: unknown) => {
      if (isClientError(error, 'ElectionNotLeader')) this.leadership = undefined;
      throw error;
    });
  }

  private requireSession(): Session {
    if (this.session === undefined) throw new TypeError('campaign needs a session: client.election(name, { session })');
    return this.session;
  }

  private lostWhileWaiting(): GavelClientError {
    if (this.session?.signal.aborted === true) return this.session.signal.reason as GavelClientError;
    return new LockLostError('the candidate key was deleted while campaigning (its lease expired or was revoked)');
  }

  private explain(error: unknown, signal: AbortSignal | undefined): unknown {
    if (this.session?.signal.aborted === true) return this.session.signal.reason;
    if (signal?.aborted === true) return abortError(signal);
    return error;
  }
}

/**
 * Follows the candidates under an election prefix and reports each change of leader (or of its
 * value). Pure: fed a snapshot, then watch batches.
 */
export class LeaderTracker {
  private candidates = new Map<string, KeyValue>();
  /** What was last reported; null before the first report. */
  private last: KeyValue | undefined | null = null;

  /** Starts over from a full read of the prefix (the first one, or after a compaction). */
  reset(kvs: readonly KeyValue[], revision: bigint): LeaderChange[] {
    this.candidates = new Map(kvs.map((kv) => [kv.key.toString('hex'), kv]));
    return this.report(revision);
  }

  /**
   * A batch may span several revisions; each revision is a state the election was in, so each
   * is judged on its own (the events of one revision, one txn, are applied together).
   */
  apply(batch: WatchBatch): LeaderChange[] {
    const changes: LeaderChange[] = [];
    const events = batch.events;
    for (let i = 0; i < events.length; ) {
      const revision = events[i]?.kv.modRevision ?? batch.revision;
      for (let event = events[i]; event !== undefined && event.kv.modRevision === revision; event = events[++i]) {
        if (event.type === 'put') this.candidates.set(event.kv.key.toString('hex'), event.kv);
        else this.candidates.delete(event.kv.key.toString('hex'));
      }
      changes.push(...this.report(revision));
    }
    return changes;
  }

  private report(revision: bigint): LeaderChange[] {
    const leader = firstCreated(this.candidates);
    const last = this.last;
    if (last !== null && last?.key.equals(leader?.key ?? Buffer.alloc(0)) === true && last.modRevision === leader?.modRevision) return [];
    if (last === undefined && leader === undefined) return [];
    this.last = leader;
    return [{ leader, revision }];
  }
}

function firstCreated(candidates: Map<string, KeyValue>): KeyValue | undefined {
  let first: KeyValue | undefined;
  for (const kv of candidates.values()) if (first === undefined || kv.createRevision < first.createRevision) first = kv;
  return first;
}

/** Proclaim for a given leadership: a put guarded by the key's create revision. */
export async function proclaimAs(kv: KV, leadership: LeaderKey, value: Bytes, options: CallOptions = {}): Promise<void> {
  const result = await kv.txn(
    { compare: [compare.createRevision(leadership.key, '==', leadership.revision)], success: [op.put(leadership.key, value, { lease: leadership.lease })], failure: [] },
    { ...options, idempotent: true },
  );
  if (!result.succeeded) throw new ElectionNotLeaderError('election: not leader');
}

/** Resign a given leadership: a delete guarded by the key's create revision (a no-op when gone). */
export async function resignAs(kv: KV, leadership: LeaderKey, options: CallOptions = {}): Promise<void> {
  await kv.txn({ compare: [compare.createRevision(leadership.key, '==', leadership.revision)], success: [op.delete(leadership.key)], failure: [] }, { ...options, idempotent: true });
}
