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

  // The sifts hold the moving slot and write each slot it passes once (no swaps), and read the
  // heap without bounds asserts: a keep-alive moves its lease to the newest deadline, so every
  // keep-alive sifts one slot from near the top to the bottom of a heap of all leases.
  private siftUp(start: number): void {
    const heap = this.heap;
    const moving = heap[start]!;
    let index = start;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex]!;
      if (!this.less(moving, parent)) break;
      heap[index] = parent;
      parent.index = index;
      index = parentIndex;
    }
    heap[index] = moving;
    moving.index = index;
  }

  private siftDown(start: number): void {
    const heap = this.heap;
    const length = heap.length;
    const moving = heap[start]!;
    let index = start;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      let child = left;
      let childSlot = heap[left]!;
      if (right < length) {
        const rightSlot = heap[right]!;
        if (this.less(rightSlot, childSlot)) {
          child = right;
          childSlot = rightSlot;
        }
      }
      if (!this.less(childSlot, moving)) break;
      heap[index] = childSlot;
      childSlot.index = index;
      index = child;
    }
    heap[index] = moving;
    moving.index = index;
  }
}
