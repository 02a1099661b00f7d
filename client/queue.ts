/**
 * The queue under a name that mutexes and elections share (DESIGN.md §5): each contender owns
 * one key under `name/`, created with its session's lease; keys are served in create-revision
 * order, so the holder is the key with the lowest create revision and that revision is its
 * fencing token. A waiter watches only its predecessor (no herd effect) and its own key: if
 * its own key disappears (lease expired or revoked), waiting fails at once instead of ever
 * reporting a grant (the failure Jepsen found in etcd's recipe, which watches predecessors only).
 */
import { LockLostError, type GavelClientError } from './errors.js';
import { compare, op, rangeAt, type Bytes, type KeyValue, type KV } from './kv.js';
import { abortError } from './rpc.js';
import { Watcher } from './watch.js';
import type { Rpc } from './rpc.js';

export interface QueueEntry {
  /** The contender's key: `name/...`. */
  readonly key: Buffer;
  /** Its create revision: the place in the queue and the fencing token. */
  readonly revision: bigint;
  /** The key as it is now (its value, for elections). */
  readonly kv: KeyValue;
  /** The create revision of the first key in the queue when we joined. */
  readonly headRevision: bigint;
}

/** `name/`, the prefix under which contenders queue. */
export function queuePrefix(name: Bytes): Buffer {
  return Buffer.concat([Buffer.from(name), Buffer.from('/')]);
}

/**
 * Joins the queue: creates `key` with the lease unless it exists (then re-attaches to it, which
 * makes a retried request harmless), in one Txn that also reads the head of the queue.
 */
export async function joinQueue(kv: KV, name: Bytes, key: Buffer, value: Bytes, leaseId: bigint, signal: AbortSignal | undefined): Promise<QueueEntry> {
  const prefix = queuePrefix(name);
  const head = op.get(prefix, { prefix: true, sort: { target: 'create', order: 'ascend' }, limit: 1 });
  const result = await kv.txn(
    { compare: [compare.createRevision(key, '==', 0n)], success: [op.put(key, value, { lease: leaseId }), head, op.get(key)], failure: [head, op.get(key)] },
    { signal, idempotent: true },
  );
  const headKv = rangeAt(result, result.succeeded ? 1 : 0)[0];
  const own = rangeAt(result, result.succeeded ? 2 : 1)[0];
  if (own === undefined) throw new LockLostError('the queue key vanished as it was created (its lease expired)');
  return { key, revision: own.createRevision, kv: own, headRevision: headKv?.createRevision ?? own.createRevision };
}

/**
 * Waits until no key under `name/` was created before `entry`, while `entry`'s key still
 * exists. Returns the revision at which that was read. Throws `lostError()` when the own key
 * disappears, or the signal's reason when it fires.
 */
export async function waitForTurn(rpc: Rpc, kv: KV, name: Bytes, entry: QueueEntry, signal: AbortSignal | undefined, lostError: () => GavelClientError): Promise<bigint> {
  const prefix = queuePrefix(name);
  // The joining txn already read the head of the queue, linearizably: first in line means held.
  if (entry.headRevision === entry.revision) return entry.kv.modRevision;
  for (;;) {
    if (signal?.aborted) throw abortError(signal);
    // One linearizable read: does my key still exist, and who is right before me?
    const result = await kv.txn(
      {
        compare: [compare.createRevision(entry.key, '==', entry.revision)],
        success: [op.get(prefix, { prefix: true, maxCreateRevision: entry.revision - 1n, sort: { target: 'create', order: 'descend' }, limit: 1, keysOnly: true })],
        failure: [],
      },
      { signal, timeoutMs: 0 }, // wait as long as the caller does; each attempt is still bounded
    );
    if (!result.succeeded) throw lostError();
    const predecessor = rangeAt(result, 0)[0];
    if (predecessor === undefined) return result.header.revision;
    await waitForDelete(rpc, [predecessor.key, entry.key], result.header.revision + 1n, signal);
  }
}

/** Resolves when any of `keys` is deleted at or after `fromRevision`. */
async function waitForDelete(rpc: Rpc, keys: Buffer[], fromRevision: bigint, signal: AbortSignal | undefined): Promise<void> {
  const stop = new AbortController();
  const linked = signal === undefined ? stop.signal : AbortSignal.any([signal, stop.signal]);
  const watchers = keys.map((key) => new Watcher(rpc, key, { startRevision: fromRevision, noPut: true, signal: linked }));
  try {
    await Promise.race(watchers.map((w) => w.until((e) => e.type === 'delete')));
  } catch (error) {
    if (signal?.aborted) throw abortError(signal);
    throw error;
  } finally {
    stop.abort();
  }
  if (signal?.aborted) throw abortError(signal);
}

/** Leaves the queue: deletes the key (best effort when the caller is already failing). */
export async function leaveQueue(kv: KV, key: Buffer, timeoutMs = 5_000): Promise<void> {
  // A delete means the same sent twice, so it may be retried through a leader change.
  await kv.txn({ compare: [], success: [op.delete(key)] }, { timeoutMs, idempotent: true });
}
