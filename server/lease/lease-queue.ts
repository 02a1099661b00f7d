/**
 * An indexed binary min-heap of (lease id, deadline ms), as etcd's LeaseQueue: O(log n) upsert,
 * remove and pop, O(1) peek, so the leader finds expired leases without scanning all of them.
 * Equal deadlines are ordered by id, so the order never depends on insertion history.
 */
import { assert } from '../errors.js';

export interface LeaseDeadline {
  readonly id: bigint;
  readonly deadlineMs: number;
}

interface Slot {
  readonly id: bigint;
  deadlineMs: number;
  index: number;
}

export class LeaseQueue {
  private readonly heap: Slot[] = [];
  private readonly slots = new Map<bigint, Slot>();

  get size(): number {
    return this.heap.length;
  }

  peek(): LeaseDeadline | undefined {
    const top = this.heap[0];
    return top === undefined ? undefined : { id: top.id, deadlineMs: top.deadlineMs };
  }

  deadlineOf(id: bigint): number | undefined {
    return this.slots.get(id)?.deadlineMs;
  }

  /** Inserts the id or moves it to its new deadline. */
  upsert(id: bigint, deadlineMs: number): void {
    assert(!Number.isNaN(deadlineMs), 'lease deadline is NaN');
    const slot = this.slots.get(id);
    if (slot === undefined) {
      const created: Slot = { id, deadlineMs, index: this.heap.length };
      this.heap.push(created);
      this.slots.set(id, created);
      this.siftUp(created.index);
      return;
    }
    slot.deadlineMs = deadlineMs;
    this.siftUp(slot.index);
    this.siftDown(slot.index);
  }

  remove(id: bigint): boolean {
    const slot = this.slots.get(id);
    if (slot === undefined) return false;
    this.slots.delete(id);
    const last = this.heap.pop();
    assert(last !== undefined, 'lease queue: slot present but heap empty');
    if (last !== slot) {
      last.index = slot.index;
      this.heap[slot.index] = last;
      this.siftUp(last.index);
      this.siftDown(last.index);
    }
    return true;
  }

  clear(): void {
    this.heap.length = 0;
    this.slots.clear();
  }

  private less(a: Slot, b: Slot): boolean {
    return a.deadlineMs < b.deadlineMs || (a.deadlineMs === b.deadlineMs && a.id < b.id);
  }

  private siftUp(start: number): void {
    let index = start;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.less(this.at(index), this.at(parent))) return;
      this.swap(index, parent);
      index = parent;
    }
  }

  private siftDown(start: number): void {
    let index = start;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let smallest = index;
      if (left < this.heap.length && this.less(this.at(left), this.at(smallest))) smallest = left;
      if (right < this.heap.length && this.less(this.at(right), this.at(smallest))) smallest = right;
      if (smallest === index) return;
      this.swap(index, smallest);
      index = smallest;
    }
  }

  private at(index: number): Slot {
    const slot = this.heap[index];
    assert(slot !== undefined, `lease queue index ${index} out of range`);
    return slot;
  }

  private swap(i: number, j: number): void {
    const a = this.at(i);
    const b = this.at(j);
    this.heap[i] = b;
    this.heap[j] = a;
    a.index = j;
    b.index = i;
  }
}
