/**
 * Simulated time: a priority queue of callbacks ordered by (time, insertion order), so events
 * at the same time run in the order they were scheduled and every run is deterministic.
 */

interface Scheduled {
  readonly time: number;
  readonly seq: number;
  readonly run: () => void;
}

export class EventQueue {
  private heap: Scheduled[] = [];
  private seq = 0;
  /** The current simulated time (units; see simulator.ts for how many make a tick). */
  now = 0;

  at(time: number, run: () => void): void {
    if (time < this.now) throw new Error(`event-queue: scheduling in the past (${time} < ${this.now})`);
    this.push({ time, seq: this.seq++, run });
  }

  after(delay: number, run: () => void): void {
    this.at(this.now + delay, run);
  }

  get size(): number {
    return this.heap.length;
  }

  /** Runs every event with time <= until, in order; time stops at `until`. */
  runUntil(until: number, stop: () => boolean = () => false): void {
    while (this.heap.length > 0 && this.heap[0]!.time <= until) {
      const event = this.pop();
      this.now = event.time;
      event.run();
      if (stop()) return;
    }
    this.now = until;
  }

  private push(item: Scheduled): void {
    const heap = this.heap;
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(item, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = item;
  }

  private pop(): Scheduled {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length === 0) return top;
    let i = 0;
    const n = heap.length;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && before(heap[right]!, heap[left]!) ? right : left;
      if (!before(heap[child]!, last)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}

function before(a: Scheduled, b: Scheduled): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
