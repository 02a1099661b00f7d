/**
 * One lock of the coordinator: its holders, its FIFO of waiters and the grant rule. Pure data;
 * the Coordinator (coordinator.ts) changes it only while applying a committed entry.
 *
 * The grant rule, one rule for all three kinds of lock:
 *   EXCLUSIVE  granted when there is no holder at all;
 *   SHARED     granted when no holder is EXCLUSIVE and fewer than `limit` hold it (0 = no limit).
 * A mutex is EXCLUSIVE only; a reader-writer lock is SHARED readers and EXCLUSIVE writers with
 * limit 0; a semaphore of N is SHARED with limit N. Grants are strictly FIFO: only the head of
 * the queue can be granted, so a reader that arrives after a waiting writer waits behind it and a
 * stream of readers can never starve a writer.
 */
import { assert } from '../errors.js';

export type LockMode = 'exclusive' | 'shared';

/** A holder or a waiter: a place in a lock's queue, named by (lease, owner). */
export interface Place {
  readonly lease: bigint;
  readonly owner: string;
  readonly mode: LockMode;
  /** The index of the entry that queued it: the key of its record and its order among waiters. */
  readonly joinedIndex: number;
  /** Chubby's lock-delay this place asked for, applied if its lease expires while it holds. */
  readonly lockDelayMs: number;
  /** The fencing token once granted; undefined while waiting. */
  token: number | undefined;
}

/** A lock-delay in force: no grants until the leader's end-delay entry with this id applies. */
export interface LockDelay {
  /** The index of the entry that started it. */
  readonly id: number;
  readonly delayMs: number;
}

export class LockQueue {
  /** In grant order (ascending tokens). */
  readonly holders: Place[] = [];
  /** First come, first served. */
  readonly waiters: Place[] = [];
  delay: LockDelay | undefined;
  private positions: Map<Place, number> | undefined;
  /** Every place by (lease, owner), so a lookup does not scan a long queue. */
  private readonly byId = new Map<string, Place>();

  constructor(
    /** The lock name's bytes as a latin1 string (one char per byte). */
    readonly key: string,
    readonly limit: number,
  ) {
    assert(Number.isSafeInteger(limit) && limit >= 0, `lock limit ${limit}`);
  }

  get empty(): boolean {
    return this.holders.length === 0 && this.waiters.length === 0 && this.delay === undefined;
  }

  find(lease: bigint, owner: string): Place | undefined {
    return this.byId.get(placeId(lease, owner));
  }

  /** 1 = next in line; 0 for a holder or a place not in this queue. */
  position(place: Place): number {
    if (this.positions === undefined) this.positions = new Map(this.waiters.map((p, i) => [p, i + 1]));
    return this.positions.get(place) ?? 0;
  }

  /** Would `mode` be compatible with the current holders (ignoring the queue and any delay)? */
  compatible(mode: LockMode): boolean {
    if (mode === 'exclusive') return this.holders.length === 0;
    return this.holders.every((h) => h.mode === 'shared') && (this.limit === 0 || this.holders.length < this.limit);
  }

  /** The head waiter if it may be granted now. */
  grantable(): Place | undefined {
    const head = this.waiters[0];
    if (head === undefined || this.delay !== undefined || !this.compatible(head.mode)) return undefined;
    return head;
  }

  enqueue(place: Place): void {
    assert(place.token === undefined, 'a new place is a waiter');
    const last = this.waiters[this.waiters.length - 1];
    assert(last === undefined || last.joinedIndex < place.joinedIndex, `waiters out of order: ${place.joinedIndex} after ${last?.joinedIndex}`);
    assert(!this.byId.has(placeId(place.lease, place.owner)), 'a place joined twice');
    this.waiters.push(place);
    this.byId.set(placeId(place.lease, place.owner), place);
    // Joining at the back moves nobody: the cached positions stay right.
    this.positions?.set(place, this.waiters.length);
  }

  /** Moves the head waiter to the holders with `token`. */
  grantHead(token: number): Place {
    const head = this.waiters.shift();
    assert(head !== undefined && head.token === undefined, 'grant without a waiter');
    const last = this.holders[this.holders.length - 1];
    assert(last?.token === undefined || last.token < token, `token ${token} is not above the last holder's ${last?.token}`);
    head.token = token;
    this.holders.push(head);
    this.positions = undefined;
    return head;
  }

  remove(place: Place): void {
    const list = place.token === undefined ? this.waiters : this.holders;
    const at = list.indexOf(place);
    assert(at >= 0, 'removing a place that is not in the queue');
    list.splice(at, 1);
    this.byId.delete(placeId(place.lease, place.owner));
    this.positions = undefined;
  }

  /** Rebuilds a queue from its records (restart, snapshot). */
  static restore(key: string, limit: number, delay: LockDelay | undefined, places: readonly Place[]): LockQueue {
    const queue = new LockQueue(key, limit);
    queue.delay = delay;
    const holders = places.filter((p) => p.token !== undefined).sort((a, b) => (a.token ?? 0) - (b.token ?? 0));
    const waiters = places.filter((p) => p.token === undefined).sort((a, b) => a.joinedIndex - b.joinedIndex);
    for (const holder of holders) queue.holders.push(holder);
    for (const waiter of waiters) queue.waiters.push(waiter);
    for (const place of places) {
      assert(!queue.byId.has(placeId(place.lease, place.owner)), 'a restored place twice');
      queue.byId.set(placeId(place.lease, place.owner), place);
    }
    return queue;
  }
}

function placeId(lease: bigint, owner: string): string {
  return `${lease}/${owner}`;
}
