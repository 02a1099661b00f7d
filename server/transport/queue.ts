/**
 * A bounded FIFO of outgoing messages for one peer. Beyond its limits it drops the OLDEST
 * messages: Raft recovers from lost messages (retries, heartbeats, probes), and the newest
 * ones carry the most current terms and commit indexes.
 */
import { assert } from '../errors.js';
import type { Message } from '../raft/types.js';
import { messageBytes } from './codec.js';

export interface QueueLimits {
  readonly maxMessages: number;
  readonly maxBytes: number;
}

interface Queued {
  readonly message: Message;
  readonly bytes: number;
}

export class MessageQueue {
  /** Taken slots are cleared to undefined so the messages can be collected before compaction. */
  private items: (Queued | undefined)[] = [];
  /** Index of the oldest item; the array is compacted lazily so shift() never costs O(n). */
  private head = 0;
  private totalBytes = 0;

  constructor(private readonly limits: QueueLimits) {}

  get length(): number {
    return this.items.length - this.head;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** Returns how many older messages were dropped to make room. */
  push(message: Message): number {
    const bytes = messageBytes(message);
    this.items.push({ message, bytes });
    this.totalBytes += bytes;
    let dropped = 0;
    // Keep at least the newest message even if it alone exceeds maxBytes.
    while (this.length > 1 && (this.length > this.limits.maxMessages || this.totalBytes > this.limits.maxBytes)) {
      this.shiftOne();
      dropped += 1;
    }
    return dropped;
  }

  /** The oldest messages, at least one (if any) and then as many as fit in maxBytes. */
  take(maxBytes: number): Message[] {
    const taken: Message[] = [];
    let bytes = 0;
    while (this.length > 0) {
      const next = this.items[this.head];
      if (next === undefined || (taken.length > 0 && bytes + next.bytes > maxBytes)) break;
      bytes += next.bytes;
      taken.push(this.shiftOne());
    }
    return taken;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.totalBytes = 0;
  }

  private shiftOne(): Message {
    const item = this.items[this.head];
    assert(item !== undefined, 'shift from an empty message queue');
    this.items[this.head] = undefined;
    this.head += 1;
    this.totalBytes -= item.bytes;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item.message;
  }
}
