// Goal: the transport's pure parts (bounded queue, back-off, snapshot chunking and reassembly,
// error mapping) keep their contracts without any network.
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { etcdMessage } from '../../server/api/status.js';
import { isGavelError } from '../../server/errors.js';
import type { Message, SnapMessage } from '../../server/raft/types.js';
import { Backoff } from '../../server/transport/backoff.js';
import { fromServiceError } from '../../server/transport/errors.js';
import { peerTarget } from '../../server/transport/peer.js';
import { MessageQueue } from '../../server/transport/queue.js';
import { SnapshotAssembly, snapshotChunks } from '../../server/transport/snapshot.js';
import { deliver } from '../../server/transport/receiver.js';
import type { TransportHandlers } from '../../server/transport/types.js';
import { silentLogger } from '../../server/log.js';

const heartbeat = (commit: number): Message => ({ type: 'heartbeat', from: 1n, to: 2n, term: 1, commit, context: new Uint8Array(0) });

function snap(bytes: number): SnapMessage {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 7) & 0xff;
  return { type: 'snap', from: 1n, to: 2n, term: 3, snapshot: { metadata: { index: 50, term: 3, confState: { voters: [1n, 2n], learners: [] } }, data } };
}

describe('MessageQueue', () => {
  it('drops the oldest messages beyond maxMessages and keeps order', () => {
    const queue = new MessageQueue({ maxMessages: 3, maxBytes: 1 << 30 });
    let dropped = 0;
    for (let i = 1; i <= 5; i++) dropped += queue.push(heartbeat(i));
    expect(dropped).toBe(2);
    expect(queue.take(1 << 30).map((m) => (m.type === 'heartbeat' ? m.commit : -1))).toEqual([3, 4, 5]);
    expect(queue.length).toBe(0);
    expect(queue.bytes).toBe(0);
  });

  it('bounds bytes but always keeps the newest message', () => {
    const queue = new MessageQueue({ maxMessages: 100, maxBytes: 10 });
    queue.push(heartbeat(1));
    queue.push(heartbeat(2));
    expect(queue.length).toBe(1);
  });

  it('takes at least one message, then as many as fit', () => {
    const queue = new MessageQueue({ maxMessages: 10_000, maxBytes: 1 << 30 });
    for (let i = 0; i < 10; i++) queue.push(heartbeat(i));
    expect(queue.take(1)).toHaveLength(1);
    expect(queue.take(96 * 3)).toHaveLength(3);
    expect(queue.take(1 << 30)).toHaveLength(6);
  });

  it('stays correct across lazy compaction', () => {
    const queue = new MessageQueue({ maxMessages: 2000, maxBytes: 1 << 30 });
    let next = 0;
    let expected = 0;
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 1500; i++) queue.push(heartbeat(next++));
      expected = Math.max(expected, next - queue.length); // what overflowed was dropped, oldest first
      for (const m of queue.take(96 * 700)) expect(m.type === 'heartbeat' && m.commit).toBe(expected++);
    }
    expect(queue.length).toBeLessThanOrEqual(2000);
  });
});

describe('Backoff', () => {
  it('doubles from min to max with delays in [base/2, base), and resets', () => {
    const low = new Backoff(50, 2000, () => 0);
    expect([1, 2, 3, 4, 5, 6, 7].map(() => low.next())).toEqual([25, 50, 100, 200, 400, 800, 1000]);
    expect(low.periodMs).toBe(2000);
    low.reset();
    expect(low.periodMs).toBe(50);
    const high = new Backoff(50, 2000, () => 0.999);
    expect(high.next()).toBeLessThan(50);
  });
});

