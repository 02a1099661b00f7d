/**
 * Pending ReadIndex requests on a leader (etcd's "safe" read-only option): each request records
 * the commit index at arrival and waits until a quorum of voters answered a heartbeat carrying
 * its context, which proves that no newer leader existed when the request arrived.
 */
import type { NodeId } from './types.js';
import { bytesToHex } from './util.js';

export interface ReadIndexRequest {
  /** Who asked: the leader itself or a follower that forwarded a 'readIndex'. */
  readonly from: NodeId;
  readonly context: Uint8Array;
}

export interface ReadIndexStatus {
  readonly request: ReadIndexRequest;
  readonly index: number;
  readonly acks: Set<NodeId>;
}

export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexStatus>();
  /** Keys in arrival order: confirming a later request confirms every earlier one too. */
  private queue: string[] = [];

  /** Contexts must be unique among pending requests; a duplicate is ignored. */
  addRequest(index: number, request: ReadIndexRequest): boolean {
    const key = bytesToHex(request.context);
    if (this.pending.has(key)) return false;
    this.pending.set(key, { request, index, acks: new Set() });
    this.queue.push(key);
    return true;
  }

  /** Records that `id` confirmed leadership for `context`; returns the acks so far. */
  recvAck(id: NodeId, context: Uint8Array): ReadonlySet<NodeId> | undefined {
    const status = this.pending.get(bytesToHex(context));
    if (status === undefined) return undefined;
    status.acks.add(id);
    return status.acks;
  }

  /** Removes and returns the request for `context` and every request queued before it. */
  advance(context: Uint8Array): ReadIndexStatus[] {
    const key = bytesToHex(context);
    const position = this.queue.indexOf(key);
    if (position < 0) return [];
    const done = this.queue.slice(0, position + 1);
    this.queue = this.queue.slice(position + 1);
    const result: ReadIndexStatus[] = [];
    for (const doneKey of done) {
      const status = this.pending.get(doneKey);
      this.pending.delete(doneKey);
      if (status !== undefined) result.push(status);
    }
    return result;
  }

  /** Context of the newest pending request, re-sent with each heartbeat until confirmed. */
  lastPendingContext(): Uint8Array | undefined {
    const key = this.queue[this.queue.length - 1];
    return key === undefined ? undefined : this.pending.get(key)?.request.context;
  }

  size(): number {
    return this.queue.length;
  }
}