describe('snapshot chunks', () => {
  it('splits data into chunks and reassembles exactly one snap message', () => {
    const m = snap(2_500_000);
    const chunks = [...snapshotChunks(m, 1024 * 1024)];
    expect(chunks).toHaveLength(3);
    expect(chunks[0]!.message).not.toBeNull();
    expect(chunks[1]!.message).toBeNull();
    const assembly = new SnapshotAssembly(10_000_000);
    expect(assembly.add(chunks[0]!)?.snapshot.metadata.index).toBe(50);
    expect(assembly.add(chunks[1]!)).toBeUndefined();
    assembly.add(chunks[2]!);
    const back = assembly.finish();
    expect(back.snapshot.metadata).toEqual(m.snapshot.metadata);
    expect(Buffer.compare(back.snapshot.data, m.snapshot.data)).toBe(0);
  });

  it('sends an empty snapshot as one chunk', () => {
    const chunks = [...snapshotChunks(snap(0), 1024)];
    expect(chunks).toHaveLength(1);
    const assembly = new SnapshotAssembly(10);
    assembly.add(chunks[0]!);
    expect(assembly.finish().snapshot.data.length).toBe(0);
  });

  it('refuses gaps, truncation, overflow and oversized snapshots', () => {
    const chunks = [...snapshotChunks(snap(3000), 1000)];
    const attempt = (fn: (a: SnapshotAssembly) => void, max = 10_000): unknown => {
      try {
        fn(new SnapshotAssembly(max));
        return undefined;
      } catch (error) {
        return error;
      }
    };
    expect(isGavelError(attempt((a) => (a.add(chunks[0]!), a.add(chunks[2]!))), 'InvalidArgument')).toBe(true);
    expect(isGavelError(attempt((a) => (a.add(chunks[0]!), a.add(chunks[1]!), a.finish())), 'InvalidArgument')).toBe(true);
    expect(isGavelError(attempt((a) => a.add(chunks[1]!)), 'InvalidArgument')).toBe(true);
    expect(isGavelError(attempt((a) => a.add(chunks[0]!), 2999), 'RequestTooLarge')).toBe(true);
    expect(isGavelError(attempt((a) => a.add({ ...chunks[0]!, total_bytes: '10' })), 'InvalidArgument')).toBe(true);
  });
});

describe('lease call errors', () => {
  const serviceError = (code: grpc.status, details: string): grpc.ServiceError =>
    Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });

  it('maps etcd texts back to their codes and anything else to NoLeader', () => {
    expect(fromServiceError(serviceError(grpc.status.NOT_FOUND, etcdMessage('LeaseNotFound')), 1n).code).toBe('LeaseNotFound');
    expect(fromServiceError(serviceError(grpc.status.FAILED_PRECONDITION, etcdMessage('NotLeader')), 1n).code).toBe('NotLeader');
    const other = fromServiceError(serviceError(grpc.status.UNAVAILABLE, 'No connection established'), 1n);
    expect(other.code).toBe('NoLeader');
    expect(other.message).toMatch(/UNAVAILABLE: No connection established/);
  });
});

describe('peerTarget', () => {
  it('turns a peer URL into a gRPC target', () => {
    expect(peerTarget('http://10.0.0.1:2380')).toBe('10.0.0.1:2380');
    expect(peerTarget('http://[::1]:2380/')).toBe('[::1]:2380');
    expect(peerTarget('http://example.com')).toBe('example.com:80');
    expect(peerTarget('https://example.com:2380')).toBe('example.com:2380');
    expect(() => peerTarget('ftp://example.com:2380')).toThrow(/only http/);
  });
});

describe('receiver delivery', () => {
  const env = (delivered: Message[]) => ({ memberId: 3n, logger: silentLogger, handlers: { onMessage: (m: Message) => delivered.push(m), onSnapshot: () => undefined } as unknown as TransportHandlers });

  it('delivers a ReadIndex forwarded by a follower, from the original requester (found by the fault test)', () => {
    // Member 1 asked member 2, which had stopped being leader; 2 forwards to leader 3 with from = 1.
    const delivered: Message[] = [];
    const forwarded: Message = { type: 'readIndex', from: 1n, to: 3n, term: 0, context: new Uint8Array([7]) } as Message;
    deliver(env(delivered), 2n, [forwarded]);
    expect(delivered.map((m) => [m.type, m.from])).toEqual([['readIndex', 1n]]);
  });

  it('drops other messages whose from is not the sending peer, or that are not for this member', () => {
    const delivered: Message[] = [];
    const spoofed = { type: 'heartbeat', from: 1n, to: 3n, term: 5, commit: 0, context: new Uint8Array() } as unknown as Message;
    const elsewhere = { type: 'readIndex', from: 2n, to: 4n, term: 0, context: new Uint8Array([1]) } as Message;
    deliver(env(delivered), 2n, [spoofed, elsewhere]);
    expect(delivered).toEqual([]);
  });
});
